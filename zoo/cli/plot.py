"""`zoo plot`: training curves, a forecaster's test windows and a confusion matrix as images.

    zoo plot FILE|ID ...              training curves (same as `zoo plot curves`)
    zoo plot forecast FILE            history, truth, forecast and repeat-last of test windows
    zoo plot confusion FILE|ID        a tagger's or classifier's confusion matrix

Imported by zoo/cli/, which registers the group; nothing here imports torch or matplotlib
at import time. `curves` and `confusion` read model files' metadata (zoo.modelfile) or the run
log (zoo.runlog) and never import torch; `forecast` runs the model, so it loads torch. The
figures are zoo/features/plots.py's; docs/plots.md shows each.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import click

from zoo.cli.base import json_option, load_model, option, show
from zoo.cli.runlog import Sources
from zoo.core.errors import UsageError
from zoo.core.fileio import check_writable
from zoo.core.registry import get_registry
from zoo.features import plots

SUBCOMMANDS = ("curves", "forecast", "confusion")


class PlotGroup(click.Group):
    """`zoo plot FILE...` means `zoo plot curves FILE...`: the common case needs no word."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        if args and args[0] not in self.commands and args[0] not in ctx.help_option_names:
            args = ["curves", *args]
        return super().parse_args(ctx, args)


@click.group("plot", cls=PlotGroup)
def plot_group() -> None:
    """Draw runs and models as PNG (or .svg/.pdf by --out's suffix); needs matplotlib
    (pip install 'rnn-zoo[plot]').

    \b
    zoo plot a.safetensors b.safetensors    training curves, overlaid (= zoo plot curves)
    zoo plot 12 13 --metric accuracy        the same for run-log ids (`zoo runs`)
    zoo plot forecast etth1.safetensors     a forecaster's test windows
    zoo plot confusion tagger.safetensors   a tagger's or classifier's confusion matrix
    """


def out_option(default: str) -> Any:
    return option(
        "--out",
        type=click.Path(dir_okay=False),
        default=default,
        show_default=True,
        help="Image to write: .png, .svg or .pdf.",
    )


def _prepare(out: str, sources: Iterable[str]) -> None:
    """Usage errors first, then the missing extra: before any file is read or model run."""
    plots.output_format(out)
    files = [s for s in sources if os.path.exists(s)]  # run-log IDs are no files
    check_writable(out, inputs={f"input {i}": s for i, s in enumerate(files, 1)})
    plots.figure_class()


def _render_saved(doc: dict[str, Any]) -> Iterable[str]:
    yield f"wrote {doc['path']} ({doc['width']}x{doc['height']} pixels): {doc['what']}"


# ---------------------------------------------------------------------------- sources
def _source(source: str, sources: Sources) -> dict[str, Any]:
    """What a FILE (model file metadata) or run ID (run log row) says about one training:
    label, architecture, dataset, history and metrics."""
    kind, found = sources.read(source)
    if kind == "run":
        run = found
        metrics = run.get("metrics") if isinstance(run.get("metrics"), dict) else {}
        paths = run.get("data") if isinstance(run.get("data"), dict) else {}
        return {
            "label": f"#{run['id']} {run.get('architecture')}",
            "architecture": run.get("architecture"),
            "dataset": _dataset(run.get("dataset"), paths.get("path")),
            "history": run.get("history") if isinstance(run.get("history"), list) else [],
            "metrics": metrics,
        }
    info = found
    metrics = info.get("metrics", {})
    return {
        "label": f"{Path(source).name} ({info['architecture']})",
        "architecture": info["architecture"],
        "dataset": _dataset(info["dataset"], info["data_config"].get("path")),
        "history": (metrics.get("training") or {}).get("history") or [],
        "metrics": metrics,
    }


def _dataset(name: str | None, path: Any) -> str:
    """`csv (ETTh1.csv)`: the dataset, with the file it read when it read one."""
    return f"{name} ({Path(path).name})" if isinstance(path, str) and path else str(name)


def _sources(names: Iterable[str]) -> list[dict[str, Any]]:
    with Sources() as sources:
        return [{"source": name, **_source(name, sources)} for name in names]


# ----------------------------------------------------------------------------- curves
def _metric(runs: list[dict[str, Any]], asked: str | None) -> str:
    """The validation metric to draw: the one asked for, else the first run's architecture's
    monitor metric, else loss, else the first one recorded."""
    recorded = sorted({k for r in runs for e in r["history"] for k in (e.get("valid") or {})})
    if asked is not None:
        if asked not in recorded:
            have = ", ".join(recorded) or "none"
            raise UsageError(
                f"--metric {asked}: no run's validation history has it; they have: {have}"
            )
        return asked
    for name in (get_registry().monitor(runs[0]["architecture"])[0], "loss", *recorded):
        if name in recorded:
            return name
    return "loss"


