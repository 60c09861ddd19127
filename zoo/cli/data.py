"""`zoo data prepare|ls|rm|prune`: the prepared-data cache (zoo/training/datacache.py,
docs/data.md).

`zoo run` prepares data by itself on its first run; these commands prepare ahead of time (one
machine, before a sweep or a multi-process run), show what the cache holds and what made each
entry, and remove entries (by key, by age, or least recently used first down to a size). None
of them imports torch except `prepare`.
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
from zoo.core.errors import UsageError, ZooError
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
    from zoo.training import cacheprune

    home = Path(entry["path"]).parent
    used = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(cacheprune.last_used(entry)))
    return {
        "key": entry["key"],
        "dataset": entry.get("dataset"),
        "bytes": entry.get("bytes"),
        "files": [f["path"] for f in entry.get("files", [])],
        "created": entry.get("created"),
        "last_used": used,
        "in_use": cacheprune.in_use(home, entry["key"]),
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
    """List prepared entries: key, dataset, size, files, when and by which zoo and plugin,
    when last used (and whether a running process uses it)."""
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
            r["last_used"] + (" (in use)" if r["in_use"] else ""),
            f"zoo {r['zoo'] or '?'}, {r['plugin']}",
            ", ".join(r["files"]) if len(r["files"]) <= 3 else f"{len(r['files'])} files",
        ]
        for r in rows
    ]
    headers = ["key", "dataset", "size", "made", "last used", "by", "files"]
    click.echo(table(lines, headers))
    total = sum(r["bytes"] or 0 for r in rows)
    click.echo(f"{len(rows)} entries, {_mb(total)} in {home}")


older_than_option = option(
    "--older-than",
    type=click.FloatRange(min=0),
    metavar="DAYS",
    help="Entries not used for more than DAYS days (fractions allowed: 0.5 is 12 hours).",
)


@data_group.command("rm")
@click.argument("keys", nargs=-1)
@option("--all", "remove_all", is_flag=True, help="Remove every entry (and unfinished builds).")
@older_than_option
@cache_dir_option
def rm_command(
    keys: tuple[str, ...], remove_all: bool, older_than: float | None, cache_dir: str | None
) -> None:
    """Remove prepared entries by KEY (as `zoo data ls` shows them), --older-than DAYS, or
    --all. An entry that a running process uses is kept, and named in an error."""
    from zoo.training import cacheprune

    home = _home(cache_dir)
    chosen = sum([bool(keys), remove_all, older_than is not None])
    if chosen != 1:
        what = "KEYs (see `zoo data ls`), --older-than DAYS or --all"
        raise UsageError(f"zoo data rm: give {what}" + (", only one of them" if chosen else ""))
    found = _entries(home)
    known = {e["key"] for e in found}
    for key in keys:
        if key not in known or "/" in key or key.startswith("."):
            raise UsageError(f"zoo data rm: no prepared entry {key!r} in {home}; see `zoo data ls`")
    if older_than is not None:
        cutoff = time.time() - older_than * cacheprune.DAY
        targets = sorted(e["key"] for e in found if cacheprune.last_used(e) < cutoff)
    else:
        targets = sorted(known) if remove_all else list(keys)
    kept = [key for key in targets if not cacheprune.remove(home, key)]
    if remove_all and home.is_dir():
        for extra in home.iterdir():
            if extra.name.startswith(".") and extra.name[1:].removesuffix(".use") not in kept:
                _remove(extra)
    removed = len(targets) - len(kept)
    click.echo(f"removed {removed} entr{'y' if removed == 1 else 'ies'} from {home}")
    if kept:
        raise ZooError(
            f"zoo data rm: kept {', '.join(kept)}: in use by a running process (zoo run, a "
            "sweep trial); remove it when that has finished"
        )


@data_group.command("prune")
@option(
    "--max-size",
    metavar="SIZE",
    help="Remove least recently used entries until the cache holds at most SIZE (500M, 20G, "
    "1.5T; default: $ZOO_CACHE_MAX).",
)
@older_than_option
@option("--dry-run", is_flag=True, help="Say what would be removed; remove nothing.")
@cache_dir_option
@json_option
def prune_command(
    max_size: str | None,
    older_than: float | None,
    dry_run: bool,
    cache_dir: str | None,
    as_json: bool,
) -> None:
    """Evict prepared entries, least recently used first, never one in use (docs/data.md,
    "Eviction")."""
    from zoo.training import cacheprune

    if max_size is None and older_than is None:
        max_size = os.environ.get(cacheprune.ENV_MAX, "").strip() or None
        if max_size is None:
            raise UsageError(
                f"zoo data prune: give --max-size SIZE or --older-than DAYS (or set "
                f"{cacheprune.ENV_MAX})"
            )
    limit = None if max_size is None else cacheprune.parse_size(max_size, "--max-size")
    days = None if older_than is None else older_than * cacheprune.DAY
    home = _home(cache_dir)
    pruned = cacheprune.prune(home, max_bytes=limit, older_than=days, dry_run=dry_run)
    if as_json:
        click.echo(json.dumps({"cache": os.fspath(home), "dry_run": dry_run, **pruned.as_dict()}))
        return
    verb = "would remove" if dry_run else "removed"
    for entry in pruned.removed:
        click.echo(f"{verb} {entry['key']} ({_mb(entry.get('bytes') or 0)})")
    for entry in pruned.in_use:
        click.echo(f"kept {entry['key']}: in use by a running process")
    count = len(pruned.removed)
    click.echo(
        f"{verb} {count} entr{'y' if count == 1 else 'ies'} ({_mb(pruned.freed)}); "
        f"{_mb(pruned.remaining)} left in {home}"
    )


def _remove(path: Path) -> None:
    if path.is_dir():
        shutil.rmtree(path, ignore_errors=True)
    else:
        path.unlink(missing_ok=True)
