"""zoo.toolkit.series: numeric CSV series read with line-numbered errors, parts in time order,
z-scores fitted on the training rows, and windows with a stride, on small hand-made series.

The gru-regressor's `csv` dataset is built on this module; its own settings (targets,
features, presets) are tested in tests/plugins/gru_regressor/test_forecast_data.py."""

from __future__ import annotations

import json
import math
import re
import subprocess
import sys
from datetime import datetime
from typing import Any

import numpy as np
import pytest

import zoo
from tests.conftest import REPO, write
from zoo.core.errors import DataError, SettingError
from zoo.toolkit import series as ts
from zoo.toolkit.series import (
    ZScore,
    check_windows,
    cut_windows,
    fit_zscore,
    next_timestamps,
    part_ends,
    read_series,
    read_table,
    seasonal_period,
    step_seconds,
    window_starts,
)
from zoo.toolkit.textfile import read_text


def hourly(rows: int, *, start_hour: int = 0) -> str:
    """date,load,temp: load = the row number, temp = 100 + 2 * row; hourly from 2020-01-01."""
    lines = ["date,load,temp"]
    for i in range(rows):
        day, hour = divmod(start_hour + i, 24)
        lines.append(f"2020-01-{1 + day:02d} {hour:02d}:00:00,{i},{100 + 2 * i}")
    return "\n".join(lines) + "\n"


# ------------------------------------------------------------------------------ reading
def test_read_series_gives_the_numbers_lines_and_times(tmp_path):
    path = write(tmp_path, "s.csv", "Date,a,b\n\n2020-01-01,1.5,-2\n2020-01-02, 3e2 ,0\n")
    got = read_series(path)
    assert got.columns == ["a", "b"] and got.date_column == "Date"  # found in any case
    assert got.values.dtype == np.float64 and got.values.tolist() == [[1.5, -2.0], [300.0, 0.0]]
    assert got.lines == [3, 4] and len(got) == 2  # the blank line 2 is skipped
    assert got.timestamps == [datetime(2020, 1, 1), datetime(2020, 1, 2)]
    assert got.fingerprint == read_text(path).fingerprint
    picked = read_series(path, ["b"], date_column="none")
    assert picked.values.tolist() == [[-2.0], [0.0]] and picked.timestamps is None


def test_read_table_takes_a_file_already_read(tmp_path):
    path = write(tmp_path, "s.csv", hourly(5))
    file = read_text(path)
    path.unlink()  # nothing is read a second time
    table = read_table(file)
    assert table.header == ["date", "load", "temp"] and table.lines == [2, 3, 4, 5, 6]
    assert table.numbers("temp", option="target") == [100.0, 102.0, 104.0, 106.0, 108.0]
    assert read_series(file, ["temp"]).values[:, 0].tolist() == [100, 102, 104, 106, 108]


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"", "the file is empty; expected a header line and rows of numbers"),
        (b"\n  \n", "the file is empty; expected a header line and rows of numbers"),
        (b"a,b\n", "a header but no rows of data"),
        (b"a,b\n1,2\n3\n", "3: 1 columns, but the header has 2"),
        (b"a,b\n1,2\n3,x\n", "3: column 'b': 'x' is not a number"),
        (b"a,b\n1,2\n,4\n", "3: column 'a': an empty cell is not a number"),
        (b"a,b\n1,2\n3,nan\n", "3: column 'b': 'nan' is not a finite number"),
        (b"a,b\n1,-inf\n", "2: column 'b': '-inf' is not a finite number"),
        (b"a,b\n1,2\n3,4\xff5\n", "3: not UTF-8 text (byte 0xff at column 4)"),
        (b"1,2\n3,4\n", "1: the first line holds numbers; expected a header line naming the columns"),
        (b"a,a\n1,2\n", "1: header: column 'a' appears twice"),
        (b"a,\n1,2\n", "1: header: column 2 has no name"),
        (b"a,b\n1,2\n3," + b"9" * 200_000 + b"\n", "3: not valid CSV (field larger than field limit"),
    ],
)  # fmt: skip
def test_every_mistake_is_one_error_naming_file_and_line(tmp_path, content, message):
    path = write(tmp_path, "bad.csv", content)
    with pytest.raises(DataError) as e:
        read_series(path)
    sep = ":" if message[0].isdigit() else ": "
    assert str(e.value).startswith(f"{path}{sep}{message}"), str(e.value)


