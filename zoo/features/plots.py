"""Figures of runs and models: training curves, forecasts, confusion matrices and gate heat maps.

Each builder takes plain data (lists, dicts) and returns a matplotlib `Figure`, so tests can
look at its axes, titles, labels and legends, and `save` renders it to PNG, SVG or PDF (by
the file's suffix) and writes it atomically. Only the object-oriented API is used
(`matplotlib.figure.Figure`, rendered by the Agg canvas): no pyplot, no display, and no global
backend switched in a program that imports zoo.

matplotlib is the optional `plot` extra (`pip install 'rnn-zoo[plot]'`) and is imported only
when a figure is built; without it `figure_class` says how to install it. Nothing here imports
torch at module level: training curves and confusion matrices come from a model file's
metadata or the run log, so `zoo plot curves` and `zoo plot confusion` start as fast as
`zoo inspect`. Only `forecast_windows`, which runs a model, imports torch (inside). The
commands are in zoo/cli/plot.py; docs/plots.md shows one figure of each kind.
"""

from __future__ import annotations

import io
import math
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from zoo.core.errors import UsageError, ZooError
from zoo.core.fileio import atomic_write

INSTALL = "pip install 'rnn-zoo[plot]'"
FORMATS = {".png": "png", ".svg": "svg", ".pdf": "pdf"}
DPI = 100  # pixels per inch of a PNG: figure sizes below are in inches
GATE_NAMES = {
    "i": "input gate",
    "f": "forget gate",
    "g": "candidate",
    "o": "output gate",
    "c": "cell, tanh(c)",
    "r": "reset gate",
    "z": "update gate",
    "n": "new state",
    "h": "hidden state",
}


# ------------------------------------------------------------------------------ plumbing
def figure_class(command: str = "plot") -> Any:
    """matplotlib's `Figure`, or a one-line error saying how to install it."""
    try:
        from matplotlib.figure import Figure
    except ImportError:
        raise ZooError(f"zoo {command} needs matplotlib: {INSTALL}") from None
    return Figure


def available() -> bool:
    """Whether matplotlib can be imported (`zoo gates` falls back to its own PNG writer)."""
    try:
        figure_class()
    except ZooError:
        return False
    return True


def output_format(path: str | os.PathLike[str], option: str = "--out") -> str:
    """The image format a file name asks for, by suffix; anything else is a usage error."""
    fmt = FORMATS.get(Path(path).suffix.lower())
    if fmt is None:
        raise UsageError(f"{option} {str(path)!r}: expected a .png, .svg or .pdf file name")
    return fmt


def render(figure: Any, fmt: str) -> bytes:
    """The figure as the bytes of a `fmt` file (png, svg or pdf). A PNG is stored as RGB:
    on its white ground the alpha channel says nothing and costs a tenth of the file."""
    buffer = io.BytesIO()
    figure.savefig(buffer, format=fmt, dpi=DPI, facecolor="white")
    if fmt != "png":
        return buffer.getvalue()
    from PIL import Image  # matplotlib's own dependency, already imported by it

    buffer.seek(0)
    rgb = io.BytesIO()
    Image.open(buffer).convert("RGB").save(rgb, format="png", optimize=True)
    return rgb.getvalue()


def save(figure: Any, path: str | os.PathLike[str]) -> dict[str, Any]:
    """Render the figure in the format its suffix names and write it atomically (a reader
    never sees half an image); returns what was written."""
    fmt = output_format(path)
    data = render(figure, fmt)
    atomic_write(path, data)
    width, height = figure.get_size_inches()
    return {
        "path": os.fspath(path),
        "format": fmt,
        "width": round(width * DPI),
        "height": round(height * DPI),
        "bytes": len(data),
    }


def _markers(count: int) -> str | None:
    """Dots on the points of a short curve (a 3-epoch run is 3 points), none on long ones."""
    return "o" if count <= 30 else None


