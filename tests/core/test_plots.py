"""`zoo plot` (curves, forecast, confusion) and `zoo gates` drawn with matplotlib: each image
is rendered with Agg and checked (size, not blank), and each figure's titles, axis labels,
legend entries and colour bars are read back from the Figure itself."""

from __future__ import annotations

import csv
import math
import subprocess
import sys

import pytest

import zoo
from zoo import load as load_model
from zoo.cli.plot import _sources
from zoo.features import gates, plots
from zoo.features.runlog import RunLog

matplotlib = pytest.importorskip("matplotlib", reason="the plot extra is not installed")
pytestmark = pytest.mark.usefixtures("one_thread")


# ------------------------------------------------------------------------------ helpers
def check_image(path, width: int, height: int) -> None:
    """A PNG of the given size whose pixels are not all one colour."""
    from matplotlib.image import imread

    pixels = imread(path)
    assert pixels.shape[:2] == (height, width)
    assert float(pixels[..., :3].std()) > 0.05  # lines and text on a white ground


def legend_texts(figure) -> list[str]:
    return [t.get_text() for legend in figure.legends for t in legend.get_texts()]


def colour_bar_labels(figure) -> list[str]:
    """The labels of a figure's colour bars (the extra axes a colour bar adds)."""
    return [a.get_ylabel() for a in figure.axes if a.get_label() == "<colorbar>"]


# ----------------------------------------------------------------------- trained models
@pytest.fixture(scope="module")
def models(tmp_path_factory):
    """Tiny models trained once: two forecasters on a CSV series (different hidden sizes),
    a sine-windows forecaster, a tagger and a character language model."""
    folder = tmp_path_factory.mktemp("plots")
    series = folder / "series.csv"
    with series.open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["date", "load", "temp"])
        for t in range(240):
            writer.writerow(
                [f"2020-01-{1 + t // 24:02d} {t % 24:02d}:00:00", 10 + 3 * math.sin(t / 4), t % 7]
            )
    common = {"dataset": "csv", "data": series, "input_length": 24, "horizon": 6}
    out = {"series": series}
    for name, hidden in (("csv_a", 8), ("csv_b", 4)):
        out[name] = folder / f"{name}.safetensors"
        zoo.run(
            "gru-regressor",
            **common,
            out=out[name],
            hidden_size=hidden,
            members=1,
            patch_length=1,
            epochs=2,
            eval_every=0,
            target=("load",),
        )
    out["sine"] = folder / "sine.safetensors"
    zoo.run("gru-regressor", out=out["sine"], epochs=1, num_windows=100)
    out["tagger"] = folder / "tagger.safetensors"
    zoo.run("lstm-tagger", out=out["tagger"], epochs=2)
    out["lm"] = folder / "lm.safetensors"
    zoo.run("elman-rnn", "text", out=out["lm"], cell="lstm", hidden_size=6, steps=2)
    return out


# ------------------------------------------------------------------------------ curves
def test_curves_of_two_model_files(models, zoo, tmp_path):
    a, b = models["csv_a"], models["csv_b"]
    doc = zoo("plot", a, b, "--out", tmp_path / "c.png", "--json").json()
    assert doc["metric"] == "mse"  # gru-regressor's monitor metric
    assert doc["runs"] == ["csv_a.safetensors (gru-regressor)", "csv_b.safetensors (gru-regressor)"]
    check_image(tmp_path / "c.png", doc["width"], doc["height"])

    runs = _sources([str(a), str(b)])
    figure = plots.curves_figure(runs, "mae", title="T")
    loss, valid = figure.axes
    assert (loss.get_xlabel(), loss.get_ylabel()) == ("step", "loss")
    assert (valid.get_title(), valid.get_ylabel()) == ("validation mae", "mae")
    assert legend_texts(figure) == doc["runs"]
    assert figure.get_suptitle() == "T"
    # one point per epoch on the left, one per validation on the right, at their steps
    history = runs[0]["history"]
    epochs = [e for e in history if "train_loss" in e]
    assert list(loss.lines[0].get_xdata()) == [e["step"] for e in epochs]
    assert list(loss.lines[0].get_ydata()) == [e["train_loss"] for e in epochs]
    valids = [e["valid"]["mae"] for e in history if "valid" in e]
    assert list(valid.lines[0].get_ydata()) == valids and len(valids) == 2


