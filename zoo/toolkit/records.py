"""Examples on disk: a list of any Python values written once, mapped back one at a time.

The one home of zoo's indexed-record files (fairseq's and Megatron's indexed datasets, with
numpy alone): `NAME.rec` holds the examples pickled end to end, `NAME.idx` their n + 1 byte
offsets (int64), and, when a length function was given, `NAME.len` each example's length
(int64), so that batching by length reads no example. `Records` maps the three files and
unpickles an example only when it is asked for; memory holds what a batch uses, and the page
cache is shared by every process mapping the same files.

Two users: the prepared-data cache (`zoo.training.datacache`) stores a loader's splits this
way, and a loader reading a file larger than memory (`STREAM_ABOVE`) writes what it parses
to temporary records with `spill` (or a `RecordWriter`) instead of a list: the same
examples in the same order, in bounded memory. Temporary records live in a folder of
`tempfile.gettempdir()` (`TMPDIR`) that is removed when the `Records` object is garbage or
the process exits; a process killed with SIGKILL leaves its `zoo-records-*` folder behind.
`take` gives a split of a sequence by positions without copying it (a `Taken` view).
No torch here.
"""

from __future__ import annotations

import contextlib
import errno
import mmap
import os
import pickle
import shutil
import tempfile
import weakref
from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any, TypeVar

import numpy as np

from zoo.core.errors import ZooError

T = TypeVar("T")
BUFFER = 1 << 20  # bytes of pickles (or offsets) gathered before a write
RELEASE_EVERY = 64  # examples read between two `Records.release`
POSITIONS_MAX = 2**31 - 1  # the largest position an int32 array of positions holds


def positions_dtype(n: int) -> np.dtype:
    """The dtype of positions 0 .. n-1 (a split, an epoch's order): int32 while they fit
    (`POSITIONS_MAX`), int64 above. Half the bytes of int64: 27 MB, not 54, for each array of
    the 6.7 M examples of a 1 GB file."""
    return np.dtype(np.int32 if n - 1 <= POSITIONS_MAX else np.int64)


def stream_above() -> int:
    """Bytes above which a reader streams its file instead of reading it whole:
    `ZOO_STREAM_ABOVE` (read at each call, so tests can use tiny files), else 64 MiB."""
    return int(os.environ.get("ZOO_STREAM_ABOVE", 64 << 20))


def is_large(path: str | os.PathLike[str] | None) -> bool:
    """Whether the file at `path` is larger than `stream_above()` (False when it cannot be
    read: the reader then says what is wrong with it)."""
    if path is None:
        return False
    try:
        return os.path.getsize(path) > stream_above()
    except OSError:
        return False


class Records(Sequence):
    """Examples mapped from `rec` and `idx` (and `lens`, their lengths, when given): an
    example is unpickled when asked for. `lengths` is the int64 array of lengths or None;
    `length` the function that made them (set by whoever wrote them), so `Data` batches by
    those lengths only when they are its own length function's."""

    def __init__(self, rec: Path, idx: Path, lens: Path | None = None):
        self.paths = (Path(rec), Path(idx), Path(lens) if lens is not None else None)
        self.offsets = _map(idx)
        size = int(self.offsets[-1]) if len(self.offsets) else 0
        self.data = _map(rec, np.uint8) if size else np.empty(0, np.uint8)
        self.lengths: np.ndarray | None = _map(lens) if lens is not None else None
        self.length: Callable[[Any], int] | None = None
        self.reads = 0
        for array in (self.data, self.offsets, self.lengths):  # reads of one example each:
            _advise(array, mmap.MADV_RANDOM)  # no read-around of the pages beside it

    def __len__(self) -> int:
        return max(0, len(self.offsets) - 1)

    def __getitem__(self, i: Any) -> Any:
        if isinstance(i, slice):
            return [self[j] for j in range(*i.indices(len(self)))]
        i = position(i, len(self))
        self.reads += 1
        if self.reads % RELEASE_EVERY == 0:
            self.release()  # a read maps its page and the kernel's read-around: tens of KiB
        start, end = int(self.offsets[i]), int(self.offsets[i + 1])
        return pickle.loads(self.data[start:end])

    def release(self) -> None:
        """Drop this process's mapped pages of the files (they stay in the page cache, shared):
        a mapped page counts in a process's resident memory until then."""
        for array in (self.data, self.offsets, self.lengths):
            _advise(array, mmap.MADV_DONTNEED)

    def __reduce__(self) -> Any:
        raise TypeError("Records are files mapped by this process; store them, not pickle them")


def _advise(array: np.ndarray | None, advice: int) -> None:
    mapped = getattr(array, "_mmap", None)
    if mapped is not None and hasattr(mapped, "madvise"):
        with contextlib.suppress(OSError, ValueError):
            mapped.madvise(advice)


def _map(path: Path | None, dtype: Any = np.int64) -> np.ndarray:
    """A file as a read-only array (an empty file as an empty array: mmap refuses those)."""
    if path is None or os.path.getsize(path) == 0:
        return np.empty(0, dtype)
    return np.memmap(path, dtype=dtype, mode="r")