# ------------------------------------------------------------------------ training curves
def curves_figure(runs: Sequence[Mapping[str, Any]], metric: str, *, title: str) -> Any:
    """Training loss (left) and the validation `metric` (right) against the optimizer step,
    one colour per run. A run is {"label", "history"}; the history is the trainer's:
    per-epoch entries with `train_loss`, per-validation entries with a `valid` dict."""
    figure = figure_class()(figsize=(11, 4.6), layout="constrained")
    loss_axes, valid_axes = figure.subplots(1, 2)
    for run in runs:
        epochs = [e for e in run["history"] if _finite(e.get("train_loss"))]
        checks = [e for e in run["history"] if _finite((e.get("valid") or {}).get(metric))]
        (line,) = loss_axes.plot(
            [e["step"] for e in epochs],
            [e["train_loss"] for e in epochs],
            marker=_markers(len(epochs)),
            label=run["label"],
        )
        valid_axes.plot(
            [e["step"] for e in checks],
            [e["valid"][metric] for e in checks],
            marker=_markers(len(checks)),
            color=line.get_color(),
            label=run["label"],
        )
    loss_axes.set(title="training loss (mean over each epoch)", xlabel="step", ylabel="loss")
    valid_axes.set(title=f"validation {metric}", xlabel="step", ylabel=metric)
    for axes in (loss_axes, valid_axes):
        _log_scale_if_wide(axes)
        axes.grid(alpha=0.3)
        if not axes.lines or not any(len(line.get_xdata()) for line in axes.lines):
            axes.text(0.5, 0.5, "no points", ha="center", transform=axes.transAxes)
    figure.legend(
        handles=loss_axes.lines, loc="outside lower center", ncols=min(3, len(runs)), fontsize=9
    )
    figure.suptitle(title)
    return figure


def _finite(value: Any) -> bool:
    return isinstance(value, (int, float)) and math.isfinite(value)


def _log_scale_if_wide(axes: Any) -> None:
    """A log y axis when the values span over 30x (a loss falling from 4 to 0.05)."""
    values = [v for line in axes.lines for v in line.get_ydata() if v > 0]
    if len(values) > 1 and max(values) / min(values) > 30:
        axes.set_yscale("log")


# ------------------------------------------------------------------------------ forecasts
def forecast_figure(windows: Sequence[Mapping[str, Any]], *, title: str, target: str) -> Any:
    """One panel per window: the end of its input (history), the truth, the forecast and the
    repeat-last baseline (absent when the target is not among the inputs), against the
    steps from the forecast origin. A window is {"title", "history", "truth", "forecast",
    "baseline"} of raw values of one target."""
    figure = figure_class()(figsize=(10, 0.8 + 2.5 * len(windows)), layout="constrained")
    panels = figure.subplots(len(windows), 1, squeeze=False)[:, 0]
    for axes, window in zip(panels, windows):
        history, truth = window["history"], window["truth"]
        ahead = range(1, len(truth) + 1)
        if history:
            axes.plot(range(1 - len(history), 1), history, color="0.45", label="history (input)")
        axes.plot(ahead, truth, color="black", label="truth")
        axes.plot(ahead, window["forecast"], color="C3", label="forecast")
        if window.get("baseline") is not None:
            axes.plot(ahead, window["baseline"], color="C0", ls="--", label="repeat-last")
        axes.axvline(0.5, color="0.6", lw=0.8)
        axes.set(title=window["title"], ylabel=target)
        axes.title.set_fontsize(10)
        axes.grid(alpha=0.3)
    panels[-1].set_xlabel("steps from the forecast origin (history <= 0 < forecast)")
    handles = [line for line in panels[0].lines if not line.get_label().startswith("_")]
    figure.legend(handles=handles, loc="outside lower center", ncols=4, fontsize=9)
    figure.suptitle(title)
    return figure