def test_curves_of_a_run_log_id_beside_a_file(models, zoo, tmp_path):
    log = RunLog.open()
    history = zoo_history(models["csv_a"])
    run_id = log.start("run", architecture="gru-regressor", dataset="csv")
    log.update(run_id, status="finished", history=history, metrics={})
    empty = log.start("run", architecture="gru-regressor", dataset="csv")  # killed early
    log.close()
    doc = zoo(
        "plot", "curves", f"#{run_id}", models["csv_b"], "--out", tmp_path / "r.svg", "--json"
    ).json()
    assert doc["runs"][0] == f"#{run_id} gru-regressor" and doc["format"] == "svg"
    assert (tmp_path / "r.svg").read_text().lstrip().startswith("<?xml")
    result = zoo("plot", str(empty), "--out", tmp_path / "e.png")
    assert result.code == 2 and f"{empty}: no training history" in result.stderr


def zoo_history(path) -> list:
    from zoo.core.modelfile import read_info

    return read_info(path)["metrics"]["training"]["history"]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--metric", "nope"], "--metric nope: no run's validation history has it; they have:"),
        (["--out", "c.jpg"], "--out 'c.jpg': expected a .png, .svg or .pdf file name"),
        (["--out", "missing/c.png"], "folder 'missing' does not exist"),
    ],
)
def test_curves_usage_errors(models, zoo, args, message):
    result = zoo("plot", models["csv_a"], *args)
    assert result.code == 2
    assert result.stderr.startswith("Error: ") and message in result.stderr


def test_a_missing_source_is_named(zoo, tmp_path):
    result = zoo("plot", tmp_path / "none.safetensors", "--out", tmp_path / "x.png")
    assert result.code == 1 and "none.safetensors: no such model file" in result.stderr
    result = zoo("plot", "123", "--out", tmp_path / "x.png")
    assert result.code == 2 and "123: no such model file or run id" in result.stderr


# ---------------------------------------------------------------------------- forecast
def test_forecast_windows_are_the_raw_series(models, zoo, tmp_path):
    doc = zoo(
        "plot", "forecast", models["csv_a"], "--windows", "2", "--out", tmp_path / "f.png", "--json"
    ).json()
    check_image(tmp_path / "f.png", doc["width"], doc["height"])
    with models["series"].open() as f:
        load = [float(row["load"]) for row in csv.DictReader(f)]
    first, last = doc["windows"]
    assert first["index"] == 0 and last["index"] > 0
    # the default split is 0.7/0.1/0.2 of 240 rows: the test part is rows 193-240; its first
    # window reads its 24 input rows from before the part (border_context)
    start = 192 - 24
    assert first["truth"] == pytest.approx(load[start + 24 : start + 30], abs=1e-4)
    assert first["history"] == pytest.approx(load[start : start + 24], abs=1e-4)
    assert first["baseline"] == pytest.approx([load[start + 23]] * 6, abs=1e-4)
    assert len(first["forecast"]) == 6 and all(math.isfinite(v) for v in first["forecast"])


