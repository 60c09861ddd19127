"""Prepared data: a dataset's loaded splits stored once as memory-mapped files, mapped later.

The first run on a dataset calls its loader as always, then stores what the loader gave (the
examples of every split, the state, collate and length) under `<cache>/data/<key>/`; later
runs, seeds, sweep trials and every local rank map those files instead of parsing the data.

Storage is an indexed dataset in the manner of fairseq and Megatron: for a split that is a list
of examples, one flat byte file of the examples (each pickled) plus an offsets index and each
example's length (`zoo.toolkit.records`, the files a streamed reader writes too, which are
hard-linked rather than pickled again), mapped with `numpy.memmap` and unpickled only when a
batch asks for an example; a split that is an
object of its own (the char LM's `Stream`) is pickled with protocol 5, its numpy arrays written
out of band as flat files (nanoGPT's `train.bin`) and mapped back without a copy. Everything
else of the `Data` (state, collate, length, summary, info) is one small pickle.

The key is a hash of everything that decides what the loader gives: every data file's bytes
(each config value naming a file or folder, folders walked), the dataset's config, the plugin's
name, version and source code, and `FORMAT`. Any change gives another key, so nothing stale is
used. An entry is built in a temporary folder, each file fsynced, its manifest (sizes and
SHA-256 of each file) written last, then renamed into place under a lock (`fcntl.flock`):
concurrent runs build once, a killed build leaves no entry, and a damaged entry (a size or
checksum that differs) is rebuilt with one warning line.
"""

from __future__ import annotations

import contextlib
import dataclasses
import errno
import hashlib
import inspect
import io
import json
import mmap
import os
import pickle
import shutil
import sys
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from zoo.core import config as cfg
from zoo.core.cachedir import data_cache_home
from zoo.core.errors import ZooError
from zoo.core.version import __version__
from zoo.toolkit.records import Records, RecordWriter, Taken

if TYPE_CHECKING:  # torch stays unimported for `zoo data ls` and `rm`
    from zoo.toolkit.data import Data

FORMAT = 2  # bump when the stored layout changes: every older entry then misses
MANIFEST = "manifest.json"
SHELL = "data"  # data.pkl: the Data without its splits
CHUNK = 1 << 20
Report = Callable[[str, int, int], None]  # (what, done, total): `zoo data prepare`'s bar


def silent(what: str, done: int, total: int) -> None:
    """The default report: nothing (zoo run prints its own progress)."""


class CacheError(ZooError):
    """The cache folder cannot be written (a full disk, no permission): one line, nothing left
    half-written."""


class NotCacheable(Exception):
    """This dataset's Data cannot be stored (a lambda for collate, say); it is read as today."""


# ------------------------------------------------------------------------------ the key
def hash_file(path: str | os.PathLike[str], digest: Any = None) -> str:
    """SHA-256 of a file's bytes, read 1 MiB at a time (bounded memory whatever its size)."""
    h = digest or hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(CHUNK):
            h.update(chunk)
    return h.hexdigest()


def input_files(values: dict[str, Any]) -> list[Path]:
    """The files a dataset's config names: each string value that is an existing file, and
    every file under each value that is an existing folder, in a stable order."""
    found: list[Path] = []
    for value in values.values():
        if not isinstance(value, str) or not value or "\n" in value or len(value) > 4096:
            continue
        path = Path(value)
        with contextlib.suppress(OSError):
            if path.is_file():
                found.append(path)
            elif path.is_dir():
                found.extend(sorted(p for p in path.rglob("*") if p.is_file()))
    return found


def code_hash(loader: Callable[..., Any]) -> str:
    """A hash of the source files beside the loader's module, so that editing a plugin's code
    (without a new version) never reuses data its old code prepared."""
    h = hashlib.sha256()
    module = inspect.getmodule(loader)
    where = getattr(module, "__file__", None)
    if where:
        for path in sorted(Path(where).parent.glob("*.py")):
            h.update(path.name.encode() + b"\0")
            hash_file(path, h)
    else:
        h.update(getattr(loader, "__qualname__", repr(loader)).encode())
    return h.hexdigest()


