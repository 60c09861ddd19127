"""The model file: self-describing, loadable without zoo, refused cleanly when damaged or hostile."""

from __future__ import annotations

import contextlib
import json
import os
import random
import sys
from pathlib import Path

import pytest
import torch
from safetensors import safe_open
from safetensors.torch import load_file, save_file
from torch import nn

import zoo
from zoo.core.errors import ModelFileError
from zoo.core.fileio import WriteError, atomic_write
from zoo.training.model import serialize


@pytest.fixture(scope="module")
def model_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("m") / "elman.safetensors"
    model = zoo.create("elman-rnn", epochs=1, hidden_size=8, num_sequences=32)
    zoo.train(model)
    model.metrics["test"] = {"mse": 0.5}
    zoo.save(model, path)
    return path


def rewrite(src, dst, *, metadata=None, tensors=None):
    """Copy a model file, changing metadata entries or tensors on the way, and re-seal it with a
    correct checksum, as a hostile author would: the checksum guards integrity, not trust."""
    with safe_open(src, "pt") as f:
        meta = dict(f.metadata())
        data = {k: f.get_tensor(k) for k in f.keys()}  # noqa: SIM118 (safe_open is not iterable)
    meta.update(metadata or {})
    meta.pop("sha256", None)
    data.update(tensors or {})
    Path(dst).write_bytes(serialize(data, meta))
    return dst


def test_roundtrip_keeps_weights_configs_state_and_metrics(model_file):
    model = zoo.load(model_file)
    assert (
        model.name == "elman-rnn"
        and model.dataset == "sine-cosine"
        and model.task == "step-regression"
    )
    assert model.config.hidden_size == 8
    assert model.metrics["test"] == {"mse": 0.5}
    stored = load_file(model_file)
    for key, value in model.module.state_dict().items():
        assert torch.equal(value, stored[key])
    assert zoo.predict(model, ["0.1", "0.2"]) == zoo.predict(zoo.load(model_file), ["0.1", "0.2"])


def test_metadata_is_plain_strings_with_json_fields(model_file):
    with safe_open(model_file, "pt") as f:
        meta = f.metadata()
    assert meta["format"] == "zoo.model" and meta["format_version"] == "1"
    assert meta["architecture"] == "elman-rnn" and meta["zoo_version"] == zoo.__version__
    assert json.loads(meta["plugin"]) == {
        "name": "elman-rnn",
        "distribution": "rnn-zoo",
        "version": zoo.__version__,
    }
    assert json.loads(meta["config"])["hidden_size"] == 8
    assert json.loads(meta["data_state"]) == {"input_size": 1, "output_size": 1}
    assert json.loads(meta["train_config"])["epochs"] == 1


def test_weights_load_into_plain_torch_layers(model_file):
    """No zoo needed: torch's own nn.RNN and nn.Linear take the tensors by name."""
    tensors = load_file(model_file)
    rnn, readout = nn.RNN(1, 8, batch_first=True), nn.Linear(8, 1)
    rnn.load_state_dict(
        {k.removeprefix("rnn."): v for k, v in tensors.items() if k.startswith("rnn.")}
    )
    readout.load_state_dict(
        {k.removeprefix("readout."): v for k, v in tensors.items() if k.startswith("readout.")}
    )
    x = torch.tensor([[[0.1], [0.2]]])
    expected = next(p["output"] for p in zoo.predict(zoo.load(model_file), ["0.1", "0.2"]))
    assert readout(rnn(x)[0]).flatten().tolist() == pytest.approx(expected, abs=1e-5)


def damaged(tmp_path, content: bytes):
    p = tmp_path / "bad.safetensors"
    p.write_bytes(content)
    return p


def test_truncated_files_are_refused_at_every_offset_class(model_file, tmp_path):
    data = model_file.read_bytes()
    header_len = int.from_bytes(data[:8], "little")
    for cut in (0, 4, 8, 9, 8 + header_len // 2, 8 + header_len, 8 + header_len + 1, len(data) - 1):
        with pytest.raises(ModelFileError, match="truncated|not a safetensors|only"):
            zoo.load(damaged(tmp_path, data[:cut]))


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"", "not a safetensors model file"),
        (b"hello world, this is text", "header length"),
        ((10).to_bytes(8, "little") + b"not json!!", "header is not JSON"),
        ((2).to_bytes(8, "little") + b"[]", "header is not an object"),
        ((2**62).to_bytes(8, "little") + b"{}", "over the"),
    ],
)
def test_files_that_are_not_model_files(tmp_path, content, message):
    with pytest.raises(ModelFileError, match=message):
        zoo.load(damaged(tmp_path, content))