def test_forecast_figure_panels_and_legend(models):
    windows = [
        {
            "title": "w1",
            "history": [1, 2, 3],
            "truth": [4, 5],
            "forecast": [4, 4.5],
            "baseline": [3, 3],
        },
        {"title": "w2", "history": [3, 2], "truth": [1, 1], "forecast": [1, 2], "baseline": None},
    ]
    figure = plots.forecast_figure(windows, title="F", target="load")
    top, bottom = figure.axes
    assert (top.get_title(), top.get_ylabel()) == ("w1", "load")
    assert "forecast origin" in bottom.get_xlabel()
    assert legend_texts(figure) == ["history (input)", "truth", "forecast", "repeat-last"]
    assert list(top.lines[0].get_xdata()) == [-2, -1, 0]  # history ends at the origin
    assert list(top.lines[1].get_xdata()) == [1, 2]


def test_forecast_without_the_target_among_the_inputs(models, zoo, tmp_path):
    """sine-windows reads sin(t) and forecasts cos(t): no history, no repeat-last."""
    doc = zoo("plot", "forecast", models["sine"], "--out", tmp_path / "s.png", "--json").json()
    assert len(doc["windows"]) == 3
    assert all(w["baseline"] is None and w["history"] == [] for w in doc["windows"])


def test_forecast_refuses_other_models_and_splits(models, zoo, tmp_path):
    result = zoo("plot", "forecast", models["tagger"], "--out", tmp_path / "x.png")
    assert result.code == 2 and "zoo plot forecast draws forecasters" in result.stderr
    result = zoo("plot", "forecast", models["csv_a"], "--target", "temp")
    assert result.code == 2 and "--target temp: the model forecasts load" in result.stderr
    result = zoo("plot", "forecast", models["csv_a"], "--split", "dev")
    assert result.code == 2 and "--split dev: the data has no windows there" in result.stderr


# --------------------------------------------------------------------------- confusion
def test_confusion_matrix_of_a_tagger(models, zoo, tmp_path):
    doc = zoo("plot", "confusion", models["tagger"], "--out", tmp_path / "m.png", "--json").json()
    assert doc["split"] == "test"
    check_image(tmp_path / "m.png", doc["width"], doc["height"])

    matrix = {
        "labels": ["A", "B", "C", "NEVER"],
        "counts": [[3, 1, 0, 0], [0, 2, 0, 0], [1, 0, 0, 0], [0, 0, 0, 0]],
    }
    figure = plots.confusion_figure(matrix["labels"], matrix["counts"], title="M")
    axes = figure.axes[0]
    assert (axes.get_xlabel(), axes.get_ylabel(), axes.get_title()) == (
        "predicted label",
        "gold label",
        "M",
    )
    ticks = [t.get_text() for t in axes.get_xticklabels()]
    assert ticks == [t.get_text() for t in axes.get_yticklabels()] == ["A", "B", "C"]
    assert colour_bar_labels(figure) == ["share of the gold label's items"]
    shares = axes.images[0].get_array()
    assert shares[0][0] == pytest.approx(0.75) and shares[2][0] == 1.0
    assert sorted(t.get_text() for t in axes.texts) == ["1", "1", "2", "3"]


def test_confusion_needs_a_stored_matrix(models, zoo, tmp_path):
    result = zoo("plot", "confusion", models["csv_a"], "--out", tmp_path / "x.png")
    assert result.code == 2 and "no confusion matrix stored for any split" in result.stderr
    result = zoo("plot", "confusion", models["tagger"], "--split", "train")
    assert result.code == 2 and "(it has one for: test, valid)" in result.stderr