def forecast_windows(
    model: Any, data: Any, split: str, count: int, target: int
) -> list[dict[str, Any]]:
    """`count` windows of a split, evenly spaced over it, forecast by a window-regression
    model (zoo.model.Model) on its loaded data (zoo.data.Data): raw values of target number
    `target`, undoing the z-scores the data state records (`mean`, `std`, `target_index`)."""
    import torch

    examples = data.splits[split]
    picks = sorted({round(k * (len(examples) - 1) / max(1, count - 1)) for k in range(count)})
    batch = data.collate([examples[k] for k in picks])
    with torch.no_grad():
        forecast = model.module(batch["x"]).cpu()
    state = model.state
    index = state.get("target_index")
    column = index[target] if index is not None else None
    x = _raw(batch["x"][:, :, column], state, column) if column is not None else None
    truth = _raw(batch["y"][:, :, target], state, column)
    guess = _raw(forecast[:, :, target], state, column)
    horizon = truth.shape[1]
    shown = min(int(batch["x"].shape[1]), max(4 * horizon, 24))  # the end of the input
    out = []
    for row, k in enumerate(picks):
        start = examples[k] if isinstance(examples[k], int) else None
        where = (
            f", rows {start + 1}-{start + batch['x'].shape[1] + horizon}"
            if start is not None
            else ""
        )
        window = {
            "index": k,
            "title": f"{split} window {k + 1} of {len(examples)}{where}",
            "history": x[row, -shown:].tolist() if x is not None else [],
            "truth": truth[row].tolist(),
            "forecast": guess[row].tolist(),
            "baseline": [float(x[row, -1])] * horizon if x is not None else None,
        }
        window["mse"] = _mse(window["forecast"], window["truth"])
        window["title"] += f"; MSE forecast {window['mse']:.3g}"
        if window["baseline"] is not None:
            window["baseline_mse"] = _mse(window["baseline"], window["truth"])
            window["title"] += f", repeat-last {window['baseline_mse']:.3g}"
        out.append(window)
    return out


def _raw(values: Any, state: Mapping[str, Any], column: int | None) -> Any:
    """Z-scored values of one column back on the data's own scale (as they are without
    normalisation statistics, or when the target is not an input column)."""
    if column is None or "mean" not in state:
        return values
    return values * float(state["std"][column]) + float(state["mean"][column])


def _mse(a: Sequence[float], b: Sequence[float]) -> float:
    return math.fsum((x - y) ** 2 for x, y in zip(a, b)) / max(1, len(a))


# ------------------------------------------------------------------------ confusion matrix
def confusion_figure(labels: Sequence[str], counts: Sequence[Sequence[int]], *, title: str) -> Any:
    """The confusion matrix (gold down, predicted across) coloured by the share of each gold
    label's items (so a rare class reads as clearly as a frequent one), with the counts
    written in when the matrix is small enough to read. Labels that never occur, as gold or
    predicted, are left out."""
    used = [
        i
        for i in range(len(labels))
        if sum(counts[i]) or sum(row[i] for row in counts)  # gold or predicted
    ]
    names = [str(labels[i]) for i in used]
    matrix = [[counts[g][p] for p in used] for g in used]
    shares = [[c / max(1, sum(row)) for c in row] for row in matrix]
    side = min(16.0, max(4.5, 2.5 + 0.38 * len(used)))
    figure = figure_class()(figsize=(side + 1.4, side), layout="constrained")
    axes = figure.subplots()
    image = axes.imshow(shares, cmap="Blues", vmin=0.0, vmax=1.0, interpolation="nearest")
    turned = 90 if any(len(name) > 3 for name in names) else 0
    axes.set_xticks(range(len(names)), names, rotation=turned, fontsize=_tick_size(len(names)))
    axes.set_yticks(range(len(names)), names, fontsize=_tick_size(len(names)))
    axes.set(xlabel="predicted label", ylabel="gold label", title=title)
    if len(names) <= 25:
        for g, row in enumerate(matrix):
            for p, count in enumerate(row):
                if count:
                    colour = "white" if shares[g][p] > 0.5 else "black"
                    axes.text(p, g, str(count), ha="center", va="center", fontsize=7, color=colour)
    figure.colorbar(image, ax=axes, label="share of the gold label's items", shrink=0.8)
    return figure


