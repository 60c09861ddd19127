"""Using a trained model: `zoo predict`, `zoo eval` and `zoo gates`."""

from __future__ import annotations

import time
from collections.abc import Iterable
from typing import Any

import click

from zoo.cli.base import (
    TRAINED_MODEL_SETTINGS,
    complete_names,
    json_option,
    load_model,
    metrics_out_option,
    no_log_option,
    option,
    set_option,
    settings_for,
    show,
    threads_option,
    write_json,
)
from zoo.core import config as cfg
from zoo.core.errors import UsageError
from zoo.core.fileio import atomic_write_text, check_writable
from zoo.core.formatting import fmt


# --------------------------------------------------------------------------------- predict
def _predict_settings(assignments: tuple[str, ...], batch_size: int | None) -> dict[str, Any]:
    settings: dict[str, Any] = dict(cfg.parse_assignments(assignments))
    if batch_size is not None:
        settings["predict.batch_size"] = batch_size
    return settings


@click.command(
    "predict",
    context_settings={"ignore_unknown_options": True},  # so `-0.5` is an input, not an option
)
@click.argument("model_file", metavar="FILE", type=click.Path())
@click.argument("inputs", nargs=-1)
@option(
    "--input",
    "input_file",
    type=click.Path(),
    help="Read inputs from a file (one per line; blank lines stay blank in the output).",
)
@option(
    "--output",
    "output_file",
    type=click.Path(),
    help="Write predictions to a file instead of stdout.",
)
@option(
    "--batch-size",
    type=click.IntRange(min=1),
    help="Inputs predicted at once, for architectures that batch (the predict option batch_size).",
)
@set_option(
    f"Predict options (e.g. beam_size=5; `zoo info NAME` lists them), or {TRAINED_MODEL_SETTINGS}."
)
@threads_option
@json_option
def predict_command(
    model_file: str,
    inputs: tuple[str, ...],
    input_file: str | None,
    output_file: str | None,
    batch_size: int | None,
    assignments: tuple[str, ...],
    threads: int | None,
    as_json: bool,
) -> None:
    """Predict from raw INPUTs (a sentence, a sequence, numbers) with a saved model FILE."""
    if bool(inputs) == bool(input_file):
        raise UsageError("give INPUT arguments or --input FILE" + (", not both" if inputs else ""))
    settings = _predict_settings(assignments, batch_size)
    if output_file is not None:
        check_writable(
            output_file, option="--output", inputs={"FILE": model_file, "--input": input_file}
        )
    from zoo.api import predict, predict_file
    from zoo.toolkit.textfile import read_text

    t0 = time.perf_counter()
    model, _ = load_model(model_file, threads)
    t1 = time.perf_counter()
    if input_file is not None:
        settings = settings_for(predict_file, settings, "predict")
        text, predictions = predict_file(model, read_text(input_file, option="--input"), **settings)
    else:
        predictions = predict(model, list(inputs), **settings_for(predict, settings, "predict"))
        text = "".join(str(p.get("text", p.get("output"))) + "\n" for p in predictions)
    seconds = time.perf_counter() - t1
    if output_file is not None:
        atomic_write_text(output_file, text)
    doc = {
        "model": model_file,
        "architecture": model.name,
        "predictions": predictions,
        "output_file": output_file,
        "load_seconds": round(t1 - t0, 4),
        "predict_seconds": round(seconds, 4),
    }
    if as_json:
        show(doc, True, list)
    elif output_file is None:
        click.echo(text, nl=False)
    else:
        click.echo(
            f"wrote {len(predictions)} predictions to {output_file} in {seconds:.2f} s", err=True
        )


# ------------------------------------------------------------------------------------ eval
def _render_eval(doc: dict[str, Any]) -> Iterable[str]:
    metrics = {k: v for k, v in doc["metrics"].items() if not isinstance(v, dict)}
    yield f"{doc['architecture']} on {doc['dataset']} ({doc['data'] or 'its own data'}), split {doc['split']}:"
    width = max((len(k) for k in metrics), default=0)
    for key, value in metrics.items():
        yield f"  {key.ljust(width)}  {fmt(value)}"


