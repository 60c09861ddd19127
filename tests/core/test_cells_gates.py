"""`zoo gates`: gate activations over time as a heat map PNG, with no plotting library."""

from __future__ import annotations

import dataclasses
import struct
import zlib

import pytest

import zoo
from zoo.features import gates

pytestmark = pytest.mark.usefixtures("one_thread")


def read_png(path) -> tuple[int, int, bytes]:
    """(width, height, raw scanlines) of an 8-bit RGB PNG, checking every chunk's CRC."""
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    pos, chunks = 8, {}
    while pos < len(data):
        (n,) = struct.unpack(">I", data[pos : pos + 4])
        kind, body = data[pos + 4 : pos + 8], data[pos + 8 : pos + 8 + n]
        (crc,) = struct.unpack(">I", data[pos + 8 + n : pos + 12 + n])
        assert crc == zlib.crc32(kind + body)
        chunks[kind] = chunks.get(kind, b"") + body
        pos += 12 + n
    assert set(chunks) == {b"IHDR", b"IDAT", b"IEND"}
    width, height, depth, colour_type = struct.unpack(">IIBB", chunks[b"IHDR"][:10])
    assert (depth, colour_type) == (8, 2)
    raw = zlib.decompress(chunks[b"IDAT"])
    assert len(raw) == height * (1 + 3 * width)
    return width, height, raw


def test_png_writer_round_trip(tmp_path):
    pixels = [[gates.colour(-1.0), gates.colour(0.0), gates.colour(1.0)]] * 2
    path = tmp_path / "p.png"
    gates.write_png(str(path), pixels)
    width, height, raw = read_png(path)
    assert (width, height) == (3, 2)
    assert raw[: 1 + 9] == bytes([0, 0, 0, 255, 255, 255, 255, 255, 0, 0])


@pytest.fixture(scope="module")
def hello_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("g") / "hello.safetensors"
    zoo.run("elman-rnn", "char-pairs", out=path, cell="lstm", hidden_size=6)  # impl=torch
    return path


def test_gates_of_a_torch_trained_lstm(hello_file, zoo, tmp_path, no_matplotlib):
    """The built-in PNG writer (without matplotlib; test_plots.py draws with it)."""
    out = tmp_path / "g.png"
    doc = zoo("gates", hello_file, "hello", "--out", out, "--json").json()
    assert doc["steps"] == 5
    assert doc["blocks"] == [
        {"name": "rnn L0 >", "gates": {"i": 6, "f": 6, "g": 6, "o": 6, "c": 6}}
    ]
    assert doc["prediction"] == "hello -> ohlol"
    width, height, _ = read_png(out)
    assert (width, height) == (doc["width"], doc["height"])
    text = zoo("gates", hello_file, "hello", "--out", tmp_path / "h.png").stdout
    assert text.startswith(f"wrote {tmp_path / 'h.png'}") and "i (6 units)" in text
    svg = zoo("gates", hello_file, "hello", "--out", tmp_path / "g.svg")
    assert svg.code == 1 and "needs matplotlib" in svg.stderr
    assert not (tmp_path / "g.svg").exists()


def test_a_language_model_traces_prompt_and_continuation(tmp_path):
    model = zoo.create("elman-rnn", "text", cell="gru", hidden_size=5, steps=1)
    entries, predictions = gates.trace(model, "To be", length=7)
    assert len(predictions[0]["output"]) == 7
    (entry,) = entries
    assert {g: tuple(v.shape) for g, v in entry["gates"].items()} == {
        "r": (12, 5),
        "z": (12, 5),
        "n": (12, 5),
    }
    assert model.config.impl == "torch"  # the trace ran on a rebuilt copy


@dataclasses.dataclass
class NoImplConfig:
    hidden_size: int = 6


def test_models_without_cells_are_refused(hello_file):
    model = zoo.load(hello_file)
    model.config = NoImplConfig()  # an architecture without an impl setting
    with pytest.raises(zoo.UsageError, match="no impl setting"):
        gates.with_cells(model)


def test_an_input_that_starts_with_a_minus_is_an_input_as_in_predict(tmp_path, zoo):
    """`zoo gates FILE "-0.82 0.1"` reads the numbers as `zoo predict` does, where click
    once took `-0` for an option."""
    model = tmp_path / "sine.safetensors"
    assert zoo("run", "elman-rnn", "--steps", "3", "--out", model, "-q").code == 0
    series = "-0.82 0.1 0.4"
    assert zoo("predict", model, series).code == 0
    r = zoo("gates", model, series, "--out", tmp_path / "g.png", "--json")
    assert r.code == 0, r.stderr
    assert r.json()["steps"] == 3 and read_png(tmp_path / "g.png")[0] > 0
    unknown = zoo("gates", model, "0.1", "--outt", "x.png")  # a typo is not an input
    assert unknown.code == 2 and "--outt" in unknown.stderr
