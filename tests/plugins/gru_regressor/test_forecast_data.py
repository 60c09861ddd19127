"""The csv dataset: reading CSV time series, windows, splits, z-scores, presets and errors."""

from __future__ import annotations

import math
import tempfile
from pathlib import Path

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from zoo_plugins.gru_regressor import CSVSeriesConfig, SineWindowsConfig
from zoo_plugins.gru_regressor.csv_data import load_csv, plan
from zoo_plugins.gru_regressor.data import load_sine_windows

import zoo
from tests.conftest import SHARED_DATA
from zoo.core.errors import DataError, SettingError
from zoo.toolkit.series import read_table

ETTH1 = SHARED_DATA / "ett" / "ETTh1.csv"


def write_series(path: Path, rows: int, *, start_hour: int = 0) -> Path:
    """date,load,temp: load = the row number, temp = 100 + 2 * row; hourly from 2020-01-01."""
    lines = ["date,load,temp"]
    for i in range(rows):
        day, hour = divmod(start_hour + i, 24)
        lines.append(f"2020-01-{1 + day:02d} {hour:02d}:00:00,{i},{100 + 2 * i}")
    path.write_text("\n".join(lines) + "\n")
    return path


def config(path: Path | str, **values) -> CSVSeriesConfig:
    return zoo.core.config.build(CSVSeriesConfig, {"path": str(path), **values})


def test_windows_follow_the_published_protocol(tmp_path):
    """Train windows stay inside the training rows; validation and test windows start
    input_length rows before their part, so the first forecast is the part's first row."""
    path = write_series(tmp_path / "s.csv", 100)
    data = load_csv(config(path, target="load", split="60,20,20", input_length=8, horizon=3), None)
    assert [data.size(s) for s in ("train", "valid", "test")] == [60 - 8 - 3 + 1, 18, 18]
    mean, std = data.state["mean"][0], data.state["std"][0]

    def raw(t: torch.Tensor) -> list[float]:
        return [round(v * std + mean, 3) for v in t.flatten().tolist()]

    first_test = data.collate([data.splits["test"][0]])
    assert raw(first_test["x"]) == [float(v) for v in range(72, 80)]
    assert raw(first_test["y"]) == [80.0, 81.0, 82.0]
    last_test = data.collate([data.splits["test"][-1]])
    assert raw(last_test["y"]) == [97.0, 98.0, 99.0]  # the file's last row is forecast
    last_train = data.collate([data.splits["train"][-1]])
    assert raw(last_train["y"])[-1] == 59.0  # no training window reaches a validation row
    first_valid = data.collate([data.splits["valid"][0]])
    assert raw(first_valid["y"])[0] == 60.0


def test_zscore_statistics_come_from_the_training_rows_only(tmp_path):
    path = write_series(tmp_path / "s.csv", 100)
    data = load_csv(
        config(path, target="load", features="temp", split="50,25,25", input_length=8), None
    )
    train = list(range(50))
    mean = sum(train) / 50
    std = math.sqrt(sum((v - mean) ** 2 for v in train) / 50)
    assert data.state["mean"][0] == pytest.approx(mean) and data.state["std"][0] == pytest.approx(
        std
    )
    assert data.state["mean"][1] == pytest.approx(100 + 2 * mean)
    assert data.state["columns"] == ["load", "temp"] and data.state["targets"] == ["load"]
    assert data.state["input_size"] == 2 and data.state["output_size"] == 1


def test_fractions_stride_and_defaults(tmp_path):
    path = write_series(tmp_path / "s.csv", 200)
    data = load_csv(config(path, input_length=10, horizon=5, stride=2), None)
    # default split 0.7/0.1/0.2: 140/20/40 rows; default target: the last column (temp)
    assert data.state["targets"] == ["temp"] and data.state["date_column"] == "date"
    assert data.size("train") == len(range(0, 140 - 15 + 1, 2))
    assert data.size("test") == len(range(160 - 10, 200 - 15 + 1, 2))
    assert data.state["step_seconds"] == 3600 and data.state["season"] == 24
    assert data.collate(data.splits["train"][:4])["x"].shape == (4, 10, 1)