def test_missing_file_and_folder(tmp_path):
    with pytest.raises(ModelFileError, match="no such model file"):
        zoo.load(tmp_path / "nope.safetensors")
    with pytest.raises(ModelFileError, match="folder"):
        zoo.load(tmp_path)


def test_newer_format_version_asks_for_an_upgrade(model_file, tmp_path):
    p = rewrite(model_file, tmp_path / "new.safetensors", metadata={"format_version": "2"})
    with pytest.raises(ModelFileError, match="format version 2 is newer"):
        zoo.load(p)


def test_plain_safetensors_without_zoo_metadata(tmp_path):
    p = tmp_path / "plain.safetensors"
    save_file({"w": torch.zeros(2)}, p)
    with pytest.raises(ModelFileError, match="not a zoo model"):
        zoo.load(p)


def test_architecture_not_installed_names_the_plugin_to_install(model_file, tmp_path):
    p = rewrite(
        model_file,
        tmp_path / "x.safetensors",
        metadata={
            "architecture": "fancy-rnn",
            "plugin": json.dumps({"name": "fancy", "distribution": "zoo-fancy", "version": "3.1"}),
        },
    )
    with pytest.raises(
        ModelFileError,
        match="needs architecture 'fancy-rnn' from zoo-fancy 3.1, which is not installed",
    ):
        zoo.load(p)


def test_tensors_that_do_not_match_the_config(model_file, tmp_path):
    config = json.loads(safe_open(model_file, "pt").metadata()["config"])
    p = rewrite(
        model_file,
        tmp_path / "x.safetensors",
        metadata={"config": json.dumps({**config, "hidden_size": 4096})},
    )
    with pytest.raises(ModelFileError, match="tensors do not match the config.*wrong shape"):
        zoo.load(p)
    p = rewrite(model_file, tmp_path / "y.safetensors", tensors={"extra.weight": torch.zeros(3)})
    with pytest.raises(ModelFileError, match="unexpected extra.weight"):
        zoo.load(p)


def test_wrong_json_types_in_metadata(model_file, tmp_path):
    for key, value in [
        ("config", "[1, 2]"),
        ("data_state", "not json"),
        ("config", json.dumps({"hidden_size": "big"})),
    ]:
        p = rewrite(model_file, tmp_path / "x.safetensors", metadata={key: value})
        with pytest.raises(ModelFileError):
            zoo.load(p)
    p = rewrite(
        model_file, tmp_path / "s.safetensors", metadata={"data_state": json.dumps({"wrong": 1})}
    )
    with pytest.raises(ModelFileError, match="cannot rebuild the network"):
        zoo.load(p)


def test_loading_never_imports_a_module_named_in_the_file(model_file, tmp_path, monkeypatch):
    marker = tmp_path / "imported"
    (tmp_path / "evil_module.py").write_text(f"open({str(marker)!r}, 'w').write('pwned')\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    for fields in (
        {"architecture": "evil_module"},
        {"architecture": "evil_module:run"},
        {"implementation": "evil_module", "dataset": "evil_module"},
        {
            "plugin": json.dumps(
                {"name": "evil_module", "distribution": "evil_module", "version": "1"}
            )
        },
    ):
        p = rewrite(model_file, tmp_path / "evil.safetensors", metadata=fields)
        with contextlib.suppress(ModelFileError):
            zoo.load(p)
    assert not marker.exists()
    assert "evil_module" not in sys.modules


def test_save_is_atomic_when_interrupted(model_file, tmp_path, monkeypatch):
    target = tmp_path / "model.safetensors"
    target.write_bytes(model_file.read_bytes())
    before = target.read_bytes()
    model = zoo.load(model_file)

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(os, "replace", interrupted)
    with pytest.raises(KeyboardInterrupt):
        zoo.save(model, target)
    monkeypatch.undo()
    assert target.read_bytes() == before
    assert zoo.load(target).name == "elman-rnn"
    assert [p.name for p in tmp_path.iterdir()] == ["model.safetensors"]  # no temp file left