def describe(
    name: str, plugin: Any, loader: Callable[..., Any], config: Any, report: Report = silent
) -> tuple[str, dict[str, Any]]:
    """(key, what the key covers): the files' content, the config, the plugin and the code."""
    values = cfg.to_dict(config) if dataclasses.is_dataclass(config) else {}
    files = input_files(values)
    hashed = []
    for i, path in enumerate(files):
        report("hashing the data files", i, len(files))
        hashed.append({"path": os.fspath(path), "sha256": hash_file(path)})
    facts = {
        "format": FORMAT,
        "dataset": name,
        "plugin": plugin.name,
        "distribution": plugin.distribution,
        "version": plugin.version,
        "code": code_hash(loader),
        "config": json.loads(json.dumps(values, default=str, sort_keys=True)),
        "files": hashed,
    }
    digest = hashlib.sha256(json.dumps(facts, sort_keys=True).encode()).hexdigest()
    return f"{name}-{digest[:20]}", facts


# ------------------------------------------------------------------------------ writing
def _write(folder: Path, name: str, chunks: Iterator[bytes | memoryview]) -> dict[str, Any]:
    """One file of an entry, fsynced; its size and checksum for the manifest."""
    h, size = hashlib.sha256(), 0
    with open(folder / name, "wb") as f:
        for chunk in chunks:
            h.update(chunk)
            size += f.write(chunk)
        f.flush()
        os.fsync(f.fileno())
    return {"size": size, "sha256": h.hexdigest()}


def _store_records(
    folder: Path, split: str, examples: Sequence[Any], length: Any, report: Report
) -> dict[str, Any]:
    """A split of examples as `zoo.toolkit.records` files: `<split>.rec` (the pickles end to
    end), `<split>.idx` (n + 1 offsets) and, with a length function, `<split>.len` (each
    example's length, so that batching reads no example). A split that is already records (a
    reader that streamed a large file) is hard-linked, or copied, not pickled again."""
    names = [f"{split}.{ext}" for ext in ("rec", "idx", "len")]
    if isinstance(examples, Records):
        for source, name in zip(examples.paths[:2], names):
            _link(source, folder / name)
        if length is not None and examples.lengths is not None and examples.length is length:
            _link(examples.paths[2], folder / names[2])
        elif length is not None:
            lens = np.fromiter((length(e) for e in examples), np.int64, count=len(examples))
            (folder / names[2]).write_bytes(lens.tobytes())
    else:

        def counted() -> Iterator[Any]:
            for i, example in enumerate(examples):
                if i % 4096 == 0:
                    report(f"storing {split}", i, len(examples))
                yield example

        RecordWriter(folder, split, length).extend(counted()).close()
    return {name: _synced(folder / name) for name in names if (folder / name).exists()}


def _link(source: Path, target: Path) -> None:
    """`source` at `target`: a hard link where both are on one file system, else a copy (by
    the kernel, a block at a time)."""
    try:
        os.link(source, target)
    except OSError:
        shutil.copyfile(source, target)


def _synced(path: Path) -> dict[str, Any]:
    """A file of an entry, fsynced; its size and checksum for the manifest."""
    with open(path, "rb") as f:
        os.fsync(f.fileno())
    return {"size": path.stat().st_size, "sha256": hash_file(path)}


class _ArrayPickler(pickle.Pickler):
    """A pickler that leaves numpy arrays out: each becomes a flat file of its own, mapped
    back on load (a text's ids, a series), so no array is copied into the pickle or into
    memory."""

    def __init__(self, file: Any, arrays: list[np.ndarray]):
        super().__init__(file, protocol=5)
        self.arrays = arrays

    def persistent_id(self, obj: Any) -> Any:
        if isinstance(obj, np.ndarray) and not obj.dtype.hasobject:
            self.arrays.append(obj)
            return ("array", len(self.arrays) - 1, obj.dtype.str, obj.shape)
        return None


class _ArrayUnpickler(pickle.Unpickler):
    def __init__(self, file: Any, folder: Path, stem: str):
        super().__init__(file)
        self.folder, self.stem = folder, stem

    def persistent_load(self, pid: Any) -> Any:
        _, i, dtype, shape = pid
        path = self.folder / f"{self.stem}.{i}.bin"
        if path.stat().st_size == 0:
            return np.empty(shape, dtype=dtype)
        return np.memmap(path, dtype=np.dtype(dtype), mode="r", shape=tuple(shape))


