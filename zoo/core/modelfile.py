"""The model file: one `.safetensors` file holding the weights and everything needed to use them.

Tensors are stored under torch's own state-dict names, so `safetensors.torch.load_file` plus
plain `torch.nn` layers rebuild the network without zoo. The safetensors metadata (a flat
string-to-string map) carries, as JSON strings, what zoo needs to rebuild and use the model:

| key | content |
|---|---|
| format, format_version | "zoo.model", "1" |
| zoo_version | the zoo release that wrote the file |
| architecture, task, dataset | registry names, resolved through installed plugins only |
| plugin | {"name", "distribution", "version"} of the plugin that provides the architecture |
| config, data_config, train_config | the three resolved configs (JSON objects) |
| data_state | vocabularies, normalisation statistics (JSON object) |
| metrics | evaluation results at save time (JSON object) |
| parameters | the network's parameter count, buffers not counted (optional: files before 0.1.0's layers lack it) |
| sha256 | checksum over the other metadata, the tensor index and the tensor bytes |

Reading checks the header by hand before safetensors touches it: a file that is too short,
whose header is too large, not JSON, or points outside the file is rejected with a
`ModelFileError` and bounded work. The checksum then catches what still parses: a flipped byte
in a tensor or a metadata value. Nothing in a file is ever imported or unpickled.
"""

from __future__ import annotations

import hashlib
import json
import os
import struct
from pathlib import Path
from typing import Any

from zoo.core.errors import ModelFileError

FORMAT = "zoo.model"
CHECKPOINT_FORMAT = "zoo.checkpoint"  # same container, for `zoo run --resume` (zoo.checkpoint)
FORMAT_VERSION = 1
CHECKSUM_KEY = "sha256"
MAX_HEADER_BYTES = 100 * 1024 * 1024  # safetensors' own limit
JSON_KEYS = ("plugin", "config", "data_config", "train_config", "data_state", "metrics")
TEXT_KEYS = ("format", "format_version", "zoo_version", "architecture", "task", "dataset")
_DTYPE_BYTES = {
    "BOOL": 1,
    "U8": 1,
    "I8": 1,
    "F8_E5M2": 1,
    "F8_E4M3": 1,
    "I16": 2,
    "U16": 2,
    "F16": 2,
    "BF16": 2,
    "I32": 4,
    "U32": 4,
    "F32": 4,
    "I64": 8,
    "U64": 8,
    "F64": 8,
}


def encode_metadata(fields: dict[str, Any], format: str = FORMAT) -> dict[str, str]:
    """The safetensors metadata map for a model: text keys as-is, the rest as JSON."""
    out = {"format": format, "format_version": str(FORMAT_VERSION)}
    for key in TEXT_KEYS[2:]:
        out[key] = str(fields[key])
    for key in JSON_KEYS:
        out[key] = json.dumps(fields[key], ensure_ascii=False, allow_nan=True, sort_keys=True)
    if fields.get("parameters") is not None:
        out["parameters"] = str(int(fields["parameters"]))
    return out


def parameter_count(info: dict[str, Any]) -> int:
    """The parameters of the network in a file (`read_info`), as `zoo run` counts them: the
    count recorded at save; for a file written before zoo recorded it, every value of its
    tensors (buffers, such as a calibrated threshold, then count too)."""
    try:
        return int(info["parameters"])
    except (KeyError, TypeError, ValueError):
        return sum(_values(t["shape"]) for t in info.get("tensors", {}).values())


def _values(shape: list[int]) -> int:
    count = 1
    for size in shape:
        count *= size
    return count


def _digest(metadata: dict[str, str], index: dict[str, Any]) -> Any:
    """A sha256 object primed with everything but the tensor bytes."""
    signed = {k: v for k, v in metadata.items() if k != CHECKSUM_KEY}
    head = json.dumps({"metadata": signed, "tensors": index}, sort_keys=True, ensure_ascii=False)
    return hashlib.sha256(head.encode("utf-8"))


def checksum(payload: bytes) -> str:
    """The checksum of a serialised safetensors payload (as written by `safetensors.torch.save`)."""
    (n,) = struct.unpack("<Q", payload[:8])
    header = json.loads(payload[8 : 8 + n])
    metadata = header.pop("__metadata__", {})
    digest = _digest(metadata, header)
    digest.update(memoryview(payload)[8 + n :])
    return digest.hexdigest()


def verify(path: str | os.PathLike[str], metadata: dict[str, str], index: dict[str, Any]) -> None:
    """Raise ModelFileError unless the file's bytes match the checksum in its metadata."""
    expected = metadata.get(CHECKSUM_KEY)
    if expected is None:
        raise ModelFileError(f"{path}: metadata lacks its {CHECKSUM_KEY!r} checksum")
    with open(path, "rb") as f:
        (n,) = struct.unpack("<Q", f.read(8))
        f.seek(8 + n)
        digest = _digest(metadata, index)
        while chunk := f.read(1 << 20):
            digest.update(chunk)
    if digest.hexdigest() != expected:
        raise ModelFileError(f"{path}: damaged: the checksum does not match the file's contents")


