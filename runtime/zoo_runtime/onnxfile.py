"""Reading an exported model file without trusting it.

Before onnxruntime sees a byte, the file's top level is scanned by hand (the ONNX file is a
protobuf `ModelProto`; its `metadata_props` are field 14) and the metadata checked: the file's
size, every length inside it, the number of metadata entries, the size of each key and value
and of all of them together (before any value is decoded or parsed: json.loads of a 16 MiB
value can take 20 times that in memory), that each JSON value parses, is not nested deeper
than `MAX_DEPTH`, and has the type its key needs. A truncated file, a file that is not ONNX,
or metadata that is huge, nested, or of the wrong types is one `ModelError` after work
bounded by the file's size. Only then is the graph given to onnxruntime, from memory (so no
external-data path in the file is ever opened), and its inputs compared with what the
metadata says they are. Nothing in the file is imported or executed but the graph.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Any

FORMAT = "zoo.onnx"
FORMAT_VERSION = 1
MAX_FILE_BYTES = 2 * 1024**3  # protobuf's own limit for one message
MAX_ENTRIES = 256
# A tagger trained on UD English EWT writes a 0.2 MB data state, its largest value; these are
# 80 and 160 times that, and bound what parsing the metadata may cost (about 20 bytes of
# memory a byte in the worst case).
MAX_VALUE_BYTES = 16 * 1024**2  # one metadata value
MAX_METADATA_BYTES = 32 * 1024**2  # all metadata entries together, keys and values
MAX_KEY_BYTES = 1024  # one metadata key (zoo's are words: `data_state`, `runtime`)
MAX_DEPTH = 16
JSON_KEYS = ("plugin", "config", "data_config", "train_config", "data_state", "metrics", "runtime")
REQUIRED = ("format", "format_version", "architecture", "task", "data_state", "runtime")
METADATA_FIELD = 14  # ModelProto.metadata_props


class RuntimeZooError(Exception):
    """A failure the user can act on: printed as one `Error:` line."""

    exit_code = 1


class ModelError(RuntimeZooError):
    """A model file that is missing, damaged, hostile, or not an exported zoo model."""


class UsageError(RuntimeZooError):
    """Input or options the model cannot use (exit 2)."""

    exit_code = 2


class SettingError(UsageError):
    """A predict option with a bad value (`max_input_length=0`): zoo's SettingError, whose
    message starts with the option; the command line puts `--set ` before it."""


class DataError(RuntimeZooError):
    """A file of inputs the model cannot read (a CSV without a header, a bad row)."""


class OutOfMemory(RuntimeZooError):
    """The machine (or its limit: ulimit -v, a container's) had no memory for a step."""


# How onnxruntime's C++ says it could not allocate (std::bad_alloc, its arena, mmap).
_ALLOCATION_FAILURES = ("bad_alloc", "bad allocation", "failed to allocate", "cannot allocate")
_SIZE = re.compile(r"(?:buffer of size|allocate) (\d+(?:\.\d+)? ?(?:[KMGTP]i?B|bytes)?)", re.I)


def out_of_memory(e: BaseException) -> OutOfMemory | None:
    """An OutOfMemory for an exception that says the memory ran out (a MemoryError, numpy's
    or Python's; onnxruntime's allocation failures), else None."""
    text = str(e)
    if not isinstance(e, MemoryError) and not any(s in text.lower() for s in _ALLOCATION_FAILURES):
        return None
    size = _SIZE.search(text)
    amount = size.group(1) if size else ""
    if amount.isdigit():
        amount = f"{int(amount):,} bytes"
    who = "onnxruntime" if not isinstance(e, MemoryError) else "numpy" if amount else ""
    detail = f": {who} could not allocate {amount}" if amount else ""
    return OutOfMemory(
        f"out of memory{detail}; give fewer or shorter inputs at once (--set batch_size=N "
        "where the model batches), or more memory"
    )


def read(path: str | os.PathLike[str]) -> tuple[bytes, dict[str, Any]]:
    """The file's bytes and its decoded, checked metadata."""
    name = str(path)
    data = _read_bytes(Path(path), name)
    spans = _metadata_entries(data, name)
    for key in REQUIRED:
        if key not in spans:
            if key == "format":
                raise ModelError(f"{name}: an ONNX file, but not one written by `zoo export`")
            raise ModelError(f"{name}: metadata lacks {key!r}")
    text = {k: _text(data, spans[k], name) for k in ("format", "format_version")}
    if text["format"] != FORMAT:
        raise ModelError(f"{name}: metadata format is {text['format'][:40]!r}, not {FORMAT!r}")
    if text["format_version"] not in {str(v) for v in range(1, FORMAT_VERSION + 1)}:
        raise ModelError(
            f"{name}: format version {text['format_version'][:20]!r} is not one this runtime "
            f"reads (1 to {FORMAT_VERSION}); upgrade rnn-zoo-runtime"
        )
    fields: dict[str, Any] = {}
    for key, span in spans.items():  # one value's text at a time, dropped once parsed
        value = _text(data, span, name)
        fields[key] = _json(name, key, value) if key in JSON_KEYS else value
    return data, fields


def _read_bytes(path: Path, name: str) -> bytes:
    try:
        if path.is_dir():
            raise ModelError(f"{name}: is a folder, not a model file")
        with open(path, "rb") as f:
            size = os.fstat(f.fileno()).st_size
            if size > MAX_FILE_BYTES:
                raise ModelError(f"{name}: {size:,} bytes, over the {MAX_FILE_BYTES:,}-byte limit")
            data = _read_up_to(f, size)
        if len(data) > MAX_FILE_BYTES:
            raise ModelError(f"{name}: over the {MAX_FILE_BYTES:,}-byte limit")
        return data
    except FileNotFoundError:
        raise ModelError(f"{name}: no such model file") from None
    except PermissionError:
        raise ModelError(f"{name}: permission denied") from None
    except OSError as e:
        raise ModelError(f"{name}: cannot read: {e.strerror or e}") from None


def _read_up_to(f: Any, size: int) -> bytes:
    """The file's bytes, `size` of them as it said, or up to one past the limit if it grew
    (or is a pipe): `f.read(n)` reserves n bytes before reading, so never the limit itself."""
    parts = [f.read(size + 1)]
    total = len(parts[0])
    while total > size and total <= MAX_FILE_BYTES:
        part = f.read(min(64 * 1024**2, MAX_FILE_BYTES + 1 - total))
        if not part:
            break
        parts.append(part)
        total += len(part)
    return parts[0] if len(parts) == 1 else b"".join(parts)


# ----------------------------------------------------------------- the protobuf, by hand
def _varint(data: bytes, pos: int, name: str) -> tuple[int, int]:
    result = shift = 0
    while True:
        if pos >= len(data):
            raise ModelError(f"{name}: truncated or not an ONNX file")
        byte = data[pos]
        pos += 1
        result |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return result, pos
        shift += 7
        if shift > 63:
            raise ModelError(f"{name}: not an ONNX file (malformed number)")


def _fields(data: bytes, start: int, end: int, name: str) -> list[tuple[int, int, int]]:
    """(field number, start, end) of the length-delimited fields in data[start:end]; other
    wire types are skipped, groups (never used by ONNX) refused."""
    out = []
    pos = start
    while pos < end:
        key, pos = _varint(data, pos, name)
        field, wire = key >> 3, key & 7
        if wire == 0:
            _, pos = _varint(data, pos, name)
        elif wire in (1, 5):
            pos += 8 if wire == 1 else 4
        elif wire == 2:
            length, pos = _varint(data, pos, name)
            if pos + length > end:
                raise ModelError(f"{name}: truncated or not an ONNX file")
            out.append((field, pos, pos + length))
            pos += length
        else:
            raise ModelError(f"{name}: not an ONNX file (unexpected wire type {wire})")
        if pos > end:
            raise ModelError(f"{name}: truncated or not an ONNX file")
    return out


def _metadata_entries(data: bytes, name: str) -> dict[str, tuple[int, int]]:
    """ModelProto.metadata_props as key -> (start, end) of the value in `data`: keys decoded,
    the sizes checked one by one and together, no value copied or decoded."""
    if not data:
        raise ModelError(f"{name}: empty file, not an ONNX model")
    entries = [f for f in _fields(data, 0, len(data), name) if f[0] == METADATA_FIELD]
    if len(entries) > MAX_ENTRIES:
        raise ModelError(f"{name}: {len(entries)} metadata entries, over the limit {MAX_ENTRIES}")
    out: dict[str, tuple[int, int]] = {}
    total = 0
    for _, start, end in entries:
        parts = {f: (s, e) for f, s, e in _fields(data, start, end, name)}
        key_span, value = parts.get(1, (0, 0)), parts.get(2, (0, 0))
        if key_span[1] - key_span[0] > MAX_KEY_BYTES:
            raise ModelError(
                f"{name}: a metadata key of {key_span[1] - key_span[0]:,} bytes, over the "
                f"{MAX_KEY_BYTES:,}-byte limit"
            )
        key = _text(data, key_span, name)
        size, total = value[1] - value[0], total + end - start
        if size > MAX_VALUE_BYTES:
            raise ModelError(
                f"{name}: metadata {_clip(key)} is {size:,} bytes, over the "
                f"{MAX_VALUE_BYTES:,}-byte limit for one value"
            )
        if total > MAX_METADATA_BYTES:
            raise ModelError(
                f"{name}: metadata {_clip(key)} brings the metadata to {total:,} bytes, over "
                f"the {MAX_METADATA_BYTES:,}-byte limit for all metadata together"
            )
        out[key] = value
    return out


def _text(data: bytes, span: tuple[int, int], name: str) -> str:
    try:
        return data[span[0] : span[1]].decode()
    except UnicodeDecodeError:
        raise ModelError(f"{name}: metadata is not UTF-8 text") from None


def _clip(key: str) -> str:
    return repr(key) if len(key) <= 60 else f"{key[:60]!r}... ({len(key):,} characters)"


def _json(name: str, key: str, text: str) -> Any:
    try:
        value = json.loads(text)
    except RecursionError:
        raise ModelError(
            f"{name}: metadata {key!r} is nested deeper than {MAX_DEPTH} levels"
        ) from None
    except ValueError:
        raise ModelError(f"{name}: metadata {key!r} is not valid JSON") from None
    if not isinstance(value, dict):
        raise ModelError(f"{name}: metadata {key!r} must be a JSON object")
    if _depth(value) > MAX_DEPTH:
        raise ModelError(f"{name}: metadata {key!r} is nested deeper than {MAX_DEPTH} levels")
    return value


def _depth(value: Any) -> int:
    """Nesting depth of a JSON value, without recursion (a hostile value may be deep)."""
    deepest, stack = 0, [(value, 1)]
    while stack:
        item, depth = stack.pop()
        deepest = max(deepest, depth)
        if deepest > MAX_DEPTH:
            return deepest
        if isinstance(item, dict):
            stack.extend((v, depth + 1) for v in item.values())
        elif isinstance(item, list):
            stack.extend((v, depth + 1) for v in item)
    return deepest


# ------------------------------------------------------------------------- the graph
def session(data: bytes, name: str, threads: int = 1) -> Any:
    """An onnxruntime session on the file's bytes (CPU), or one ModelError."""
    import onnxruntime

    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.log_severity_level = 4  # errors come back as exceptions, not log lines as well
    try:
        return onnxruntime.InferenceSession(data, options, providers=["CPUExecutionProvider"])
    except Exception as e:  # onnxruntime's own exception types, for a graph it cannot load
        exhausted = out_of_memory(e)
        if exhausted is not None:
            raise exhausted from None
        first = (str(e).strip().splitlines() or [""])[0][:300]
        raise ModelError(f"{name}: onnxruntime cannot load the graph: {first}") from None


def check_inputs(sess: Any, name: str, expected: dict[str, tuple[str, int]]) -> None:
    """The graph's inputs are exactly `expected` (name -> element type, rank)."""
    found = {i.name: (i.type, len(i.shape)) for i in sess.get_inputs()}
    if set(found) != set(expected):
        raise ModelError(
            f"{name}: the graph's inputs ({', '.join(sorted(found))}) do not match its "
            f"metadata ({', '.join(sorted(expected))})"
        )
    for key, (kind, rank) in expected.items():
        if found[key] != (kind, rank):
            raise ModelError(
                f"{name}: graph input {key!r} is {found[key][0]} of rank {found[key][1]}, "
                f"expected {kind} of rank {rank}"
            )
