"""The `csv` dataset streams a large file (`zoo_plugins.gru_regressor.bigcsv`): the same Data,
the same errors and the same trained weights as the file read whole, in bounded memory.

The threshold, the text chunk and the row block are forced tiny, so that small files (slices
of ETTh1 and hand-made ones) cross many chunk and block bounds."""

from __future__ import annotations

import gc
import tempfile
import tracemalloc
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from zoo_plugins.gru_regressor import bigcsv
from zoo_plugins.gru_regressor import csv_data as csv

import zoo
from tests.conftest import SHARED_DATA
from tests.core.test_datacache import config_of, head
from zoo.core.errors import ZooError

ETT = SHARED_DATA / "ett" / "ETTh1.csv"
SMALL = {"input_length": 8, "horizon": 4, "split": "0.6,0.2,0.2"}


@pytest.fixture
def streamed(monkeypatch):
    """Streaming forced on, with a 97-byte chunk and 5-row blocks."""
    monkeypatch.setattr(bigcsv, "CHUNK", 97)
    monkeypatch.setattr(bigcsv, "ROWS", 5)
    monkeypatch.setattr(bigcsv, "VALUES", 7)

    def set_streaming(on: bool) -> None:
        monkeypatch.setattr(bigcsv, "STREAM_ABOVE", 0 if on else 10**15)

    return set_streaming


def both(streamed: Any, config: Any, state: Any = None) -> tuple[Any, Any]:
    """(the Data read whole, the Data streamed)."""
    streamed(False)
    whole = csv.load_csv(config, state)
    streamed(True)
    return whole, csv.load_csv(config, state)


def assert_same(whole: Any, stream: Any) -> None:
    assert isinstance(stream.collate.series, np.memmap)
    assert not isinstance(whole.collate.series, np.memmap)
    assert (whole.state, whole.summary, whole.info) == (stream.state, stream.summary, stream.info)
    assert whole.splits == stream.splits  # ranges of window starts
    a, b = whole.collate.series, stream.collate.series
    assert a.dtype == b.dtype == np.float32 and a.shape == b.shape
    assert a.tobytes() == np.asarray(b).tobytes()  # bit for bit


def mixed(path: Path) -> Path:
    """A messy but valid file: a BOM, CRLF and bare CR line ends, blank lines, quoted cells,
    spaces around numbers, a time zone, uneven gaps, a constant column."""
    rows = ['\ufeffdate,"load",temp,flat\r\n', "\r\n"]
    for i in range(61):
        stamp = f"2021-03-01 {i // 4:02d}:{(i % 4) * 15 + (i % 3 == 0):02d}:00"
        end = "\r" if i % 7 == 0 else "\r\n" if i % 2 else "\n"
        rows.append(f'{stamp}+01:00, {i * 0.1 - 2.5:.17g} ,"{(i * 37) % 11}",3{end}')
        if i % 13 == 0:
            rows.append("  ,  ,,\n")
    path.write_text("".join(rows), encoding="utf-8", newline="")
    return path


@pytest.mark.parametrize("source", ["ett", "mixed"])
def test_a_streamed_file_gives_the_very_same_data(tmp_path, streamed, source):
    if source == "ett":
        path = head(ETT, tmp_path / "e.csv", 300)
        values = {"path": path, **SMALL, "features": "all"}
    else:
        values = {"path": mixed(tmp_path / "m.csv"), **SMALL, "target": "temp,load"}
    whole, stream = both(streamed, config_of("csv", values))
    assert_same(whole, stream)
    assert whole.state["step_seconds"] == stream.state["step_seconds"] is not None
    # evaluating with the trained state: the same layout, z-scores and windows
    assert_same(*both(streamed, config_of("csv", values), whole.state))


def test_the_temporary_files_go_with_the_series_and_on_an_error(tmp_path, streamed, monkeypatch):
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "tmp"))
    (tmp_path / "tmp").mkdir()
    path = head(ETT, tmp_path / "e.csv", 100)
    streamed(True)
    data = csv.load_csv(config_of("csv", {"path": path, **SMALL}), None)
    kept = list((tmp_path / "tmp").rglob("*"))
    assert [p.name for p in kept if p.is_file()] == ["series.f32"]  # the column files are gone
    del data
    gc.collect()
    assert not list((tmp_path / "tmp").iterdir())
    path.write_text(path.read_text() + "2018-01-01 00:00:00,1,2,3,4,5,6,x\n")
    with pytest.raises(ZooError):
        csv.load_csv(config_of("csv", {"path": path, **SMALL}), None)
    gc.collect()
    assert not list((tmp_path / "tmp").iterdir())


