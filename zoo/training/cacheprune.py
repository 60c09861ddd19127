"""Evicting prepared data: when each entry was last used, which entries are in use, and the
policy that removes the others (`zoo data rm --older-than`, `zoo data prune --max-size`,
`ZOO_CACHE_MAX`).

A run that maps an entry (zoo/training/datacache.py) first takes a shared `flock` on the
entry's use file, `<cache>/data/.<key>.use`, keeps it as long as the mapped `Data` lives (the
whole run), and sets the file's modification time to now: that time is the entry's last use. Removing an entry takes an
exclusive lock on the same file without waiting; while any process holds it shared (a run
training on the entry, every rank of one, a sweep trial) the entry is in use and is kept. The
kernel drops a killed process's locks, so no stale "in use" survives a crash, and a run that
starts while an entry is being removed waits for the removal, then prepares the data afresh.

The policy is least recently used first: `prune` removes entries last used longest ago until
the cache fits `max_bytes`, and with `older_than` every entry unused for that long.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import sys
import time
import weakref
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from zoo.core.errors import UsageError

DAY = 86400.0
ENV_MAX = "ZOO_CACHE_MAX"
_UNITS = {"": 1, "K": 10**3, "M": 10**6, "G": 10**9, "T": 10**12}
_UNITS.update({"KI": 2**10, "MI": 2**20, "GI": 2**30, "TI": 2**40})
_SIZE = re.compile(r"\s*([0-9]+(?:\.[0-9]*)?)\s*([kmgt]i?)?b?\s*", re.IGNORECASE)


def use_file(home: Path, key: str) -> Path:
    return home / f".{key}.use"


class Use:
    """This process's shared hold of an entry (see the module doc), released when `close`d
    or, after `keep_while(data)`, when that data is garbage-collected."""

    def __init__(self, home: Path, key: str):
        import fcntl

        self.file: IO[bytes] | None = None
        self.home, self.key = home, key
        path = use_file(home, key)
        while self.file is None:
            try:
                home.mkdir(parents=True, exist_ok=True)
                f = open(path, "a+b")  # noqa: SIM115  (closed by close or keep_while)
            except OSError:
                return  # a cache folder this process cannot write: used without the mark
            fcntl.flock(f.fileno(), fcntl.LOCK_SH)  # waits while the entry is removed
            if _same_file(f, path):
                self.file = f
            else:  # removed (with its entry) while this process waited: take the new one
                f.close()
        with contextlib.suppress(OSError):
            os.utime(path)

    def keep_while(self, data: Any) -> None:
        """Hold the entry as long as `data` (which maps its files) lives; when no entry was
        stored (data that cannot be), let go at once."""
        if self.file is not None and (self.home / self.key).is_dir():
            weakref.finalize(data, self.file.close)
            self.file = None
        self.close()

    def close(self) -> None:
        """Let go; a use file with no entry beside it (a build that failed) goes too."""
        if self.file is None:
            return
        self.file.close()
        self.file = None
        if not (self.home / self.key).exists():
            with claimed(self.home, self.key) as free:
                if free:
                    use_file(self.home, self.key).unlink(missing_ok=True)


def _same_file(f: IO[bytes], path: Path) -> bool:
    try:
        return os.stat(path).st_ino == os.fstat(f.fileno()).st_ino
    except OSError:
        return False


@contextlib.contextmanager
def using(home: Path, key: str) -> Iterator[Use]:
    """Mark entry `key` in use and used now, for the data mapped inside the block: call
    `keep_while(data)` on what is yielded, or the mark ends with the block."""
    use = Use(home, key)
    try:
        yield use
    finally:
        use.close()


@contextlib.contextmanager
def claimed(home: Path, key: str) -> Iterator[bool]:
    """Exclusive hold of entry `key` for removing it: yields False (and holds nothing) when a
    process uses it, without waiting."""
    import fcntl

    try:
        f = open(use_file(home, key), "a+b")  # noqa: SIM115  (closed below)
    except OSError:
        yield True  # no use file can be made: nobody can hold the entry either
        return
    with f:
        try:
            fcntl.flock(f.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            yield False
            return
        try:
            yield True
        finally:
            fcntl.flock(f.fileno(), fcntl.LOCK_UN)


def in_use(home: Path, key: str) -> bool:
    """Whether a process holds entry `key` now (see `hold`)."""
    if not use_file(home, key).exists():
        return False
    with claimed(home, key) as free:
        return not free


def last_used(entry: dict[str, Any]) -> float:
    """When an entry (a `datacache.entries` manifest) was last mapped, as a Unix time: its use
    file's modification time, else (never mapped since it was made) its manifest's."""
    folder = Path(entry["path"])
    for path in (use_file(folder.parent, entry["key"]), folder / "manifest.json", folder):
        with contextlib.suppress(OSError):
            return path.stat().st_mtime
    return 0.0


def remove(home: Path, key: str) -> bool:
    """Remove entry `key` (its folder, build lock and use file) unless a process uses it;
    whether it was removed."""
    with claimed(home, key) as free:
        if not free:
            return False
        shutil.rmtree(home / key, ignore_errors=True)
        (home / f".{key}.lock").unlink(missing_ok=True)
        use_file(home, key).unlink(missing_ok=True)  # under its lock: no holder can be left
    return True


@dataclass
class Pruned:
    """What a prune did: the entries removed and the bytes they held, those it had to keep
    because a process uses them, and the cache's size after it."""

    removed: list[dict[str, Any]] = field(default_factory=list)
    in_use: list[dict[str, Any]] = field(default_factory=list)
    freed: int = 0
    remaining: int = 0

    def as_dict(self) -> dict[str, Any]:
        return {
            "removed": [e["key"] for e in self.removed],
            "in_use": [e["key"] for e in self.in_use],
            "freed_bytes": self.freed,
            "remaining_bytes": self.remaining,
        }