def test_multivariate_targets_and_all_features(tmp_path):
    path = tmp_path / "m.csv"
    path.write_text("t,a,b,c\n" + "".join(f"{i},{i},{2 * i},{3 * i}\n" for i in range(60)))
    data = load_csv(
        config(path, target="c,a", features="all", split="40,10,10", input_length=5, horizon=2),
        None,
    )
    assert data.state["columns"] == ["c", "a", "t", "b"]  # targets first; no date column named t
    batch = data.collate(data.splits["train"][:3])
    assert batch["x"].shape == (3, 5, 4) and batch["y"].shape == (3, 2, 2)


def test_preset_fills_unset_settings_and_explicit_ones_win(tmp_path):
    path = write_series(tmp_path / "s.csv", 30)
    with pytest.raises(DataError, match="no column 'OT'"):
        load_csv(config(path, preset="ett-h1-ot"), None)
    p = plan(config(path, preset="ett-h1-ot", input_length=48))
    assert p.input_length == 48 and p.target == ("OT",) and p.split == (8640, 2880, 2880)
    assert p.date_column == "date" and p.season == 24
    assert plan(config(path)).input_length == 96 and plan(config(path)).target is None


@pytest.mark.skipif(not ETTH1.exists(), reason="../shared/data/ett/ETTh1.csv is absent")
def test_etth1_preset_reproduces_the_protocol():
    data = load_csv(config(ETTH1, preset="ett-h1-ot", horizon=96), None)
    assert data.state["input_length"] == 336 and data.state["targets"] == ["OT"]
    # every validation and test row is forecast: 2880 - 96 + 1 windows each
    assert [data.size(s) for s in ("train", "valid", "test")] == [8640 - 336 - 96 + 1, 2785, 2785]
    ot = read_table(ETTH1).numbers("OT", option="target")
    mean = sum(ot[:8640]) / 8640
    assert data.state["mean"][0] == pytest.approx(mean)
    y = data.collate([data.splits["test"][0]])["y"][0, 0, 0].item()
    assert y * data.state["std"][0] + mean == pytest.approx(ot[11520], abs=1e-4)
    assert data.state["season"] == 24 and data.state["step_seconds"] == 3600


# ------------------------------------------------------------------------------- errors
def run_error(zoo_cli, path, *settings: str) -> str:
    args = ["run", "gru-regressor", "--dataset", "csv", "--data", str(path), "--epochs", "1"]
    for s in settings:
        args += ["--set", s]
    r = zoo_cli(*args, "-q")
    assert r.code != 0
    return r.error_line()


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        (b"", "the file is empty"),
        (b"\n\n  \n", "the file is empty"),
        (b"a,b\n", "a header but no rows"),
        (b"a,b\n1,2\n3\n", ":3: 1 columns, but the header has 2"),
        (b"a,b\n1,2\n3,x\n", ":3: column 'b': 'x' is not a number"),
        (b"a,b\n1,2\n3,\n", ":3: column 'b': an empty cell is not a number"),
        (b"a,b\n1,2\n3,nan\n", ":3: column 'b': 'nan' is not a finite number"),
        (b"a,b\n1,2\n3,inf\n", "is not a finite number"),
        (b"a,b\n1,2\n\xff\xfe,3\n", ":3: not UTF-8 text (byte 0xff at column 1)"),
        (b"1,2\n3,4\n", ":1: the first line holds numbers; expected a header"),
        (b"a,a\n1,2\n", "column 'a' appears twice"),
        (b"a,\n1,2\n", "column 2 has no name"),
        (b"a,b\n1,1e308\n2,-1e308\n3,1e308\n4,-1e308\n", "values too large"),
    ],
)
def test_malformed_files_get_one_line_errors(zoo, tmp_path, content, expected):
    path = tmp_path / "bad.csv"
    path.write_bytes(content)
    line = run_error(zoo, path)
    assert expected in line and "bad.csv" in line, line


def test_missing_path_and_folder(zoo, tmp_path):
    assert "no such file" in run_error(zoo, tmp_path / "nope.csv")
    assert "folder" in run_error(zoo, tmp_path)
    r = zoo("run", "gru-regressor", "--dataset", "csv", "-q")
    assert "--data PATH" in r.error_line()