@click.command("eval")
@click.argument("model_file", metavar="FILE", type=click.Path())
@option("--data", "data_path", type=click.Path(), help="File or folder to evaluate on.")
@option(
    "--dataset",
    help="Read --data as this dataset (default: the model's own).",
    shell_complete=complete_names("dataset"),
)
@option("--split", default="test", show_default=True, help="Split to evaluate.")
@option("--batch-size", type=click.IntRange(min=1), help="Examples per batch.")
@option("--device", default="cpu", show_default=True, help="cpu, cuda, cuda:N or auto.")
@set_option(f"Data settings of the dataset read (`zoo info DATASET`), or {TRAINED_MODEL_SETTINGS}.")
@threads_option
@metrics_out_option
@json_option
@no_log_option
def eval_command(
    model_file: str,
    data_path: str | None,
    dataset: str | None,
    split: str,
    batch_size: int | None,
    device: str,
    assignments: tuple[str, ...],
    threads: int | None,
    metrics_out: str | None,
    as_json: bool,
    no_log: bool,
) -> None:
    """Metrics of a saved model FILE on a dataset (default: its own held-out test split)."""
    if metrics_out is not None:
        check_writable(
            metrics_out, option="--metrics-out", inputs={"FILE": model_file, "--data": data_path}
        )
    settings = cfg.parse_assignments(assignments)
    from zoo.api import evaluate
    from zoo.cli.runlog import log_eval

    with log_eval(click.get_current_context(), no_log) as record:
        model, used_threads = load_model(model_file, threads)
        t0 = time.perf_counter()
        metrics = evaluate(
            model,
            data_path,
            dataset=dataset,
            split=split,
            batch_size=batch_size,
            device=device,
            **settings_for(evaluate, settings, "data"),
        )
        seconds = time.perf_counter() - t0
        doc = {
            "model": model_file,
            "architecture": model.name,
            "dataset": dataset or model.dataset,
            "data": data_path,
            "split": split,
            "metrics": metrics,
            "seconds": round(seconds, 3),
            "threads": used_threads,
        }
        if metrics_out is not None:  # before the row ends: a failure here fails the row too
            write_json(metrics_out, doc)
        record.end("finished", metrics={split: metrics}, threads=used_threads)
    click.echo(f"({seconds:.2f} s, {used_threads} thread(s))", err=True)
    show(doc, as_json, _render_eval)


# ----------------------------------------------------------------------------------- gates
def _render_gates(doc: dict[str, Any]) -> Iterable[str]:
    yield f"wrote {doc['out']} ({doc['width']}x{doc['height']} pixels, {doc['steps']} steps)"
    for block in doc["blocks"]:
        yield f"  {block['name']}: " + ", ".join(
            f"{g} ({n} units)" for g, n in block["gates"].items()
        )
    if doc["prediction"] is not None:
        yield f"  prediction: {doc['prediction']}"


@click.command(
    "gates",
    context_settings={"ignore_unknown_options": True},  # so `-0.82,0.1` is an input, as in predict
)
@click.argument("model_file", metavar="FILE", type=click.Path())
@click.argument("text", metavar="INPUT")
@option(
    "--out",
    type=click.Path(dir_okay=False),
    default="gates.png",
    show_default=True,
    help="Image to write: .png, or .svg/.pdf with matplotlib (the plot extra).",
)
@set_option(
    "Predict options for the run that is drawn (e.g. length=40 for a language model's continuation)."
)
@json_option
def gates_command(
    model_file: str, text: str, out: str, assignments: tuple[str, ...], as_json: bool
) -> None:
    """Draw the gate activations of a model's zoo.cells layers over time for one INPUT, as a
    heat map (rows: gates and units; columns: time steps; blue -1, white 0, red +1). With
    matplotlib (pip install 'rnn-zoo[plot]') the symbols, units and a colour bar are labelled;
    without it a plain PNG is written."""
    from zoo.features.plots import output_format

    output_format(out)
    check_writable(out, inputs={"FILE": model_file})
    options = cfg.parse_assignments(assignments)
    from zoo.features.gates import draw

    model, _ = load_model(model_file)
    doc = {"out": out, **draw(model, text, out, **settings_for(draw, options, "predict"))}
    show(doc, as_json, _render_gates)