def _array_chunks(array: np.ndarray) -> Iterator[bytes]:
    """An array's bytes, 16 MiB at a time. A memory-mapped array is read through its map and
    its pages released as it goes, so copying a 4 GB map does not grow the process."""
    flat = array.reshape(-1) if array.flags.c_contiguous else np.ascontiguousarray(array).ravel()
    step = max(1, (16 << 20) // max(1, flat.itemsize))
    root = array
    while not isinstance(root, np.memmap) and isinstance(getattr(root, "base", None), np.ndarray):
        root = root.base
    mapped = getattr(root, "_mmap", None)
    for i in range(0, len(flat), step):
        yield flat[i : i + step].tobytes()
        if mapped is not None and hasattr(mapped, "madvise"):
            with contextlib.suppress(OSError, ValueError):
                mapped.madvise(mmap.MADV_DONTNEED)


def _dump(folder: Path, stem: str, value: Any) -> tuple[dict[str, Any], int]:
    """`value` as `<stem>.pkl` and its arrays as `<stem>.<i>.bin`."""
    arrays: list[np.ndarray] = []
    sink = io.BytesIO()
    _ArrayPickler(sink, arrays).dump(value)
    files = {f"{stem}.pkl": _write(folder, f"{stem}.pkl", iter([sink.getvalue()]))}
    for i, array in enumerate(arrays):
        files[f"{stem}.{i}.bin"] = _write(folder, f"{stem}.{i}.bin", _array_chunks(array))
    return files, len(arrays)


def _undump(folder: Path, stem: str) -> Any:
    with open(folder / f"{stem}.pkl", "rb") as f:
        return _ArrayUnpickler(f, folder, stem).load()


def shell_of(data: Data) -> Data:
    """Data without its splits; NotCacheable when it does not pickle (tried on a throwaway
    sink, arrays left out)."""
    shell = dataclasses.replace(data, splits={})
    try:
        _ArrayPickler(io.BytesIO(), []).dump(shell)
    except Exception as e:  # pickling raises whatever the object's reducer raises
        raise NotCacheable(f"its Data does not pickle ({type(e).__name__}: {e})") from None
    return shell


def store(folder: Path, data: Data, facts: dict[str, Any], report: Report = silent) -> None:
    """Write `data` into the (new, empty) `folder`: the files, then the manifest last."""
    files, _ = _dump(folder, SHELL, shell_of(data))
    layout: dict[str, Any] = {}
    for split, value in data.splits.items():
        if isinstance(value, (list, tuple, Records, Taken)):
            files.update(_store_records(folder, split, value, data.length, report))
            layout[split] = {"kind": "records", "count": len(value)}
        else:
            report(f"storing {split}", 0, 1)
            written, arrays = _dump(folder, split, value)
            files.update(written)
            layout[split] = {"kind": "object", "arrays": arrays}
    manifest = {
        **facts,
        "zoo": __version__,
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "summary": data.summary,
        "splits": layout,
        "entries": files,
        "bytes": sum(f["size"] for f in files.values()),
    }
    _write(folder, MANIFEST, iter([json.dumps(manifest, indent=1).encode()]))


# ------------------------------------------------------------------------------ reading
def _present(path: Path) -> Path | None:
    return path if path.exists() else None


def verify(folder: Path) -> dict[str, Any]:
    """The entry's manifest, after checking each file's size and SHA-256 against it; raises
    ValueError saying what differs (a truncated or damaged entry)."""
    try:
        manifest = json.loads((folder / MANIFEST).read_text("utf-8"))
        entries = manifest["entries"]
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise ValueError(f"its manifest is unreadable ({e})") from None
    for name, want in entries.items():
        path = folder / name
        try:
            size = path.stat().st_size
        except OSError:
            raise ValueError(f"{name} is missing") from None
        if size != want["size"]:
            raise ValueError(f"{name} has {size} bytes, expected {want['size']}")
        if hash_file(path) != want["sha256"]:
            raise ValueError(f"{name} does not match its checksum")
    return manifest


def load(folder: Path, manifest: dict[str, Any]) -> Data:
    """The Data stored in a verified entry, its splits mapped."""
    data = _undump(folder, SHELL)
    splits: dict[str, Any] = {}
    for split, layout in manifest["splits"].items():
        if layout["kind"] == "records":
            lens = folder / f"{split}.len"
            records = Records(folder / f"{split}.rec", folder / f"{split}.idx", _present(lens))
            records.length = data.length  # the lengths were stored by it
            splits[split] = records
        else:
            splits[split] = _undump(folder, split)
    data.splits = splits
    return data


# ------------------------------------------------------------------------------ building
@contextlib.contextmanager
def locked(home: Path, key: str) -> Iterator[None]:
    """An exclusive lock for building `key`: other processes (runs, sweep trials, local ranks)
    wait here, then find the entry built."""
    import fcntl

    try:
        home.mkdir(parents=True, exist_ok=True)
        f = open(home / f".{key}.lock", "a+b")  # noqa: SIM115  (closed below)
    except OSError as e:
        raise CacheError(_os_message(e, home)) from None
    with f:
        fcntl.flock(f.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f.fileno(), fcntl.LOCK_UN)


def _fsync_dir(folder: Path) -> None:
    with contextlib.suppress(OSError):
        fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def build(home: Path, key: str, data: Data, facts: dict[str, Any], report: Report = silent) -> Path:
    """Store `data` as entry `key`: written in a temporary folder, then renamed into place.
    Call under `locked`. A full disk raises CacheError with nothing left behind."""
    final = home / key
    for stale in home.glob(f".build.{key}.*"):  # builds killed before their rename
        shutil.rmtree(stale, ignore_errors=True)
    tmp = home / f".build.{key}.{os.getpid()}-{uuid.uuid4().hex[:8]}"
    try:
        tmp.mkdir(parents=True)
        store(tmp, data, {**facts, "key": key}, report)
        _fsync_dir(tmp)
        if final.exists():
            shutil.rmtree(final)
        os.rename(tmp, final)
        _fsync_dir(home)
    except OSError as e:
        shutil.rmtree(tmp, ignore_errors=True)
        raise CacheError(_os_message(e, home)) from None
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return final


def _os_message(e: OSError, home: Path) -> str:
    if e.errno in (errno.ENOSPC, errno.EDQUOT):
        what = "no space left on the device"
    else:
        what = e.strerror or str(e)
    return (
        f"cannot prepare data in the cache {home}: {what}; free space there, choose another "
        "folder with --cache-dir DIR, or read the data without the cache with --no-cache"
    )


def warn(message: str) -> None:
    print(f"warning: {message}", file=sys.stderr, flush=True)


def _usable(folder: Path) -> Data | None:
    """The entry's Data when it is complete and whole; None when there is none; a damaged
    entry costs one warning line and is removed (then rebuilt by the caller)."""
    if not (folder / MANIFEST).exists():
        return None
    try:
        manifest = verify(folder)
        return load(folder, manifest)
    except Exception as e:  # a damaged pickle raises anything
        warn(f"prepared data {folder.name} is damaged ({e}); preparing it again")
        shutil.rmtree(folder, ignore_errors=True)
        return None


def prepared(
    home: Path,
    key: str,
    facts: dict[str, Any],
    read: Callable[[], Data],
    report: Report = silent,
) -> tuple[Data, bool]:
    """(the data, whether it was built now): mapped from entry `key` when it is whole, else
    read by `read()`, stored, and mapped back (so a first run trains on exactly what later
    runs map). Data that does not pickle is returned as read, not stored."""
    folder = home / key
    data = _usable(folder)
    if data is not None:
        return data, False
    with locked(home, key):
        data = _usable(folder)  # another process may have built it while this one waited
        if data is not None:
            return data, False
        report("reading the data", 0, 1)
        fresh = read()
        if fresh.info.get("cache") is False:  # the plugin opts out (docs/plugins.md)
            return fresh, False
        try:
            shell_of(fresh)  # before any file is written
        except NotCacheable:
            return fresh, False
        build(home, key, fresh, facts, report)
    report("checking the prepared files", 0, 1)
    data = _usable(folder)
    return (data if data is not None else fresh), True


def entries(home: Path) -> list[dict[str, Any]]:
    """Each complete entry's manifest (with `key` and `path`), newest first; damaged ones are
    listed with `damaged` set."""
    found = []
    if not home.is_dir():
        return found
    for folder in sorted(p for p in home.iterdir() if p.is_dir() and not p.name.startswith(".")):
        try:
            manifest = json.loads((folder / MANIFEST).read_text("utf-8"))
        except (OSError, ValueError):
            manifest = {"damaged": True}
        manifest.update(key=folder.name, path=os.fspath(folder))
        found.append(manifest)
    return sorted(found, key=lambda m: m.get("created", ""), reverse=True)


def cache_enabled() -> bool:
    """False when `--no-cache` (or ZOO_NO_CACHE=1) asked to read the data as before."""
    return os.environ.get("ZOO_NO_CACHE", "") not in ("1", "true", "yes")


def home_from_env() -> Path:
    """The prepared-data folder: `--cache-dir` (passed on as ZOO_CACHE_DIR, so sweep trials
    and local ranks see it too), else `data_cache_home`'s default."""
    return data_cache_home(os.environ.get("ZOO_CACHE_DIR") or None)