def test_an_unknown_column_is_named_with_the_setting_and_the_header(tmp_path):
    path = write(tmp_path, "s.csv", hourly(3))
    with pytest.raises(DataError) as e:
        read_series(path, ["load", "OT"], option="target")
    assert str(e.value) == f"{path}:1: target: no column 'OT'; the header has: date, load, temp"
    with pytest.raises(DataError, match=r"s\.csv:1: columns: 'date' is the date column"):
        read_series(path, ["date"])
    with pytest.raises(DataError, match=r"s\.csv:1: date_column: no column 'when'"):
        read_series(path, date_column="when")


def test_too_few_rows_name_the_last_row(tmp_path):
    path = write(tmp_path, "s.csv", hourly(4))
    assert len(read_series(path, min_rows=4)) == 4
    with pytest.raises(DataError) as e:
        read_series(path, min_rows=10)
    assert str(e.value) == f"{path}:5: the file ends after 4 row(s) of data; at least 10 are needed"


def test_dates_that_are_not_iso_or_go_back_name_line_and_column(tmp_path):
    bad = write(tmp_path, "d.csv", "date,v\n2020-01-01 00:00:00,1\nyesterday,2\n")
    with pytest.raises(DataError, match=r"d\.csv:3: column 'date': 'yesterday' is not a date"):
        read_series(bad)
    back = write(tmp_path, "b.csv", "date,v\n2020-01-02,1\n2020-01-02,2\n")
    with pytest.raises(DataError) as e:
        read_series(back)
    assert str(e.value) == (
        f"{back}:3: column 'date': '2020-01-02' does not come after the previous row's time"
    )


# ------------------------------------------------------------------------------ time steps
def test_step_is_the_most_common_gap_and_the_shortest_of_a_tie():
    t = [datetime(2020, 1, 1, h) for h in (0, 1, 2, 3, 5, 7)]  # three 1 h gaps, two 2 h gaps
    assert step_seconds(t) == 3600
    assert step_seconds([datetime(2020, 1, 1, h) for h in (0, 2, 3)]) == 3600  # 1 h vs 2 h
    assert step_seconds(t[:1]) is None and step_seconds([]) is None


def test_seasonal_period_of_common_steps():
    assert seasonal_period(3600) == 24 and seasonal_period(900) == 96
    assert seasonal_period(86400) == 7 and seasonal_period(7 * 86400) == 52
    assert seasonal_period(7) is None and seasonal_period(None) is None


def test_next_timestamps_follow_the_last_row(tmp_path):
    table = read_table(write(tmp_path, "s.csv", hourly(3)))
    assert next_timestamps(table, "date", 2) == ["2020-01-01 03:00:00", "2020-01-01 04:00:00"]
    assert next_timestamps(table, "date", 1, step=1800) == ["2020-01-01 02:30:00"]
    late = read_table(
        write(tmp_path, "l.csv", "date,v\n9999-12-31 22:00:00,1\n9999-12-31 23:00:00,2\n")
    )
    with pytest.raises(DataError) as e:
        next_timestamps(late, "date", 1)
    assert str(e.value).startswith(f"{tmp_path / 'l.csv'}:3: column 'date': the forecast times")


# ------------------------------------------------------------------------------ parts
def test_parts_by_row_counts_and_by_fractions():
    assert part_ends((6, 3, 3), 12, "s.csv") == (6, 9, 12)
    assert part_ends((6, 3, 2), 12, "s.csv") == (6, 9, 11)  # the rows after the test are unused
    assert part_ends((0.7, 0.1, 0.2), 200, "s.csv") == (140, 160, 200)
    assert part_ends((0.25, 0.25, 0.5), 10, "s.csv") == (2, 5, 10)  # round half to even