GOOD = ["date,a,b"] + [f"2020-01-01 {h:02d}:00:00,{h},{h * h}" for h in range(24)]


def with_lines(changes: dict[int, str], *, tail: bytes = b"") -> bytes:
    lines = list(GOOD)
    for i, text in changes.items():
        lines[i] = text
    return ("\n".join(lines) + "\n").encode() + tail


FAULTS = {
    "bad value deep in": with_lines({20: "2020-01-01 19:00:00,19,x"}),
    "inf": with_lines({17: "2020-01-01 16:00:00,inf,1"}),
    "empty cell": with_lines({18: "2020-01-01 17:00:00,17,"}),
    "first column first": with_lines({5: "2020-01-01 04:00:00,?,4", 20: "2020-01-01 19:00:00,1,x"}),
    "values before dates": with_lines({3: "yesterday,2,4", 21: "2020-01-01 20:00:00,x,1"}),
    "bad date": with_lines({22: "2020-13-01 21:00:00,21,441"}),
    "going back": with_lines({23: "2020-01-01 01:00:00,22,484"}),
    "short row": with_lines({19: "2020-01-01 18:00:00,18"}),
    "row before values": with_lines({4: "2020-01-01 03:00:00,x,9", 22: "1,2"}),
    "not csv": with_lines({12: "2020-01-01 11:00:00,1," + "9" * 140_000}),
    "quoted newline": with_lines({12: '2020-01-01 11:00:00,"1\n2",3'}),
    "utf-8 late": with_lines({3: "2020-01-01 02:00:00,2"}, tail=b"9\xff9\n"),
    "nul": with_lines({21: "2020-01-01 20:00:00,20,\x0040"}),
    "empty": b" \n\r\n",
    "header only": b"date,a,b\n\n",
    "numbers for a header": b"1,2,3\n4,5,6\n",
    "twice": b"date,a,a\n2020-01-01,1,2\n",
    "a setting, then a bad row": with_lines({22: "1,2"}),
}


@pytest.mark.parametrize("name", FAULTS)
def test_every_fault_is_the_same_one_line_error_as_reading_whole(tmp_path, streamed, name):
    path = tmp_path / "s.csv"
    path.write_bytes(FAULTS[name])
    # targets first: the columns are b, a (the first bad cell of b is reported before a's)
    settings = {"path": path, "input_length": 2, "horizon": 1, "split": "0.5,0.25,0.25"}
    settings["features"] = "all"
    if name.startswith("a setting"):
        settings["target"] = "nope"
    errors = []
    for on in (False, True):
        streamed(on)
        with pytest.raises(ZooError) as e:
            csv.load_csv(config_of("csv", settings), None)
        errors.append((type(e.value), str(e.value)))
    assert errors[0] == errors[1]
    assert "\n" not in errors[0][1] and errors[0][1].startswith(str(path))
    if name in ("bad value deep in", "first column first"):
        assert errors[1][1] == f"{path}:21: column 'b': 'x' is not a number"


def test_a_model_file_asking_for_a_missing_column(tmp_path, streamed):
    path = tmp_path / "s.csv"
    path.write_bytes(with_lines({}))
    trained = csv.load_csv(config_of("csv", {"path": path, "input_length": 2, "horizon": 1}), None)
    other = tmp_path / "o.csv"
    other.write_bytes(with_lines({0: "date,a,c", 6: "2020-01-01 05:00:00,x,25"}))
    errors = []
    for on in (False, True):
        streamed(on)
        with pytest.raises(ZooError) as e:
            config = config_of("csv", {"path": other, "input_length": 2, "horizon": 1})
            csv.load_csv(config, trained.state)
        errors.append(str(e.value))
    assert errors[0] == errors[1] and "no column 'b'" in errors[0]


def weights(path: Path) -> dict[str, torch.Tensor]:
    from safetensors.torch import load_file

    return load_file(path)


