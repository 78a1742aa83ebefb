"""Where benchmark data lives: one data directory, never the repository.

Resolution order: `$POLCA_DATA_DIR`, then `../shared/data` beside the project checkout when it
exists, then the project's own `data/` folder (where downloads land).
"""

from __future__ import annotations

import os
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parent.parent
ENV_VAR = "POLCA_DATA_DIR"


def shown_path(path: Path | str) -> str:
    """`path` as people should see it in saved outputs: relative to the project when inside it, so an
    executed notebook shows no directory of the machine that ran it."""
    resolved = Path(path).expanduser().resolve()
    try:
        return resolved.relative_to(PROJECT_ROOT).as_posix()
    except ValueError:
        return str(path)


def data_dir() -> Path:
    """The directory benchmark loaders read from (it may not exist yet)."""
    env = os.environ.get(ENV_VAR)
    if env:
        return Path(env).expanduser().resolve()
    shared = PROJECT_ROOT.parent / "shared" / "data"
    if shared.is_dir():
        return shared
    return PROJECT_ROOT / "data"


def download_dir() -> Path:
    """Where downloaders write: `$POLCA_DATA_DIR` if set, else the project's `data/` folder."""
    env = os.environ.get(ENV_VAR)
    path = Path(env).expanduser().resolve() if env else PROJECT_ROOT / "data"
    path.mkdir(parents=True, exist_ok=True)
    return path


def require(relative: str, how_to_get: str) -> Path:
    """Path of a data file under the data directory, or FileNotFoundError saying how to get it."""
    path = data_dir() / relative
    if not path.exists():
        raise FileNotFoundError(
            f"benchmark data not found: {path}\n"
            f"Set {ENV_VAR} to a folder that holds '{relative}', or get it with: {how_to_get}"
        )
    return path