def test_atomic_write_failure_mid_write_keeps_old_file(tmp_path, monkeypatch):
    target = tmp_path / "f.bin"
    target.write_bytes(b"old")

    def failing_fsync(fd):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "fsync", failing_fsync)
    with pytest.raises(WriteError) as e:
        atomic_write(target, b"new" * 1000)
    assert str(e.value) == (
        f"cannot write {target}: No space left on device; the previous file is unchanged"
    )
    assert target.read_bytes() == b"old"
    assert [p.name for p in tmp_path.iterdir()] == ["f.bin"]


def test_every_single_byte_flip_is_refused(model_file, tmp_path):
    """Flips in the header, the metadata and the tensors: all caught, by parsing or checksum."""
    data = bytearray(model_file.read_bytes())
    header_end = 8 + int.from_bytes(data[:8], "little")
    rng = random.Random(0)
    offsets = [rng.randrange(8, header_end) for _ in range(40)]
    offsets += [rng.randrange(header_end, len(data)) for _ in range(40)]
    for offset in offsets:
        flipped = bytearray(data)
        flipped[offset] ^= 1 << rng.randrange(8)
        with pytest.raises(ModelFileError):
            zoo.load(damaged(tmp_path, bytes(flipped)))


def test_a_file_without_its_checksum_is_refused(model_file, tmp_path):
    with safe_open(model_file, "pt") as f:
        meta = {k: v for k, v in f.metadata().items() if k != "sha256"}
        data = {k: f.get_tensor(k) for k in f.keys()}  # noqa: SIM118
    save_file(data, tmp_path / "n.safetensors", metadata=meta)
    with pytest.raises(ModelFileError, match="lacks its 'sha256' checksum"):
        zoo.load(tmp_path / "n.safetensors")


@pytest.mark.parametrize(
    "header",
    [
        "[" * 100_000 + "]" * 100_000,  # deeply nested
        '{"__metadata__": {"a": ' + "[" * 50_000 + "]" * 50_000 + "}}",
        '{"__metadata__": {"format": 1}}',  # wrong type in metadata
        '{"w": {"dtype": "F32", "shape": [1000000000000], "data_offsets": [0, 4]}}',
        '{"w": {"dtype": "F32", "shape": [1], "data_offsets": [0, 40000000000]}}',
        '{"w": {"dtype": "PICKLE", "shape": [1], "data_offsets": [0, 4]}}',
    ],
)
def test_hostile_headers_are_refused_quickly(tmp_path, header):
    raw = header.encode()
    p = damaged(tmp_path, len(raw).to_bytes(8, "little") + raw + b"\0" * 4)
    with pytest.raises(ModelFileError):
        zoo.load(p)


def test_gigantic_metadata_is_bounded_by_the_header_limit(tmp_path):
    p = tmp_path / "huge.safetensors"
    with open(p, "wb") as f:
        f.write((200 * 1024 * 1024).to_bytes(8, "little"))
        f.write(b"{" + b" " * 1024)
    with pytest.raises(ModelFileError, match="over the"):
        zoo.load(p)


def test_load_can_change_settings_that_keep_the_tensors(model_file):
    saved = zoo.load(model_file)
    changed = zoo.load(model_file, config={"nonlinearity": "relu"})
    assert changed.config.nonlinearity == "relu" and saved.config.nonlinearity == "tanh"
    for key, value in saved.module.state_dict().items():
        assert torch.equal(value, changed.module.state_dict()[key])
    assert changed.module.rnn.nonlinearity == "relu"  # built from the changed setting
    with pytest.raises(zoo.SettingError) as e:
        zoo.load(model_file, config={"hidden_size": 9})
    assert str(e.value).startswith("hidden_size=9: would change the trained network's tensors (")
    assert "wrong shape" in str(e.value) and "such as impl" in str(e.value)
    with pytest.raises(zoo.SettingError, match="^unknown setting 'hidden_sise'"):
        zoo.load(model_file, config={"hidden_sise": 9})