def test_unknown_columns_and_bad_dates(zoo, tmp_path):
    path = write_series(tmp_path / "s.csv", 50)
    line = run_error(zoo, path, "target=OT")
    assert "target: no column 'OT'; the header has: date, load, temp" in line
    assert "features: no column 'x'" in run_error(zoo, path, "features=x")
    assert "date_column: no column 'when'" in run_error(zoo, path, "date_column=when")
    bad = tmp_path / "d.csv"
    bad.write_text("date,v\n2020-01-01 00:00:00,1\nyesterday,2\n")
    assert "d.csv:3: column 'date': 'yesterday' is not a date" in run_error(zoo, bad)
    back = tmp_path / "b.csv"
    back.write_text("date,v\n2020-01-02,1\n2020-01-01,2\n")
    assert "b.csv:3:" in run_error(zoo, back) and "does not come after" in run_error(zoo, back)


def test_splits_that_end_up_empty(zoo, tmp_path):
    path = write_series(tmp_path / "s.csv", 50)
    short = ("split=30,10,10", "input_length=8", "horizon=4")
    line = run_error(zoo, path, *short, "border_context=false")
    assert "the validation part (rows 31-40, 10 rows) holds no window of 8 input + 4" in line
    assert (
        zoo(
            "run",
            "gru-regressor",
            "--dataset",
            "csv",
            "--data",
            path,
            "--epochs",
            "1",
            "-q",
            *[a for s in short for a in ("--set", s)],
            "--out",
            tmp_path / "m.safetensors",
        ).code
        == 0
    )
    assert "the training part (rows 1-10, 10 rows) holds no window" in run_error(
        zoo, path, "split=10,20,20", "input_length=8", "horizon=4"
    )
    assert "split asks for 60 rows (20+20+20); the file has 50" in run_error(
        zoo, path, "split=20,20,20"
    )
    assert "add up to more than 1" in run_error(zoo, path, "split=0.8,0.2,0.2")
    assert "expected three values" in run_error(zoo, path, "split=0.8,0.2")
    assert "not a mix" in run_error(zoo, path, "split=30,0.5,10")


def test_a_bad_byte_is_named_by_line_and_column(tmp_path):
    """The reader's error (tests/core/test_series.py) reaches the loader's caller unchanged."""
    path = tmp_path / "f.csv"
    path.write_bytes(b"a,b\n1,2\n3,4\xff5\n")
    with pytest.raises(DataError) as e:
        load_csv(config(path), None)
    assert str(e.value) == f"{path}:3: not UTF-8 text (byte 0xff at column 4)"


def test_setting_errors_name_the_setting_without_set(tmp_path):
    path = write_series(tmp_path / "s.csv", 50)
    for values, start in (
        ({"target": "date"}, "target=date: 'date' is the date column"),
        ({"target": "load,load"}, "target=load,load: a column is named twice"),
        ({"features": "date"}, "features=date: 'date' is the date column"),
        ({"split": "0.8,0.2"}, "split=0.8,0.2: expected three values"),
    ):
        with pytest.raises(SettingError) as e:
            load_csv(config(path, **values), None)
        assert str(e.value).startswith(start), str(e.value)


def test_sine_windows_split_by_the_shared_fractions():
    """The same windows and split again at evaluation; with nothing held out for the test,
    a trained model is evaluated on every window."""
    cfg = zoo.core.config.build(SineWindowsConfig, {"num_windows": 50, "test_fraction": 0.2})
    data = load_sine_windows(cfg, None)
    assert [data.size(s) for s in ("train", "valid", "test")] == [35, 5, 10]
    again = load_sine_windows(cfg, data.state)
    assert again.splits == data.splits
    none_held = zoo.core.config.replace(cfg, {"test_fraction": 0.0})
    trained = load_sine_windows(none_held, None)
    assert trained.size("test") == 0
    assert load_sine_windows(none_held, trained.state).size("test") == 50


def test_the_trained_window_is_enforced_at_evaluation(tmp_path):
    path = write_series(tmp_path / "s.csv", 120)
    data = load_csv(config(path, input_length=10, horizon=5), None)
    with pytest.raises(SettingError, match="^horizon=6: this model was trained with horizon=5"):
        load_csv(config(path, input_length=10, horizon=6), data.state)
    again = load_csv(config(path, horizon=5), data.state)  # unset input_length: the model's
    assert again.size("test") == data.size("test")