def test_training_on_a_streamed_file_gives_bit_identical_weights(tmp_path, streamed, monkeypatch):
    data = head(ETT, tmp_path / "e.csv", 200)
    settings = dict(dataset="csv", data=str(data), steps=6, threads=1, batch_size=8, **SMALL)
    runs = {}
    for name, on, cache in (("whole", False, "1"), ("streamed", True, "1"), ("cached", True, "")):
        monkeypatch.setenv("ZOO_NO_CACHE", cache)
        streamed(on)
        runs[name] = weights(zoo.run("gru-regressor", out=tmp_path / f"{name}.st", **settings).path)
    # the cached run trained on its series mapped back from the cache entry
    assert runs["whole"].keys() == runs["streamed"].keys() == runs["cached"].keys()
    for k in runs["whole"]:
        assert torch.equal(runs["whole"][k], runs["streamed"][k])
        assert torch.equal(runs["whole"][k], runs["cached"][k])


def test_memory_holds_a_block_not_the_file(tmp_path, monkeypatch):
    monkeypatch.setattr(bigcsv, "STREAM_ABOVE", 0)
    monkeypatch.setattr(bigcsv, "CHUNK", 1 << 14)
    monkeypatch.setattr(bigcsv, "ROWS", 256)
    monkeypatch.setattr(bigcsv, "VALUES", 1 << 12)
    lines = ETT.read_text(encoding="utf-8").splitlines()
    peaks = []
    for rows in (3_000, 12_000):
        path = tmp_path / f"e{rows}.csv"
        body = [lines[1 + i % (len(lines) - 1)] for i in range(rows)]
        path.write_text("\n".join([lines[0], *renumbered(body)]) + "\n", encoding="utf-8")
        tracemalloc.start()
        data = csv.load_csv(config_of("csv", {"path": path, **SMALL}), None)
        peaks.append(tracemalloc.get_traced_memory()[1])
        tracemalloc.stop()
        assert data.info["rows"] == rows
    assert peaks[1] < peaks[0] * 1.1 < path.stat().st_size


def renumbered(rows: list[str]) -> list[str]:
    """ETTh1 rows with hourly timestamps that keep increasing past the file's last."""
    start = np.datetime64("2016-07-01T00:00")
    return [
        f"{str(start + np.timedelta64(i, 'h')).replace('T', ' ')}:00,{row.split(',', 1)[1]}"
        for i, row in enumerate(rows)
    ]


@pytest.mark.parametrize("n", [0, 1, 33, 1000])
def test_the_series_order_is_the_order_of_data_in_4_bytes_a_window(n):
    from zoo.toolkit.data import Data

    splits = {"train": range(n)}
    ours, plain = csv.SeriesData({}, splits, None), Data({}, splits, None)
    for shuffle in (False, True):
        g1, g2 = torch.Generator().manual_seed(5), torch.Generator().manual_seed(5)
        a = ours.order("train", 8, shuffle=shuffle, generator=g1)
        b = plain.order("train", 8, shuffle=shuffle, generator=g2)
        assert len(a) == len(b) and [x.tolist() for x in a] == [x.tolist() for x in b]
        assert torch.equal(g1.get_state(), g2.get_state())  # the next epoch's order too
        if shuffle and n:
            assert a[0].dtype == np.int32 and a[-1].tolist() == b[-1].tolist()


def test_a_mapped_series_is_read_a_window_at_a_time(tmp_path):
    rng = np.random.default_rng(0)
    values = rng.standard_normal((500, 3)).astype(np.float32)
    values.tofile(tmp_path / "s.f32")
    mapped = np.memmap(tmp_path / "s.f32", dtype=np.float32, mode="r", shape=(500, 3))
    starts = [0, 479, 7, 7, 250]
    cuts = [csv.Collate(series, 12, 8, 2) for series in (values, mapped, mapped[1:])]
    assert [c._file() is not None for c in cuts] == [False, True, False]  # a view: the map
    want = cuts[0](starts)
    for c in cuts[1:]:
        got = c(starts)
        assert got["x"].shape == (5, 12, 3) and got["y"].shape == (5, 8, 2)
        assert all(got[k].is_contiguous() for k in got)
    got = cuts[1](starts)
    assert all(torch.equal(got[k], want[k]) for k in ("x", "y"))