def prune(
    home: Path,
    *,
    max_bytes: int | None = None,
    older_than: float | None = None,
    dry_run: bool = False,
) -> Pruned:
    """Remove entries least recently used first: damaged ones (they cannot be used), those
    unused for more than `older_than` seconds, then more while the cache holds over
    `max_bytes`. An entry a process uses is kept, and the next least recently used goes
    instead. `dry_run`: say what would go, remove nothing."""
    from zoo.training.datacache import entries

    found = entries(home)
    result = Pruned(remaining=sum(_bytes(e) for e in found))
    now = time.time()
    for entry in sorted(found, key=lambda e: (not e.get("damaged"), last_used(e))):
        stale = older_than is not None and now - last_used(entry) > older_than
        over = max_bytes is not None and result.remaining > max_bytes
        if not (entry.get("damaged") or stale or over):
            continue
        key = entry["key"]
        gone = not in_use(home, key) if dry_run else remove(home, key)
        if gone:
            result.removed.append(entry)
            result.freed += _bytes(entry)
            result.remaining -= _bytes(entry)
        else:
            result.in_use.append(entry)
    if not dry_run:
        _remove_orphans(home, {e["key"] for e in found})
    return result


def _remove_orphans(home: Path, keys: set[str]) -> None:
    """Use files left by runs on data that could not be stored (no entry), unless held."""
    for path in home.glob(".*.use"):
        key = path.name[1 : -len(".use")]
        if key not in keys and not (home / key).exists():
            with claimed(home, key) as free:
                if free:
                    path.unlink(missing_ok=True)


def auto_prune(home: Path) -> Pruned | None:
    """After a run prepared a new entry: with `ZOO_CACHE_MAX` set (a size such as 20G), prune
    the cache to it, least recently used first; None when it is not set."""
    text = os.environ.get(ENV_MAX, "").strip()
    if not text:
        return None
    pruned = prune(home, max_bytes=parse_size(text, ENV_MAX))
    if pruned.removed:
        count = len(pruned.removed)
        print(
            f"{ENV_MAX}={text}: removed {count} prepared entr{'y' if count == 1 else 'ies'} "
            f"used least recently ({pruned.freed / 1e6:,.1f} MB) from {home}",
            file=sys.stderr,
            flush=True,
        )
    return pruned


def parse_size(text: str, where: str) -> int:
    """Bytes from `500M`, `20G`, `1.5T`, `300MiB`, `123456` (K, M, G, T are powers of 1000;
    KiB, MiB, GiB, TiB of 1024); a UsageError naming `where` otherwise."""
    found = _SIZE.fullmatch(text)
    if found is None:
        raise UsageError(f"{where} {text!r}: expected a size such as 500M, 20G or 1.5T")
    unit = (found.group(2) or "").upper()
    return int(float(found.group(1)) * _UNITS[unit])


def _bytes(entry: dict[str, Any]) -> int:
    value = entry.get("bytes")
    return int(value) if isinstance(value, (int, float)) else _disk_bytes(Path(entry["path"]))


def _disk_bytes(folder: Path) -> int:
    """The size of a damaged entry's files, whose manifest cannot say."""
    total = 0
    for path in folder.rglob("*"):
        with contextlib.suppress(OSError):
            total += path.stat().st_size if path.is_file() else 0
    return total