@pytest.mark.parametrize(
    ("asked", "refusal"),
    [
        ({"target": "temp"}, "target=temp: this model was trained with target=load"),
        ({"features": "temp"}, "features=temp: this model was trained with features=(none)"),
        ({"date_column": "none"}, "date_column=none: this model was trained with date_column=date"),
        ({"season": 12}, "season=12: this model was trained with season=24"),
    ],
)
def test_settings_the_model_fixes_are_refused_at_evaluation_not_ignored(tmp_path, asked, refusal):
    """At evaluation the saved model decides the columns, the date column and the season: a
    different one asked for was silently ignored (the answers were the trained model's), now
    it is refused in zoo's words; the trained values themselves are accepted."""
    path = write_series(tmp_path / "s.csv", 120)
    trained = {"target": "load", "input_length": 10, "horizon": 5}
    data = load_csv(config(path, **trained), None)
    assert data.state["season"] == 24 and data.state["columns"] == ["load"]
    with pytest.raises(SettingError) as e:
        load_csv(config(path, **{**trained, **asked}), data.state)
    assert str(e.value) == refusal
    same = {"target": "load", "features": "load", "date_column": "date", "season": 24}
    kept = load_csv(config(path, **{**trained, **same}), data.state)
    assert kept.size("test") == data.size("test")


# ------------------------------------------------------------------------------- fuzzing
VALID = (
    "date,HUFL,OT\n"
    + "".join(f"2016-07-01 {h:02d}:00:00,{h * 0.5:.3f},{30 - h:.2f}\n" for h in range(24))
    + "".join(f"2016-07-02 {h:02d}:00:00,{h * 0.25:.3f},{10 + h:.2f}\n" for h in range(24))
)
SMALL = {"input_length": 4, "horizon": 2, "split": "0.5,0.25,0.25"}


def loads_or_data_error(content: bytes, **values) -> bool:
    """True when the bytes load (into finite windows), False when refused with a DataError;
    anything else fails the test."""
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "f.csv"
        path.write_bytes(content)
        try:
            data = load_csv(config(path, **values), None)
        except DataError:
            return False
        batch = data.collate(list(data.splits["train"][:2]))
        assert torch.isfinite(batch["x"]).all() and torch.isfinite(batch["y"]).all()
        return True


def test_the_valid_fuzz_seed_loads():
    # The fuzz tests mutate this file; were it refused, they would test nothing but refusals.
    assert loads_or_data_error(VALID.encode(), **SMALL)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(max_size=400))
def test_random_bytes_load_or_raise_data_error(content):
    loads_or_data_error(content, **SMALL)


@st.composite
def mutated(draw):
    text = bytearray(VALID.encode())
    for _ in range(draw(st.integers(1, 4))):
        kind = draw(st.sampled_from(["delete", "insert", "replace", "truncate", "dup_line"]))
        at = draw(st.integers(0, max(0, len(text) - 1)))
        if kind == "delete" and text:
            del text[at : at + draw(st.integers(1, 8))]
        elif kind == "insert":
            text[at:at] = draw(
                st.sampled_from([b",", b"\n", b'"', b"x", b"nan", b"\xff", b"-", b"1e999", b" "])
            )
        elif kind == "replace" and text:
            text[at] = draw(st.integers(0, 255))
        elif kind == "truncate":
            del text[at:]
        else:
            lines = bytes(text).split(b"\n")
            i = draw(st.integers(0, len(lines) - 1))
            lines.insert(i, lines[i])
            text = bytearray(b"\n".join(lines))
    return bytes(text)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(mutated())
def test_mutated_valid_files_load_or_raise_data_error(content):
    loads_or_data_error(content, **SMALL)


def test_another_file_is_evaluated_whole_and_the_training_file_by_its_split(tmp_path):
    """The core's held-out rule, kept by the time-ordered split: the training file gives its
    test part again; any other file is all test windows (its length need not fit the split)."""
    path = write_series(tmp_path / "s.csv", 100)
    settings = {"target": "load", "split": "60,20,20", "input_length": 8, "horizon": 3}
    trained = load_csv(config(path, **settings), None)
    again = load_csv(config(path, **settings), trained.state)
    assert list(again.splits["test"]) == list(trained.splits["test"])
    other = write_series(tmp_path / "other.csv", 30, start_hour=5)
    scored = load_csv(config(other, **settings), trained.state)
    assert list(scored.splits["test"]) == list(range(30 - 8 - 3 + 1))
    assert not scored.has("train") and not scored.has("valid")