def _tick_size(count: int) -> float:
    return 9.0 if count <= 30 else max(4.0, 9.0 - (count - 30) / 10)


# -------------------------------------------------------------------------------- gates
def gates_figure(blocks: Sequence[Mapping[str, Any]], *, title: str) -> Any:
    """Gate activations as heat maps: one band per gate of each layer and direction (rows:
    units, columns: time steps), the symbol read at each step along the time axis, and the
    prompt told apart from generated text by a line and the colour of its symbols. A block
    is {"name", "gates": {gate: [[value per unit] per step]}, "symbols", "prompt"}, with
    `prompt` the number of prompt steps when the model went on generating (else None)."""
    bands = [(b, gate) for b in blocks for gate in b["gates"]]
    units = [len(b["gates"][gate][0]) for b, gate in bands]
    steps = max(len(b["symbols"]) for b in blocks)
    heights = [max(3, min(u, 64)) for u in units]
    size = (min(24.0, max(7.0, 2.5 + 0.24 * steps)), min(40.0, 1.6 + 0.11 * sum(heights)))
    figure = figure_class("gates")(figsize=size, layout="constrained")
    panels = figure.subplots(len(bands), 1, squeeze=False, height_ratios=heights)[:, 0]
    image = None
    for k, (axes, (block, gate)) in enumerate(zip(panels, bands)):
        values = block["gates"][gate]
        columns = [[step[u] for step in values] for u in range(len(values[0]))]
        image = axes.imshow(
            columns, aspect="auto", cmap="RdBu_r", vmin=-1.0, vmax=1.0, interpolation="nearest"
        )
        n = len(columns)
        axes.set_yticks(range(n) if n <= 8 else [0, n - 1])
        axes.set_ylabel(f"{block['name']}\n{gate}: {GATE_NAMES.get(gate, gate)}", fontsize=8)
        axes.yaxis.label.set_rotation(0)
        axes.yaxis.label.set_horizontalalignment("right")
        axes.yaxis.label.set_verticalalignment("center")
        last_of_block = k + 1 == len(bands) or bands[k + 1][0] is not block
        _time_axis(axes, block["symbols"], block.get("prompt"), labelled=last_of_block)
    panels[0].set_title(title)
    panels[-1].set_xlabel("time step: the symbol read" + _prompt_note(blocks))
    figure.colorbar(
        image, ax=list(panels), label="activation (gates 0..1, states -1..1)", shrink=0.9
    )
    figure.supylabel("units of each gate", fontsize=9)
    return figure


def _time_axis(axes: Any, symbols: Sequence[str], prompt: int | None, *, labelled: bool) -> None:
    """Symbols as the tick labels of the time axis (every k-th when there are many);
    generated ones in green italics after a line marking the end of the prompt."""
    every = max(1, math.ceil(len(symbols) / 120))
    ticks = list(range(0, len(symbols), every))
    axes.set_xticks(ticks)
    if not labelled:
        axes.set_xticklabels([])
    else:
        wide = any(len(symbols[t]) > 2 for t in ticks)
        axes.set_xticklabels(
            [_visible(symbols[t]) for t in ticks], rotation=90 if wide else 0, fontsize=8
        )
        for tick, label in zip(ticks, axes.get_xticklabels()):
            if prompt is not None and tick >= prompt:
                label.set_color("C2")
                label.set_style("italic")
    if prompt is not None and 0 < prompt < len(symbols):
        axes.axvline(prompt - 0.5, color="black", lw=1.5)


def _prompt_note(blocks: Sequence[Mapping[str, Any]]) -> str:
    if any(b.get("prompt") is not None for b in blocks):
        return " (prompt, then generated text in green italics after the black line)"
    return ""


def _visible(symbol: str) -> str:
    """A symbol that shows as a tick label: a space or newline as a visible sign."""
    return {" ": "␣", "\n": "⏎", "\t": "⇥", "": "∅"}.get(symbol, symbol)