def read_header(path: str | os.PathLike[str]) -> tuple[dict[str, str], dict[str, dict[str, Any]]]:
    """(metadata, tensor index) of a safetensors file, validated without trusting it."""
    p = Path(path)
    name = str(path)
    try:
        size = p.stat().st_size
        if not p.is_file():
            raise ModelFileError(f"{name}: not a file")
        with open(p, "rb") as f:
            head = f.read(8)
            if len(head) < 8:
                raise ModelFileError(f"{name}: not a safetensors model file (only {size} bytes)")
            (n,) = struct.unpack("<Q", head)
            if n > MAX_HEADER_BYTES:
                raise ModelFileError(
                    f"{name}: not a safetensors model file (header length {n} is over the "
                    f"{MAX_HEADER_BYTES}-byte limit)"
                )
            if 8 + n > size:
                raise ModelFileError(
                    f"{name}: truncated or not a safetensors file (header says {n} bytes, "
                    f"file has {size - 8})"
                )
            raw = f.read(n)
    except FileNotFoundError:
        raise ModelFileError(f"{name}: no such model file") from None
    except IsADirectoryError:
        raise ModelFileError(f"{name}: is a folder, not a model file") from None
    except PermissionError:
        raise ModelFileError(f"{name}: permission denied") from None
    except OSError as e:
        raise ModelFileError(f"{name}: cannot read: {e.strerror or e}") from None
    try:
        header = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError):
        raise ModelFileError(f"{name}: not a safetensors model file (header is not JSON)") from None
    if not isinstance(header, dict):
        raise ModelFileError(f"{name}: not a safetensors model file (header is not an object)")
    metadata = header.pop("__metadata__", None)
    if metadata is None:
        metadata = {}
    if not isinstance(metadata, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in metadata.items()
    ):
        raise ModelFileError(f"{name}: safetensors metadata must map strings to strings")
    data_len = size - 8 - n
    for tensor_name, info in header.items():
        _check_tensor_entry(name, tensor_name, info, data_len)
    return metadata, header


def _check_tensor_entry(name: str, tensor: str, info: Any, data_len: int) -> None:
    bad = ModelFileError(f"{name}: tensor {tensor!r} has a malformed header entry")
    if not isinstance(info, dict):
        raise bad
    dtype, shape, offsets = info.get("dtype"), info.get("shape"), info.get("data_offsets")
    if dtype not in _DTYPE_BYTES:
        raise ModelFileError(f"{name}: tensor {tensor!r} has unknown dtype {dtype!r}")
    if (
        not isinstance(shape, list)
        or len(shape) > 8
        or not all(isinstance(d, int) and not isinstance(d, bool) and d >= 0 for d in shape)
    ):
        raise bad
    if (
        not isinstance(offsets, list)
        or len(offsets) != 2
        or not all(isinstance(o, int) and not isinstance(o, bool) for o in offsets)
    ):
        raise bad
    start, end = offsets
    count = 1
    for d in shape:
        count *= d
    if not 0 <= start <= end or end > data_len:
        raise ModelFileError(
            f"{name}: truncated: tensor {tensor!r} lies beyond the end of the file"
        )
    if end - start != count * _DTYPE_BYTES[dtype]:
        raise ModelFileError(f"{name}: tensor {tensor!r} size does not match its shape")


def decode_metadata(
    path: str | os.PathLike[str], metadata: dict[str, str], format: str = FORMAT
) -> dict[str, Any]:
    """The model fields of a file's metadata, checked: format, version, types of each field."""
    name = str(path)
    found = metadata.get("format")
    if found != format:
        if found == CHECKPOINT_FORMAT:
            raise ModelFileError(
                f"{name}: a training checkpoint, not a model file; finish the training with "
                f"`zoo run --resume {name}`"
            )
        if found == FORMAT:
            raise ModelFileError(f"{name}: a finished model file, not a training checkpoint")
        raise ModelFileError(
            f"{name}: a safetensors file, but not a zoo model (metadata 'format' is "
            f"{found!r}, expected {format!r})"
        )
    try:
        version = int(metadata.get("format_version", ""))
    except ValueError:
        raise ModelFileError(f"{name}: format_version is not a number") from None
    if version > FORMAT_VERSION:
        raise ModelFileError(
            f"{name}: model file format version {version} is newer than this zoo understands "
            f"({FORMAT_VERSION}); upgrade zoo (pip install -U rnn-zoo)"
        )
    if version < 1:
        raise ModelFileError(f"{name}: format_version {version} is not valid")
    out: dict[str, Any] = {"format_version": version}
    for key in TEXT_KEYS[2:]:
        if key not in metadata:
            raise ModelFileError(f"{name}: metadata lacks {key!r}")
        out[key] = metadata[key]
    for key in JSON_KEYS:
        if key not in metadata:
            raise ModelFileError(f"{name}: metadata lacks {key!r}")
        try:
            value = json.loads(metadata[key])
        except (ValueError, RecursionError):
            raise ModelFileError(f"{name}: metadata {key!r} is not valid JSON") from None
        if not isinstance(value, dict):
            raise ModelFileError(f"{name}: metadata {key!r} must be a JSON object")
        out[key] = value
    return out


def read_verified(
    path: str | os.PathLike[str], format: str = FORMAT
) -> tuple[dict[str, Any], dict[str, dict[str, Any]]]:
    """The decoded, checksum-verified metadata fields of a model file and its tensor index.

    Metadata keys beyond the model's own (a checkpoint's) come back as raw strings."""
    metadata, index = read_header(path)
    fields = decode_metadata(path, metadata, format)
    verify(path, metadata, index)
    known = {*TEXT_KEYS, *JSON_KEYS, CHECKSUM_KEY}
    fields.update({k: v for k, v in metadata.items() if k not in known})
    return fields, index


def read_info(path: str | os.PathLike[str]) -> dict[str, Any]:
    """The decoded metadata of a model file plus its tensor index; needs no plugin, no torch."""
    metadata, _ = read_header(path)
    kind = CHECKPOINT_FORMAT if metadata.get("format") == CHECKPOINT_FORMAT else FORMAT
    fields, index = read_verified(path, kind)
    fields["kind"] = "checkpoint" if kind == CHECKPOINT_FORMAT else "model"
    fields["tensors"] = {k: {"dtype": v["dtype"], "shape": v["shape"]} for k, v in index.items()}
    return fields
