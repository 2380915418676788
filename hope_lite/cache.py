"""Where hope_lite keeps downloads and trained models between runs.

``$HOPE_LITE_CACHE/<name>``, by default ``~/.cache/hope_lite/<name>``: the corpus of the ``lm``
experiment (``corpus``) and the Memory Explorer's trained models (``explorer``).
"""

from __future__ import annotations

import os
from pathlib import Path

CACHE_ENV = "HOPE_LITE_CACHE"  # the cache's root (default ~/.cache/hope_lite)


def cache_dir(name: str) -> Path:
    """The cache folder ``name`` under ``$HOPE_LITE_CACHE`` (or ``~/.cache/hope_lite``); not created."""
    root = os.environ.get(CACHE_ENV) or Path.home() / ".cache" / "hope_lite"
    return Path(root).expanduser() / name
