"""Reading an exported model file without trusting it.

Before onnxruntime sees a byte, the file's top level is scanned by hand (the ONNX file is a
protobuf `ModelProto`; its `metadata_props` are field 14) and the metadata checked: the file's
size, every length inside it, the number and size of metadata entries, that each JSON value
parses, is not nested deeper than `MAX_DEPTH`, and has the type its key needs. A truncated
file, a file that is not ONNX, or metadata that is huge, nested, or of the wrong types is one
`ModelError` after work bounded by the file's size. Only then is the graph given to
onnxruntime, from memory (so no external-data path in the file is ever opened), and its inputs
compared with what the metadata says they are. Nothing in the file is imported or executed but
the graph.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

FORMAT = "zoo.onnx"
FORMAT_VERSION = 1
MAX_FILE_BYTES = 2 * 1024**3  # protobuf's own limit for one message
MAX_ENTRIES = 256
MAX_VALUE_BYTES = 64 * 1024**2
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


def read(path: str | os.PathLike[str]) -> tuple[bytes, dict[str, Any]]:
    """The file's bytes and its decoded, checked metadata."""
    name = str(path)
    data = _read_bytes(Path(path), name)
    raw = _metadata_entries(data, name)
    fields: dict[str, Any] = {}
    for key in REQUIRED:
        if key not in raw:
            if key == "format":
                raise ModelError(f"{name}: an ONNX file, but not one written by `zoo export`")
            raise ModelError(f"{name}: metadata lacks {key!r}")
    if raw["format"] != FORMAT:
        raise ModelError(f"{name}: metadata format is {raw['format'][:40]!r}, not {FORMAT!r}")
    if raw["format_version"] not in {str(v) for v in range(1, FORMAT_VERSION + 1)}:
        raise ModelError(
            f"{name}: format version {raw['format_version'][:20]!r} is not one this runtime "
            f"reads (1 to {FORMAT_VERSION}); upgrade rnn-zoo-runtime"
        )
    for key, value in raw.items():
        fields[key] = _json(name, key, value) if key in JSON_KEYS else value
    return data, fields


def _read_bytes(path: Path, name: str) -> bytes:
    try:
        if path.is_dir():
            raise ModelError(f"{name}: is a folder, not a model file")
        size = path.stat().st_size
        if size > MAX_FILE_BYTES:
            raise ModelError(f"{name}: {size:,} bytes, over the {MAX_FILE_BYTES:,}-byte limit")
        with open(path, "rb") as f:
            return f.read(MAX_FILE_BYTES + 1)
    except FileNotFoundError:
        raise ModelError(f"{name}: no such model file") from None
    except PermissionError:
        raise ModelError(f"{name}: permission denied") from None
    except OSError as e:
        raise ModelError(f"{name}: cannot read: {e.strerror or e}") from None


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


def _metadata_entries(data: bytes, name: str) -> dict[str, str]:
    """ModelProto.metadata_props as a dict, each entry's size checked before decoding."""
    if not data:
        raise ModelError(f"{name}: empty file, not an ONNX model")
    entries = [f for f in _fields(data, 0, len(data), name) if f[0] == METADATA_FIELD]
    if len(entries) > MAX_ENTRIES:
        raise ModelError(f"{name}: {len(entries)} metadata entries, over the limit {MAX_ENTRIES}")
    out: dict[str, str] = {}
    for _, start, end in entries:
        if end - start > MAX_VALUE_BYTES:
            raise ModelError(
                f"{name}: a metadata entry of {end - start:,} bytes, over the "
                f"{MAX_VALUE_BYTES:,}-byte limit"
            )
        parts = {f: data[s:e] for f, s, e in _fields(data, start, end, name)}
        try:
            key, value = parts.get(1, b"").decode(), parts.get(2, b"").decode()
        except UnicodeDecodeError:
            raise ModelError(f"{name}: metadata is not UTF-8 text") from None
        out[key] = value
    return out


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
    options.log_severity_level = 3  # errors come back as exceptions, not log lines
    try:
        return onnxruntime.InferenceSession(data, options, providers=["CPUExecutionProvider"])
    except Exception as e:  # onnxruntime's own exception types, for a graph it cannot load
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
