"""Where zoo keeps prepared data: one home for the cache folder.

Prepared datasets (zoo/training/datacache.py) and files fetched from remote `--data` URLs
both live under one folder so that `zoo data ls` and `zoo data rm` see all of them and a user
moves or clears the cache with one setting: `--cache-dir DIR` when given, else
`$ZOO_HOME/cache`, else `cache` in the user's data folder (the same folder the run log uses).
"""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["cache_home", "data_cache_home"]


def cache_home(cache_dir: str | os.PathLike[str] | None = None) -> Path:
    """The cache root: `cache_dir` when given, else `$ZOO_HOME/cache`, else the user's data
    folder's `cache`. Nothing is created here; writers create what they write."""
    if cache_dir:
        return Path(cache_dir).expanduser()
    home = os.environ.get("ZOO_HOME")
    if home:
        return Path(home).expanduser() / "cache"
    import click  # click is a core dependency; imported late to keep this module light

    return Path(click.get_app_dir("zoo")) / "cache"


def data_cache_home(cache_dir: str | os.PathLike[str] | None = None) -> Path:
    """The folder of prepared datasets, one sub-folder per key: `<cache home>/data`.

    `--cache-dir DIR` names the cache home itself, so prepared data lands in `DIR/data`."""
    return cache_home(cache_dir) / "data"