# ------------------------------------------------------------------------------- gates
def test_gates_with_matplotlib_label_symbols_prompt_and_colours(models, zoo, tmp_path):
    doc = zoo(
        "gates", models["lm"], "To be", "--set", "length=4", "--out", tmp_path / "g.png", "--json"
    ).json()
    assert doc["drawn_with"] == "matplotlib" and doc["steps"] == 9
    check_image(tmp_path / "g.png", doc["width"], doc["height"])

    model = load_model(models["lm"])
    entries, predictions = gates.trace(model, "To be", length=4)
    blocks = [gates.block_data(e, "To be", predictions[0]) for e in entries]
    assert blocks[0]["prompt"] == 5
    assert "".join(blocks[0]["symbols"]) == predictions[0]["text"][:9]
    figure = plots.gates_figure(blocks, title="G")
    bands = [a for a in figure.axes if a.get_label() != "<colorbar>"]
    assert [a.get_ylabel().split("\n")[1] for a in bands] == [
        "i: input gate",
        "f: forget gate",
        "g: candidate",
        "o: output gate",
        "c: cell, tanh(c)",
    ]
    symbols = [t.get_text() for t in bands[-1].get_xticklabels()]
    assert symbols[:5] == ["T", "o", "␣", "b", "e"]
    generated = [t.get_color() for t in bands[-1].get_xticklabels()]
    assert len(set(generated[:5])) == 1 and generated[5] != generated[0]
    assert [line.get_xdata()[0] for line in bands[0].lines] == [4.5]  # end of the prompt
    assert colour_bar_labels(figure) == ["activation (gates 0..1, states -1..1)"]


@pytest.mark.parametrize(
    ("steps", "text", "prediction", "expected"),
    [
        (7, "ab", {"input": "ab", "output": "cdefg"}, (list("abcdefg"), 2)),
        (6, "ab", {"input": "ab", "output": "cdefg"}, (list("abcdef"), 2)),  # last not read
        (5, "hello", {"input": "hello", "output": "ohlol"}, (list("hello"), None)),
        (
            2,
            "the dog",
            {"input": "the dog", "output": [["the", "D"], ["dog", "N"]]},
            (["the", "dog"], None),
        ),
        (3, "x", {}, (["0", "1", "2"], None)),
    ],
)
def test_step_symbols(steps, text, prediction, expected):
    assert gates.step_symbols(steps, text, prediction) == expected


# ---------------------------------------------------------------- without matplotlib
@pytest.mark.parametrize("kind", ["curves", "confusion", "forecast"])
def test_without_matplotlib_one_line_says_how_to_install_it(
    models, zoo, tmp_path, no_matplotlib, kind
):
    source = models["tagger"] if kind == "confusion" else models["csv_a"]
    result = zoo("plot", kind, source, "--out", tmp_path / "x.png")
    assert result.code == 1
    assert result.stderr == "Error: zoo plot needs matplotlib: pip install 'rnn-zoo[plot]'\n"
    assert not (tmp_path / "x.png").exists()
    assert not plots.available()


# ------------------------------------------------------------------------- torch-free
PROBE = """
import sys
from zoo.cli import cli
try:
    cli.main(args={args!r}, prog_name="zoo")
except SystemExit as e:
    print("EXIT", e.code, file=sys.stderr)
print("TORCH" if "torch" in sys.modules else "NO-TORCH", file=sys.stderr)
print("MATPLOTLIB" if "matplotlib" in sys.modules else "NO-MATPLOTLIB", file=sys.stderr)
"""


@pytest.mark.slow
def test_curves_and_confusion_never_import_torch(models, tmp_path):
    cases = [
        (
            ["plot", str(models["csv_a"]), str(models["csv_b"]), "--out", str(tmp_path / "c.png")],
            "MATPLOTLIB",
        ),
        (
            ["plot", "confusion", str(models["tagger"]), "--out", str(tmp_path / "m.png")],
            "MATPLOTLIB",
        ),
        (["plot", "--help"], "NO-MATPLOTLIB"),
        (["list"], "NO-MATPLOTLIB"),
    ]
    for args, drawn in cases:
        p = subprocess.run(
            [sys.executable, "-c", PROBE.format(args=args)],
            capture_output=True,
            text=True,
            timeout=60,
        )
        lines = p.stderr.strip().splitlines()
        assert lines[-2:] == ["NO-TORCH", drawn], p.stderr
        assert lines[-3] == "EXIT 0", p.stderr
    assert (tmp_path / "c.png").is_file() and (tmp_path / "m.png").is_file()