@plot_group.command("curves")
@click.argument("sources", metavar="FILE|ID...", nargs=-1, required=True)
@option("--metric", help="Validation metric of the right panel (default: the monitor metric).")
@out_option("curves.png")
@json_option
def curves_command(sources: tuple[str, ...], metric: str | None, out: str, as_json: bool) -> None:
    """Training curves of model FILEs or run-log IDs, overlaid: training loss and a
    validation metric against the optimizer step."""
    _prepare(out, sources)
    runs = _sources(sources)
    for run in runs:
        if not run["history"]:
            raise UsageError(
                f"{run['source']}: no training history (a model from an older zoo, or a run "
                "that did not finish)"
            )
    metric = _metric(runs, metric)
    pairs = {(r["architecture"], r["dataset"]) for r in runs}
    title = "Training curves" + (
        f": {runs[0]['architecture']} on {runs[0]['dataset']}" if len(pairs) == 1 else ""
    )
    saved = plots.save(plots.curves_figure(runs, metric, title=title), out)
    what = f"{len(runs)} run(s), training loss and validation {metric}"
    doc = {**saved, "what": what, "metric": metric, "runs": [r["label"] for r in runs]}
    show(doc, as_json, _render_saved)


# -------------------------------------------------------------------------- confusion
@plot_group.command("confusion")
@click.argument("source", metavar="FILE|ID")
@option("--split", help="Split whose matrix to draw (default: test, else valid).")
@out_option("confusion.png")
@json_option
def confusion_command(source: str, split: str | None, out: str, as_json: bool) -> None:
    """The confusion matrix of a tagger or classifier, from the metrics its model FILE (or
    run-log ID) stored: gold labels down, predicted across."""
    _prepare(out, [source])
    run = _sources([source])[0]
    having = [s for s, m in run["metrics"].items() if isinstance(m, dict) and "confusion" in m]
    chosen = split or next((s for s in ("test", "valid", *having) if s in having), None)
    if chosen not in having:
        which = f"split {split!r}" if split else "any split"
        found = f" (it has one for: {', '.join(having)})" if having else ""
        raise UsageError(
            f"{source}: no confusion matrix stored for {which}{found}; taggers and "
            "classifiers store one"
        )
    matrix = run["metrics"][chosen]["confusion"]
    title = f"{run['architecture']} on {run['dataset']}: {chosen} confusion matrix"
    figure = plots.confusion_figure(matrix["labels"], matrix["counts"], title=title)
    saved = plots.save(figure, out)
    what = f"{chosen} split, {len(matrix['labels'])} labels"
    show({**saved, "what": what, "split": chosen}, as_json, _render_saved)


# --------------------------------------------------------------------------- forecast
@plot_group.command("forecast")
@click.argument("model_file", metavar="FILE")
@option(
    "--data",
    "data_path",
    type=click.Path(),
    help="CSV to draw windows of (default: the model's own data).",
)
@option("--split", default="test", show_default=True, help="Split whose windows to draw.")
@option(
    "--windows",
    "count",
    type=click.IntRange(1, 12),
    default=3,
    show_default=True,
    help="Windows to draw, evenly spaced over the split.",
)
@option(
    "--target", help="Target column to draw, of a model forecasting several (default: the first)."
)
@out_option("forecast.png")
@json_option
def forecast_command(
    model_file: str,
    data_path: str | None,
    split: str,
    count: int,
    target: str | None,
    out: str,
    as_json: bool,
) -> None:
    """A forecaster's windows: the end of its input, the truth, its forecast and the
    repeat-last baseline, on the raw scale of the data."""
    _prepare(out, [model_file, *([data_path] if data_path else [])])
    from zoo.core.modelfile import read_info

    info = read_info(model_file)
    if info["task"] != "window-regression":
        raise UsageError(
            f"{model_file}: a {info['task']} model; zoo plot forecast draws forecasters "
            "(task window-regression)"
        )
    names = info["data_state"].get("targets") or ["value"]
    if target is not None and target not in names:
        raise UsageError(f"--target {target}: the model forecasts {', '.join(names)}")
    index = names.index(target) if target is not None else 0
    windows, title = _forecast(model_file, data_path, split, count, index)
    title = f"{info['architecture']} on {title}: {split} windows"
    if windows[0]["baseline"] is None:
        title += " (the target is not an input: no history, no repeat-last)"
    figure = plots.forecast_figure(windows, title=title, target=names[index])
    saved = plots.save(figure, out)
    what = f"{len(windows)} {split} window(s) of {len(windows[0]['truth'])} steps, target {names[index]}"
    doc = {**saved, "what": what, "windows": windows}
    show(doc, as_json, _render_saved)


def _forecast(
    model_file: str, data_path: str | None, split: str, count: int, target: int
) -> tuple[list[dict[str, Any]], str]:
    """(the drawn windows, what data they are of): loads the model and its data (torch)."""
    model, _ = load_model(model_file)
    data = model.evaluation_data(data_path)
    if not data.has(split):
        have = ", ".join(s for s in data.splits if data.has(s))
        raise UsageError(f"--split {split}: the data has no windows there; it has: {have}")
    path = getattr(model.data_config, "path", None) if data_path is None else data_path
    return plots.forecast_windows(model, data, split, count, target), _dataset(model.dataset, path)