class RecordWriter:
    """Appends examples to `NAME.rec`/`.idx` (and `.len` with `length`) in `folder`, then
    `close()` maps them back as `Records`. Without a folder, a temporary one, removed when the
    Records are garbage (or the process exits). Memory holds one 1 MiB buffer."""

    def __init__(
        self,
        folder: str | os.PathLike[str] | None = None,
        name: str = "records",
        length: Callable[[Any], int] | None = None,
    ):
        self.temporary = folder is None
        self.folder = Path(tempfile.mkdtemp(prefix="zoo-records-") if folder is None else folder)
        self.name, self.length, self.count, self.size = name, length, 0, 0
        self.rec = open(self.folder / f"{name}.rec", "wb")  # noqa: SIM115  (closed in close)
        self.idx = open(self.folder / f"{name}.idx", "wb")  # noqa: SIM115
        self.lens = open(self.folder / f"{name}.len", "wb") if length is not None else None  # noqa: SIM115
        self.idx.write(np.zeros(1, np.int64).tobytes())
        self.pending: list[bytes] = []
        self.offsets: list[int] = []
        self.sizes: list[int] = []
        self.buffered = 0

    def append(self, example: Any) -> None:
        raw = pickle.dumps(example, protocol=5)
        self.pending.append(raw)
        self.size += len(raw)
        self.count += 1
        self.offsets.append(self.size)
        if self.length is not None:
            self.sizes.append(self.length(example))
        self.buffered += len(raw)
        if self.buffered >= BUFFER or len(self.offsets) >= BUFFER // 8:
            self._flush()

    def extend(self, examples: Iterable[Any]) -> RecordWriter:
        for example in examples:
            self.append(example)
        return self

    def _flush(self) -> None:
        self.rec.write(b"".join(self.pending))
        self.idx.write(np.asarray(self.offsets, np.int64).tobytes())
        if self.lens is not None:
            self.lens.write(np.asarray(self.sizes, np.int64).tobytes())
        self.pending, self.offsets, self.sizes, self.buffered = [], [], [], 0

    def close(self) -> Records:
        """The written examples, mapped (the files flushed and closed)."""
        try:
            self._flush()
        finally:
            for f in (self.rec, self.idx, self.lens):
                if f is not None:
                    f.close()
        paths = [self.folder / f"{self.name}.{ext}" for ext in ("rec", "idx", "len")]
        records = Records(paths[0], paths[1], paths[2] if self.lens is not None else None)
        records.length = self.length
        if self.temporary:
            weakref.finalize(records, shutil.rmtree, self.folder, True)
        return records

    def discard(self) -> None:
        """Close and remove what was written (a reader that failed half way)."""
        for f in (self.rec, self.idx, self.lens):
            if f is not None:
                with contextlib.suppress(OSError):
                    f.close()
        if self.temporary:
            shutil.rmtree(self.folder, ignore_errors=True)


def spill(examples: Iterable[Any], length: Callable[[Any], int] | None = None) -> Records:
    """`examples` written to temporary records and mapped back: `list(examples)` for data
    larger than memory (the same examples, in the same order). Nothing is left behind when
    iterating `examples` raises."""
    writer = RecordWriter(length=length)
    try:
        return writer.extend(examples).close()
    except OSError as e:  # a full temporary folder: one line saying where, nothing left
        writer.discard()
        if e.errno not in (errno.ENOSPC, errno.EDQUOT):
            raise
        raise ZooError(
            f"cannot write temporary records in {writer.folder.parent}: "
            f"{e.strerror or e}; point TMPDIR at a folder with room (about twice the data)"
        ) from None
    except BaseException:
        writer.discard()
        raise


def position(i: Any, n: int) -> int:
    """`i` as a position in a sequence of `n` items (negative counts from the end), as a list
    indexes; IndexError outside it."""
    i = int(i)
    if i < 0:
        i += n
    if not 0 <= i < n:
        raise IndexError(i)
    return i


class Taken(Sequence):
    """The examples of `base` at `positions` (an integer array), in that order, without copying
    them: a split cut from a mapped sequence. Positions keep their dtype (int32 from
    `zoo.toolkit.splits.shuffled`): an int64 copy would be 8 bytes an example more."""

    def __init__(self, base: Sequence[Any], positions: Any):
        positions = np.asarray(positions)
        if positions.dtype.kind not in "iu":  # an empty list is float64
            positions = positions.astype(np.int64)
        self.base, self.positions = base, positions

    def __len__(self) -> int:
        return len(self.positions)

    def __getitem__(self, i: Any) -> Any:
        if isinstance(i, slice):
            return Taken(self.base, self.positions[i])
        return self.base[int(self.positions[i])]

    def __iter__(self) -> Iterator[Any]:
        for p in self.positions:
            yield self.base[int(p)]


def take(examples: Sequence[T], positions: Any) -> Sequence[T]:
    """The examples at `positions`: a list for a list or tuple (as before), else a `Taken`
    view that copies nothing (a mapped split)."""
    if isinstance(examples, (list, tuple)):
        return [examples[i] for i in positions]
    return Taken(examples, positions)
