"""`zoo data prepare|ls|rm`: the prepared-data cache (zoo/training/datacache.py, docs/data.md).

`zoo run` prepares data by itself on its first run; these commands prepare ahead of time (one
machine, before a sweep or a multi-process run), show what the cache holds and what made each
entry, and remove entries. None of them imports torch except `prepare`.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import time
from pathlib import Path
from typing import Any

import click

from zoo.cli.base import complete_names, json_option, option, set_option
from zoo.core import config as cfg
from zoo.core.cachedir import data_cache_home
from zoo.core.errors import UsageError
from zoo.core.formatting import table
from zoo.core.registry import get_registry

cache_dir_option = option(
    "--cache-dir",
    type=click.Path(file_okay=False),
    help="Folder of prepared data (default: $ZOO_HOME/cache, or ZOO_CACHE_DIR).",
)


def _home(cache_dir: str | None) -> Path:
    return data_cache_home(cache_dir or os.environ.get("ZOO_CACHE_DIR") or None)


class Bar:
    """One line on stderr redrawn in place on a terminal (like `zoo run`'s progress), a line
    per stage otherwise."""

    def __init__(self) -> None:
        self.live = sys.stderr.isatty()
        self.stage = ""
        self.t0 = time.perf_counter()

    def __call__(self, what: str, done: int, total: int) -> None:
        if not self.live and what == self.stage:
            return
        self.stage = what
        width = 30
        filled = width * done // total if total else width
        text = f"{what} [{'#' * filled}{'.' * (width - filled)}] {done:,}/{total:,}"
        text += f" {time.perf_counter() - self.t0:.1f}s"
        sys.stderr.write(("\r\033[K" + text) if self.live else text + "\n")
        sys.stderr.flush()

    def close(self) -> None:
        if self.live:
            sys.stderr.write("\r\033[K")
            sys.stderr.flush()


@click.group("data")
def data_group() -> None:
    """Prepared data: datasets parsed once into memory-mapped files (docs/data.md)."""


@data_group.command("prepare")
@click.argument("name", shell_complete=complete_names("architecture"))
@option("--dataset", help="Dataset (default: the architecture's own).")
@option("--data", "data_path", type=click.Path(), help="File or folder the dataset reads.")
@option("--dev", "dev_path", type=click.Path(), help="Validation file, for datasets that take one.")
@option("--test", "test_path", type=click.Path(), help="Test file, for datasets that take one.")
@set_option("Data settings as `zoo run` takes them (data.X=...), so the entry is the one it maps.")
@cache_dir_option
@json_option
def prepare_command(
    name: str,
    dataset: str | None,
    data_path: str | None,
    dev_path: str | None,
    test_path: str | None,
    assignments: tuple[str, ...],
    cache_dir: str | None,
    as_json: bool,
) -> None:
    """Prepare NAME's dataset as `zoo run NAME` with the same options would, ahead of time."""
    from zoo.core.settings import resolve, with_paths
    from zoo.training.datasets import prepare

    reg = get_registry()
    spec = reg.architecture(name).spec
    dataset = dataset or spec.default_dataset
    ds_spec = reg.dataset(dataset).spec
    reg.check_compatible(name, dataset)
    paths = {"--data": data_path, "--dev": dev_path, "--test": test_path}
    settings = with_paths(cfg.parse_assignments(assignments), paths, ds_spec)
    resolved = resolve(spec, ds_spec, settings, where="--set")
    home = _home(cache_dir)
    bar = Bar()
    try:
        data, key, built = prepare(reg, dataset, resolved.data, home, bar)
    finally:
        bar.close()
    if key is None:
        raise UsageError(
            f"dataset {dataset!r} reads no files or its data cannot be stored "
            "(docs/plugins.md, 'Prepared data'); `zoo run` reads it as before"
        )
    entry = next(e for e in _entries(home) if e["key"] == key)
    if as_json:
        click.echo(json.dumps({**_row(entry), "built": built}, indent=1))
        return
    state = "prepared" if built else "already prepared"
    click.echo(f"{state}: {key} ({_mb(entry.get('bytes', 0))}) in {home}")
    click.echo(data.summary)


def _entries(home: Path) -> list[dict[str, Any]]:
    from zoo.training.datacache import entries  # numpy, not torch

    return entries(home)


def _mb(size: int) -> str:
    return f"{size / 1e6:,.1f} MB"


def _row(entry: dict[str, Any]) -> dict[str, Any]:
    return {
        "key": entry["key"],
        "dataset": entry.get("dataset"),
        "bytes": entry.get("bytes"),
        "files": [f["path"] for f in entry.get("files", [])],
        "created": entry.get("created"),
        "zoo": entry.get("zoo"),
        "plugin": f"{entry.get('distribution', '?')} {entry.get('version', '?')}",
        "summary": entry.get("summary"),
        "damaged": bool(entry.get("damaged")),
        "path": entry["path"],
    }


@data_group.command("ls")
@cache_dir_option
@json_option
def ls_command(cache_dir: str | None, as_json: bool) -> None:
    """List prepared entries: key, dataset, size, files, when and by which zoo and plugin."""
    home = _home(cache_dir)
    rows = [_row(e) for e in _entries(home)]
    if as_json:
        click.echo(json.dumps({"cache": os.fspath(home), "entries": rows}, indent=1))
        return
    if not rows:
        click.echo(f"no prepared data in {home}")
        return
    lines = [
        [
            r["key"],
            r["dataset"] or "?",
            _mb(r["bytes"] or 0) if not r["damaged"] else "damaged",
            r["created"] or "?",
            f"zoo {r['zoo'] or '?'}, {r['plugin']}",
            ", ".join(r["files"]) if len(r["files"]) <= 3 else f"{len(r['files'])} files",
        ]
        for r in rows
    ]
    headers = ["key", "dataset", "size", "made", "by", "files"]
    click.echo(table(lines, headers))
    total = sum(r["bytes"] or 0 for r in rows)
    click.echo(f"{len(rows)} entries, {_mb(total)} in {home}")


@data_group.command("rm")
@click.argument("keys", nargs=-1)
@option("--all", "remove_all", is_flag=True, help="Remove every entry (and unfinished builds).")
@cache_dir_option
def rm_command(keys: tuple[str, ...], remove_all: bool, cache_dir: str | None) -> None:
    """Remove prepared entries by KEY (as `zoo data ls` shows them), or --all."""
    home = _home(cache_dir)
    if not keys and not remove_all:
        raise UsageError("zoo data rm: name a KEY (see `zoo data ls`) or give --all")
    if keys and remove_all:
        raise UsageError("zoo data rm: give KEYs or --all, not both")
    known = {e["key"] for e in _entries(home)}
    for key in keys:
        if key not in known or "/" in key or key.startswith("."):
            raise UsageError(f"zoo data rm: no prepared entry {key!r} in {home}; see `zoo data ls`")
    targets = sorted(known) if remove_all else list(keys)
    for key in targets:
        shutil.rmtree(home / key, ignore_errors=True)
        (home / f".{key}.lock").unlink(missing_ok=True)
    if remove_all and home.is_dir():
        for extra in home.iterdir():
            if extra.name.startswith("."):
                _remove(extra)
    click.echo(f"removed {len(targets)} entr{'y' if len(targets) == 1 else 'ies'} from {home}")


def _remove(path: Path) -> None:
    if path.is_dir():
        shutil.rmtree(path, ignore_errors=True)
    else:
        path.unlink(missing_ok=True)