@pytest.mark.parametrize(
    ("split", "message"),
    [
        ((8, 3, 3), "s.csv: split asks for 14 rows (8+3+3); the file has 12"),
        ((0.8, 0.2, 0.2), "s.csv: split fractions 0.8,0.2,0.2 add up to more than 1"),
        ((6, 0.5, 3), "s.csv: split 6,0.5,3: give row counts (whole numbers) or fractions"),
    ],
)
def test_a_split_the_file_cannot_give_is_a_data_error(split, message):
    with pytest.raises(DataError) as e:
        part_ends(split, 12, "s.csv")
    assert str(e.value).startswith(message)


def test_a_split_of_two_values_is_a_setting_error():
    with pytest.raises(SettingError, match=r"^split=0\.8,0\.2: expected three values"):
        part_ends((0.8, 0.2), 12, "s.csv")


def test_another_file_is_all_test_and_the_training_file_is_cut_again():
    state = {"fingerprint": "abc"}
    assert part_ends((6, 3, 3), 12, "s.csv", state=state, fingerprint="abc") == (6, 9, 12)
    assert part_ends((6, 3, 3), 5, "o.csv", state=state, fingerprint="xyz") == (0, 0, 5)
    assert part_ends((6, 3, 3), 12, "s.csv", state={}, fingerprint="xyz") == (6, 9, 12)


# ------------------------------------------------------------------------------ z-scores
def test_statistics_come_from_the_training_rows_only():
    values = np.array([[1.0, 10.0], [2.0, 10.0], [3.0, 10.0], [4.0, 10.0], [1e6, -5.0]])
    z = fit_zscore(values[:4], ["a", "b"])
    assert z.mean == [2.5, 10.0]
    assert z.std == [math.sqrt(1.25), 1.0]  # population deviation; b is constant: 1
    again = values.copy()
    again[4] = [-7.0, 3.0]  # what comes after the training rows changes nothing
    assert fit_zscore(again[:4], ["a", "b"]) == z


def test_a_zero_variance_column_stays_constant_instead_of_dividing_by_zero():
    values = np.array([[5.0, 1.0], [5.0, 2.0], [5.0, 3.0], [7.0, 4.0]])
    z = fit_zscore(values[:3], ["flat", "ramp"])
    assert z.std[0] == 1.0 and z.mean[0] == 5.0
    scaled = z.apply(values)
    assert scaled[:, 0].tolist() == [0.0, 0.0, 0.0, 2.0]  # the raw difference, unscaled
    assert np.isfinite(scaled).all()


def test_apply_then_undo_gives_the_raw_values_back():
    rng = np.random.default_rng(0)
    values = rng.normal(50.0, 20.0, size=(40, 3))
    z = fit_zscore(values[:30], ["a", "b", "c"])
    exact = z.apply(values, dtype=np.float64)
    assert np.allclose(exact[:30].mean(axis=0), 0.0) and np.allclose(exact[:30].std(axis=0), 1.0)
    assert np.allclose(z.undo(exact), values, rtol=0, atol=1e-12)
    narrow = z.apply(values)
    assert narrow.dtype == np.float32
    assert np.allclose(z.undo(narrow), values, rtol=1e-6)
    assert np.allclose(z.undo(exact[:, [2, 0]], columns=[2, 0]), values[:, [2, 0]], atol=1e-12)


def test_apply_rounds_once_from_float64():
    """The same numbers as `float32((v - mean) / std)` cell by cell: a trained model's weights
    depend on these bits."""
    values = np.array([[0.1, 1e-3], [0.7, 2e-3], [1.3, 5e-3]])
    z = fit_zscore(values, ["a", "b"])
    expected = [
        [np.float32((v - m) / s) for v, m, s in zip(row, z.mean, z.std)] for row in values.tolist()
    ]
    assert z.apply(values).tolist() == expected


