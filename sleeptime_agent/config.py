"""Where things live on disk: ``$SLEEPTIME_HOME`` (default ``~/.local/share/sleeptime``)."""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["default_store_path", "sleeptime_home"]


def sleeptime_home() -> Path:
    """The data directory: the embedded store and the assembled local model live under it."""
    return Path(os.environ.get("SLEEPTIME_HOME", "~/.local/share/sleeptime")).expanduser()


def default_store_path() -> Path:
    """The embedded Chroma directory used when no ``--store`` / ``--chroma-url`` is given."""
    return sleeptime_home() / "store"