def test_statistics_travel_in_the_state_as_json():
    values = np.array([[1.0, 3.0], [2.0, 5.0], [4.0, 9.0]])
    z = fit_zscore(values, ["a", "b"])
    state = json.loads(json.dumps({"columns": ["a", "b"], **z.state()}))
    assert set(state) == {"columns", "mean", "std"}
    back = ZScore.from_state(state)
    assert back == z and back.apply(values).tobytes() == z.apply(values).tobytes()


def test_statistics_that_cannot_be_fitted_or_applied_are_data_errors():
    with pytest.raises(DataError, match=r"^s\.csv: the training part has 1 row\(s\); z-scores"):
        fit_zscore(np.array([[1.0]]), ["a"], path="s.csv")
    huge = np.array([[1.0, 1e308], [2.0, -1e308]])
    with pytest.raises(DataError, match=r"^s\.csv: column 'b': values too large to standardise"):
        fit_zscore(huge, ["a", "b"], path="s.csv")
    z = fit_zscore(np.array([[0.0], [1e-10]]), ["a"])  # std 5e-11: 1e30 scales to 2e40
    with pytest.raises(DataError, match=r"^s\.csv: values too large for the model's 32-bit"):
        z.apply(np.array([[1e30]]), path="s.csv")


# ------------------------------------------------------------------------------ windows
# 12 rows of 3 columns: row r holds 10r, 10r + 1, 10r + 2; parts end at rows 6, 9 and 12.
SERIES = np.arange(12)[:, None] * 10.0 + np.arange(3)
ENDS = (6, 9, 12)


def starts(**kwargs: Any) -> dict[str, list[int]]:
    return {part: list(r) for part, r in window_starts(ENDS, **kwargs).items()}


def test_forecast_windows_start_in_their_part_or_in_its_context():
    # a window: 3 input rows, then 2 target rows, ending inside its part
    assert starts(length=3, horizon=2) == {"train": [0, 1], "valid": [], "test": []}
    # the published protocol: valid and test windows read their input before the part,
    # so the first target is the part's first row and every row of the part is forecast
    got = starts(length=3, horizon=2, context=3)
    assert got == {"train": [0, 1], "valid": [3, 4], "test": [6, 7]}
    targets = {p: sorted({s + 3 + k for s in got[p] for k in range(2)}) for p in got}
    assert targets["valid"] == [6, 7, 8] and targets["test"] == [9, 10, 11]


def test_stride_skips_starts_in_time_order():
    assert starts(length=2, horizon=1, stride=2) == {"train": [0, 2], "valid": [6], "test": [9]}
    assert starts(length=2, horizon=1, stride=2, context=2) == {
        "train": [0, 2],
        "valid": [4, 6],
        "test": [7, 9],
    }


def test_autoencoder_windows_have_no_targets():
    assert starts(length=3) == {"train": [0, 1, 2, 3], "valid": [6], "test": [9]}
    x, y = cut_windows(SERIES, [0, 9], 3)
    assert x[:, :, 0].tolist() == [[0.0, 10.0, 20.0], [90.0, 100.0, 110.0]]
    assert x.shape == (2, 3, 3) and y.shape == (2, 0, 3)


def test_cut_windows_gives_the_rows_in_order_and_the_target_columns():
    x, y = cut_windows(SERIES, [1, 4], 3, 2, targets=[2])
    assert x.tolist() == [
        [[10, 11, 12], [20, 21, 22], [30, 31, 32]],
        [[40, 41, 42], [50, 51, 52], [60, 61, 62]],
    ]
    assert y.tolist() == [[[42], [52]], [[72], [82]]]
    _, first_two = cut_windows(SERIES, [0], 1, 1, targets=slice(0, 2))
    assert first_two.tolist() == [[[10, 11]]] and first_two.flags.c_contiguous


def test_a_part_without_a_window_names_its_rows():
    got = window_starts(ENDS, 3, 2)
    with pytest.raises(DataError) as e:
        check_windows(got, ENDS, 3, 2, path="s.csv")
    assert str(e.value) == (
        "s.csv: the validation part (rows 7-9, 3 rows) holds no window of 3 input + 2 forecast "
        "rows; shorten input_length or horizon, or change split"
    )
    check_windows(got, ENDS, 3, 2, path="s.csv", parts=("train",))  # not asked for: fine
    check_windows(window_starts(ENDS, 3, 2, context=3), ENDS, 3, 2, path="s.csv")
    with pytest.raises(DataError, match=r"training part \(rows 1-6, 6 rows\) holds no window of 7 rows;"):  # fmt: skip
        check_windows(window_starts(ENDS, 7), ENDS, 7, path="s.csv")


# ------------------------------------------------------------------------------ together
def guide_loader() -> dict[str, Any]:
    """The anomaly detector's CSV loader that docs/plugins.md ("Numeric series") shows, run
    exactly as printed there."""
    guide = (REPO / "docs" / "plugins.md").read_text(encoding="utf-8")
    blocks = re.findall(r"```python\n(.*?)```", guide, flags=re.S)
    [block] = [b for b in blocks if "def load_windows(" in b]
    namespace: dict[str, Any] = {}
    exec(compile(block, "docs/plugins.md", "exec"), namespace)
    return namespace


def sensors(rows: int, anomalous: set[int]) -> str:
    """date,v,w,label: v and w rise with the row; label 1 on the rows given."""
    lines = ["date,v,w,label"] + [
        f"2020-01-01 00:{i:02d}:00,{i},{100 + 2 * i},{int(i in anomalous)}" for i in range(rows)
    ]
    return "\n".join(lines) + "\n"


def test_the_guides_anomaly_loader_trains_labels_windows_and_scores_another_file(tmp_path):
    guide = guide_loader()
    config = guide["SensorsConfig"](
        path=str(write(tmp_path, "s.csv", sensors(40, {33}))), input_length=5, stride=5,
        split=(20, 10, 10),
    )  # fmt: skip
    data = guide["load_windows"](config, None)
    assert {p: list(r) for p, r in data.splits.items()} == {
        "train": [0, 5, 10, 15],
        "valid": [20, 25],
        "test": [30, 35],
    }
    assert data.state["columns"] == ["v", "w"] and data.state["mean"] == [9.5, 119.0]
    batch = next(data.batches("test", 8))
    assert batch["x"].shape == (2, 5, 2) and batch["label"].tolist() == [1, 0]
    unlabelled = write(
        tmp_path, "o.csv", sensors(12, set()).replace(",label", "").replace(",0\n", "\n")
    )
    other = guide["SensorsConfig"](path=str(unlabelled), input_length=5, stride=5)
    scored = guide["load_windows"](other, data.state)  # another file: all of it is the test
    assert [list(scored.splits[p]) for p in ("train", "valid", "test")] == [[], [], [0, 5]]
    assert next(scored.batches("test", 8))["label"].tolist() == [-100, -100]


def test_select_gives_a_models_columns_in_its_order_or_names_the_missing_one(tmp_path):
    series = read_series(write(tmp_path, "s.csv", hourly(3)))
    assert series.select(["temp", "load"]).tolist() == [[100, 0], [102, 1], [104, 2]]
    with pytest.raises(DataError) as e:
        series.select(["load", "OT"])
    assert str(e.value) == (
        f"{tmp_path / 's.csv'}:1: columns: no column 'OT'; the file's numeric columns are: "
        "load, temp"
    )


def test_the_facade_exports_the_series_names():
    assert zoo.read_series is read_series and zoo.fit_zscore is fit_zscore
    assert zoo.ZScore is ZScore and zoo.cut_windows is cut_windows
    assert {"read_series", "window_starts", "part_ends"} <= set(dir(zoo))


def test_the_module_imports_without_torch():
    """A torch-free tool (the runtime's CSV reading, `zoo predict --input`) may use it."""
    code = f"import sys; import {ts.__name__}; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False", out.stderr
