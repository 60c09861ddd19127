"""The `zoo` command line.

Commands that only read the registry (`list`, `plugins`, `inspect`, `--help`) never import
torch, so they answer at once; the others import `zoo.api` when they run. Every error the user
can cause is a `ZooError`, shown as one `Error:` line with exit code 1 (runtime) or 2 (usage).
With `--json`, stdout carries exactly one JSON document and all progress goes to stderr.
"""

from __future__ import annotations

import json
import math
import os
import time
from typing import Any

import click

from zoo import __version__
from zoo import config as cfg
from zoo.errors import UsageError, ZooError, reading_input
from zoo.fileio import atomic_write_text, check_writable
from zoo.registry import get_registry


class CLIError(click.ClickException):
    """A ZooError on its way out: one line on stderr, the error's exit code."""

    def __init__(self, message: str, exit_code: int):
        super().__init__(message)
        self.exit_code = exit_code


class ZooGroup(click.Group):
    """Adds plugin commands on first use and turns ZooErrors into clean exits."""

    _plugin_commands_loaded = False

    def _load_plugin_commands(self) -> None:
        if not self._plugin_commands_loaded:
            self._plugin_commands_loaded = True
            get_registry().add_commands(self)

    def list_commands(self, ctx: click.Context) -> list[str]:
        self._load_plugin_commands()
        return super().list_commands(ctx)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        self._load_plugin_commands()
        return super().get_command(ctx, cmd_name)

    def invoke(self, ctx: click.Context) -> Any:
        debug = bool(os.environ.get("ZOO_DEBUG"))
        try:
            return super().invoke(ctx)
        except (click.exceptions.ClickException, click.exceptions.Exit, click.exceptions.Abort):
            raise
        except ZooError as e:
            if debug and e.__cause__ is not None:
                raise
            hint = " (ZOO_DEBUG=1 shows the traceback)" if e.__cause__ is not None else ""
            raise CLIError(str(e) + hint, e.exit_code) from None
        except KeyboardInterrupt:
            click.echo("\ninterrupted", err=True)
            raise click.exceptions.Exit(130) from None
        except Exception as e:
            if debug:
                raise
            raise CLIError(
                f"internal error: {type(e).__name__}: {e} (a bug in zoo or a plugin; "
                "ZOO_DEBUG=1 shows the traceback)",
                1,
            ) from None


def _clean(value: Any) -> Any:
    """JSON-safe: NaN and infinities become null; tuples become lists."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {str(k): _clean(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_clean(v) for v in value]
    return value


def emit_json(doc: Any) -> None:
    click.echo(json.dumps(_clean(doc), indent=2, ensure_ascii=False, allow_nan=False))


def write_json(path: str, doc: Any) -> None:
    """The same document as --json, written atomically to a file."""
    text = json.dumps(_clean(doc), indent=2, ensure_ascii=False, allow_nan=False) + "\n"
    atomic_write_text(path, text)


def _table(rows: list[list[str]], headers: list[str], indent: int = 0) -> str:
    widths = [max(len(str(r[i])) for r in [headers, *rows]) for i in range(len(headers))]
    lines = [
        " " * indent + "  ".join(str(c).ljust(w) for c, w in zip(r, widths)).rstrip()
        for r in [headers, *rows]
    ]
    return "\n".join(lines)


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        if value != 0 and (abs(value) < 1e-3 or abs(value) >= 1e6):
            return f"{value:.4e}"
        return f"{value:.4f}"
    return str(value)


def _warn_problems() -> None:
    for line in get_registry().problems():
        click.echo(f"warning: {line}", err=True)


json_option = click.option(
    "--json", "as_json", is_flag=True, help="Print one JSON document on stdout."
)
set_option = click.option(
    "--set",
    "assignments",
    multiple=True,
    metavar="KEY=VALUE",
    help="Any model, data or training setting (repeatable); `zoo info NAME` lists them.",
)
metrics_out_option = click.option(
    "--metrics-out",
    type=click.Path(dir_okay=False),
    help="Also write the JSON result document to this file (atomically).",
)
threads_option = click.option(
    "--threads",
    type=click.IntRange(min=0),
    default=None,
    help="torch intra-op threads on CPU (0: torch's default). Default: 1 (fastest for small RNNs).",
)


@click.group(cls=ZooGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="zoo")
def cli() -> None:
    """A model zoo for recurrent neural networks: list, train, evaluate and use RNN models.

    \b
    zoo list                      what is installed
    zoo info lstm-tagger          settings, datasets and size of one architecture
    zoo run lstm-tagger           train on its default data and save a .safetensors file
    zoo predict FILE "The dog ate the apple ."
    zoo eval FILE --data PATH     metrics of a saved model on a dataset
    """


# ------------------------------------------------------------------------------------ list
@cli.command("list")
@click.argument("pattern", required=False)
@click.option("--task", help="Only what serves this task.")
@json_option
def list_command(pattern: str | None, task: str | None, as_json: bool) -> None:
    """List architectures and datasets (PATTERN is a glob, e.g. 'lstm*')."""
    reg = get_registry()
    archs = [reg.architectures[n] for n in reg.list_architectures(pattern, task)]
    datasets = [reg.datasets[n] for n in reg.list_datasets(pattern, task)]
    _warn_problems()
    if as_json:
        emit_json(
            {
                "architectures": [
                    {
                        "name": e.spec.name,
                        "description": e.spec.description,
                        "tasks": list(e.spec.tasks),
                        "default_dataset": e.spec.default_dataset,
                        "plugin": e.plugin.name,
                        "distribution": e.plugin.distribution,
                        "version": e.plugin.version,
                    }
                    for e in archs
                ],
                "datasets": [
                    {
                        "name": e.spec.name,
                        "description": e.spec.description,
                        "task": e.spec.task,
                        "reads_files": "path" in cfg.field_names(e.spec.config),
                        "plugin": e.plugin.name,
                        "distribution": e.plugin.distribution,
                        "version": e.plugin.version,
                    }
                    for e in datasets
                ],
                "problems": reg.problems(),
            }
        )
        return
    click.echo("Architectures")
    click.echo(
        _table(
            [
                [
                    e.spec.name,
                    ",".join(e.spec.tasks),
                    e.spec.default_dataset,
                    e.plugin.label,
                    e.spec.description,
                ]
                for e in archs
            ],
            ["NAME", "TASK", "DEFAULT DATASET", "PLUGIN", "DESCRIPTION"],
            indent=2,
        )
        if archs
        else "  (none)"
    )
    click.echo("\nDatasets")
    click.echo(
        _table(
            [
                [
                    e.spec.name,
                    e.spec.task,
                    "file" if "path" in cfg.field_names(e.spec.config) else "built-in",
                    e.plugin.label,
                    e.spec.description,
                ]
                for e in datasets
            ],
            ["NAME", "TASK", "DATA", "PLUGIN", "DESCRIPTION"],
            indent=2,
        )
        if datasets
        else "  (none)"
    )


# ------------------------------------------------------------------------------------ info
def _fields_doc(config_cls: type, values: Any = None) -> list[dict[str, Any]]:
    out = []
    for f in cfg.fields(config_cls):
        item = {"name": f.name, "type": f.type_name, "default": f.default, "help": f.help}
        if values is not None:
            item["default"] = getattr(values, f.name)
        if f.min is not None:
            item["min"] = f.min
        if f.max is not None:
            item["max"] = f.max
        out.append(item)
    return out


def _print_fields(title: str, fields: list[dict[str, Any]]) -> None:
    click.echo(f"\n{title}")
    if not fields:
        click.echo("  (none)")
        return
    rows = [[f["name"], f["type"], json.dumps(_clean(f["default"])), f["help"]] for f in fields]
    click.echo(_table(rows, ["NAME", "TYPE", "DEFAULT", "HELP"], indent=2))


@cli.command("info")
@click.argument("name")
@json_option
def info_command(name: str, as_json: bool) -> None:
    """Settings, datasets and size of an architecture (or the settings of a dataset)."""
    reg = get_registry()
    doc: dict[str, Any] = {"name": name}
    if name in reg.datasets:
        e = reg.dataset(name)
        doc["dataset"] = {
            "description": e.spec.description,
            "task": e.spec.task,
            "plugin": e.plugin.name,
            "distribution": e.plugin.distribution,
            "version": e.plugin.version,
            "architectures": reg.list_architectures(task=e.spec.task),
            "settings": _fields_doc(e.spec.config),
        }
    if name in reg.architectures or "dataset" not in doc:
        e = reg.architecture(name)  # raises with suggestions when unknown
        spec = e.spec
        from zoo.settings import resolve

        resolved = resolve(spec, reg.dataset(spec.default_dataset).spec)
        arch: dict[str, Any] = {
            "description": spec.description,
            "tasks": list(spec.tasks),
            "plugin": e.plugin.name,
            "distribution": e.plugin.distribution,
            "version": e.plugin.version,
            "default_dataset": spec.default_dataset,
            "compatible_datasets": reg.compatible_datasets(name),
            "monitor": list(spec.monitor),
            "settings": _fields_doc(spec.config),
            "training": _fields_doc(type(resolved.train), resolved.train),
            "data_settings": _fields_doc(type(resolved.data), resolved.data),
            "predict_options": _fields_doc(spec.predict_config) if spec.predict_config else [],
        }
        try:
            from zoo.api import create

            model = create(name, epochs=1)
            arch["parameters"] = model.num_parameters()
        except ZooError as err:
            arch["parameters"] = None
            arch["parameters_error"] = str(err)
        doc["architecture"] = arch
    if as_json:
        emit_json(doc)
        return
    if "architecture" in doc:
        a = doc["architecture"]
        click.echo(f"{name}: {a['description']}")
        click.echo(
            f"  plugin:              {a['distribution']} {a['version']} (plugin {a['plugin']})"
        )
        click.echo(f"  tasks:               {', '.join(a['tasks'])}")
        click.echo(f"  default dataset:     {a['default_dataset']}")
        click.echo(f"  compatible datasets: {', '.join(a['compatible_datasets'])}")
        params = a["parameters"]
        click.echo(
            f"  parameters:          {params:,} (default settings, default dataset)"
            if params is not None
            else f"  parameters:          unknown ({a.get('parameters_error')})"
        )
        click.echo(f"  selects on:          valid {a['monitor'][0]} ({a['monitor'][1]})")
        _print_fields("Model settings (--set KEY=VALUE)", a["settings"])
        _print_fields(f"Data settings of {a['default_dataset']}", a["data_settings"])
        _print_fields(f"Training settings (as resolved for {a['default_dataset']})", a["training"])
        if a["predict_options"]:
            _print_fields("Predict options (zoo predict --set KEY=VALUE)", a["predict_options"])
    if "dataset" in doc:
        d = doc["dataset"]
        if "architecture" in doc:
            click.echo("")
        click.echo(f"{name} (dataset): {d['description']}")
        click.echo(f"  plugin:        {d['distribution']} {d['version']} (plugin {d['plugin']})")
        click.echo(f"  task:          {d['task']}")
        click.echo(f"  architectures: {', '.join(d['architectures']) or 'none installed'}")
        _print_fields("Data settings (--set KEY=VALUE; --data sets path)", d["settings"])


# ------------------------------------------------------------------------------------- run
@cli.command("run")
@click.argument("name", required=False)
@click.option("--dataset", help="Dataset to train on (default: the architecture's own).")
@click.option("--data", "data_path", type=click.Path(), help="File or folder the dataset reads.")
@click.option(
    "--dev", "dev_path", type=click.Path(), help="Validation file, for datasets that take one."
)
@click.option(
    "--test", "test_path", type=click.Path(), help="Test file, for datasets that take one."
)
@click.option("--epochs", type=click.IntRange(min=0), help="Passes over the training data.")
@click.option("--steps", type=click.IntRange(min=0), help="Optimizer steps (overrides --epochs).")
@click.option("--batch-size", type=click.IntRange(min=1), help="Examples per step.")
@click.option("--lr", type=click.FloatRange(min=0), help="Learning rate.")
@click.option(
    "--seed", type=click.IntRange(min=0), help="Seed for initialisation, shuffling, dropout."
)
@click.option("--device", help="cpu, cuda, cuda:N or auto (default: auto).")
@threads_option
@click.option(
    "--out",
    "out",
    type=click.Path(),
    help="Model file to write (default: NAME-DATASET.safetensors).",
)
@click.option(
    "--checkpoint-every",
    type=click.IntRange(min=0),
    help="Save a resumable checkpoint (OUT.ckpt.safetensors) every N steps; Ctrl-C always saves one.",
)
@click.option(
    "--resume",
    "resume_file",
    type=click.Path(),
    help="Continue an interrupted run from its checkpoint (NAME and settings come from it).",
)
@set_option
@metrics_out_option
@click.option("-q", "--quiet", is_flag=True, help="No progress display.")
@json_option
def run_command(
    name: str,
    dataset: str | None,
    data_path: str | None,
    dev_path: str | None,
    test_path: str | None,
    epochs: int | None,
    steps: int | None,
    batch_size: int | None,
    lr: float | None,
    seed: int | None,
    device: str | None,
    threads: int | None,
    out: str | None,
    checkpoint_every: int | None,
    resume_file: str | None,
    assignments: tuple[str, ...],
    metrics_out: str | None,
    quiet: bool,
    as_json: bool,
) -> None:
    """Build NAME and its dataset, train, evaluate on held-out data, and save one model file.

    Ctrl-C stops after the current step and saves a checkpoint; `zoo run --resume FILE`
    continues it to the same weights an uninterrupted run gives.
    """
    settings: dict[str, Any] = dict(cfg.parse_assignments(assignments))
    explicit = {
        "train.epochs": epochs,
        "train.steps": steps,
        "train.batch_size": batch_size,
        "train.lr": lr,
        "train.seed": seed,
        "train.device": device,
        "train.threads": threads,
    }
    for key, value in explicit.items():
        if value is not None:
            settings.pop(key.removeprefix("train."), None)
            settings[key] = value
    from zoo.progress import Progress

    if metrics_out is not None:
        check_writable(metrics_out, option="--metrics-out")
    if resume_file is not None:
        given = {"--dataset": dataset, "--data": data_path, "--dev": dev_path, "--test": test_path}
        clashing = [option for option, value in given.items() if value is not None]
        if clashing:
            raise UsageError(
                f"{clashing[0]} cannot be combined with --resume: the data comes from the checkpoint"
            )
        from zoo.api import resume
        from zoo.modelfile import read_info

        saved = read_info(resume_file)["architecture"]
        if name is not None and name != saved:
            raise UsageError(f"--resume {resume_file}: the checkpoint is of {saved}, not {name}")
        result = resume(
            resume_file,
            out=out,
            checkpoint_every=checkpoint_every,
            progress=Progress(enabled=not quiet),
            **settings,
        )
    else:
        if name is None:
            raise UsageError("give the architecture NAME to run (`zoo list`), or --resume FILE")
        reg = get_registry()
        reg.architecture(name)  # unknown names fail before torch is imported
        if dataset is not None:
            reg.dataset(dataset)
        from zoo.api import run

        result = run(
            name,
            dataset,
            data_path,
            dev=dev_path,
            test=test_path,
            out=out,
            checkpoint_every=checkpoint_every or 0,
            progress=Progress(enabled=not quiet),
            **settings,
        )
    model = result.model
    training = result.metrics.get("training", {})
    doc = {
        "architecture": model.name,
        "dataset": model.dataset,
        "task": model.task,
        "path": str(result.path),
        "parameters": model.num_parameters(),
        "metrics": {k: v for k, v in result.metrics.items() if k != "training"},
        "training": training,
        "timings": result.timings,
        "settings": {
            "model": cfg.to_dict(model.config),
            "data": cfg.to_dict(model.data_config),
            "train": cfg.to_dict(model.train_config),
        },
    }
    if metrics_out is not None:
        write_json(metrics_out, doc)
    if as_json:
        emit_json(doc)
        return
    click.echo(f"saved {result.path} ({doc['parameters']:,} parameters)")
    for split, scores in doc["metrics"].items():
        click.echo(
            f"{split:6s} " + "  ".join(f"{k} {_fmt(v)}" for k, v in scores.items() if "/" not in k)
        )
    click.echo(
        f"trained {training.get('steps')} steps ({training.get('epochs')} epochs) in "
        f"{training.get('seconds', 0):.1f} s, {training.get('cpu_seconds', 0):.1f} CPU-s, "
        f"{training.get('threads')} thread(s) on {training.get('device')}"
    )


# --------------------------------------------------------------------------------- predict
def _read_lines(path: str) -> list[str]:
    with reading_input(path), open(path, "rb") as f:
        text = f.read().decode("utf-8")  # whole, so a bad byte's line can be named
    lines = [line.rstrip("\r") for line in text.split("\n")]
    if lines[-1] == "":  # the end of the last line, or an empty file
        lines.pop()
    return lines


@cli.command(
    "predict",
    context_settings={"ignore_unknown_options": True},  # so `-0.5` is an input, not an option
)
@click.argument("model_file", metavar="FILE", type=click.Path())
@click.argument("inputs", nargs=-1)
@click.option(
    "--input", "input_file", type=click.Path(), help="Read inputs from a file (one per line)."
)
@click.option(
    "--output",
    "output_file",
    type=click.Path(),
    help="Write predictions to a file instead of stdout.",
)
@click.option(
    "--batch-size",
    type=click.IntRange(min=1),
    default=256,
    show_default=True,
    help="Inputs per batch when reading --input.",
)
@set_option
@threads_option
@json_option
def predict_command(
    model_file: str,
    inputs: tuple[str, ...],
    input_file: str | None,
    output_file: str | None,
    batch_size: int,
    assignments: tuple[str, ...],
    threads: int | None,
    as_json: bool,
) -> None:
    """Predict from raw INPUTs (a sentence, a sequence, numbers) with a saved model FILE."""
    if not inputs and not input_file:
        raise UsageError("give INPUT arguments or --input FILE")
    if inputs and input_file:
        raise UsageError("give INPUT arguments or --input FILE, not both")
    options = cfg.parse_assignments(assignments)
    if output_file is not None:
        check_writable(output_file, option="--output")
    from zoo.api import load, predict
    from zoo.trainer import set_threads

    set_threads(1 if threads is None else threads)
    t0 = time.perf_counter()
    model = load(model_file)
    load_seconds = time.perf_counter() - t0
    t1 = time.perf_counter()
    if input_file is not None and hasattr(model.impl, "predict_file"):
        from zoo.config import build

        spec = model.architecture
        opts = (
            build(spec.predict_config, options, where="predict option")
            if spec.predict_config
            else None
        )
        model.module.eval()
        import torch

        with torch.no_grad():
            text, predictions = model.impl.predict_file(
                model.module, input_file, model.state, model.task, opts
            )
    else:
        items = list(inputs) if inputs else _read_lines(input_file or "")
        if input_file is not None:
            predictions = []
            for i in range(0, len(items), batch_size):
                predictions.extend(predict(model, items[i : i + batch_size], **options))
        else:
            predictions = predict(model, items, **options)
        text = "".join(str(p.get("text", p.get("output"))) + "\n" for p in predictions)
    seconds = time.perf_counter() - t1
    if output_file is not None:
        atomic_write_text(output_file, text)
    if as_json:
        emit_json(
            {
                "model": model_file,
                "architecture": model.name,
                "predictions": predictions,
                "output_file": output_file,
                "load_seconds": round(load_seconds, 4),
                "predict_seconds": round(seconds, 4),
            }
        )
    elif output_file is None:
        click.echo(text, nl=False)
    else:
        click.echo(
            f"wrote {len(predictions)} predictions to {output_file} in {seconds:.2f} s", err=True
        )


# ------------------------------------------------------------------------------------ eval
@cli.command("eval")
@click.argument("model_file", metavar="FILE", type=click.Path())
@click.option("--data", "data_path", type=click.Path(), help="File or folder to evaluate on.")
@click.option("--dataset", help="Read --data as this dataset (default: the model's own).")
@click.option("--split", default="test", show_default=True, help="Split to evaluate.")
@click.option("--batch-size", type=click.IntRange(min=1), help="Examples per batch.")
@click.option("--device", default="cpu", show_default=True, help="cpu, cuda, cuda:N or auto.")
@set_option
@threads_option
@metrics_out_option
@json_option
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
) -> None:
    """Metrics of a saved model FILE on a dataset (default: its own test split)."""
    if metrics_out is not None:
        check_writable(metrics_out, option="--metrics-out")
    settings = cfg.parse_assignments(assignments)
    from zoo.api import evaluate, load
    from zoo.trainer import set_threads

    used_threads = set_threads(1 if threads is None else threads)
    model = load(model_file)
    t0 = time.perf_counter()
    metrics = evaluate(
        model,
        data_path,
        dataset=dataset,
        split=split,
        batch_size=batch_size,
        device=device,
        **settings,
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
    if metrics_out is not None:
        write_json(metrics_out, doc)
    if as_json:
        emit_json(doc)
        return
    click.echo(f"{model.name} on {doc['dataset']} ({data_path or 'its own data'}), split {split}:")
    width = max(len(k) for k in metrics) if metrics else 0
    for key, value in metrics.items():
        click.echo(f"  {key.ljust(width)}  {_fmt(value)}")
    click.echo(f"({seconds:.2f} s, {used_threads} thread(s))", err=True)


# ----------------------------------------------------------------------------------- gates
@cli.command("gates")
@click.argument("model_file", metavar="FILE", type=click.Path())
@click.argument("text", metavar="INPUT")
@click.option(
    "--out",
    "out",
    type=click.Path(dir_okay=False),
    default="gates.png",
    show_default=True,
    help="PNG file to write.",
)
@set_option
@json_option
def gates_command(
    model_file: str, text: str, out: str, assignments: tuple[str, ...], as_json: bool
) -> None:
    """Draw the gate activations of a model's zoo.cells layers over time for one INPUT, as a
    heat map PNG (rows: gates and units; columns: time steps; blue -1, white 0, red +1).

    --set passes predict options (e.g. length=40 for a language model's continuation).
    """
    from zoo.fileio import check_writable

    check_writable(out)
    options = cfg.parse_assignments(assignments)
    from zoo.api import load
    from zoo.gates import draw
    from zoo.trainer import set_threads

    set_threads(1)
    doc = draw(load(model_file), text, out, **options)
    if as_json:
        emit_json(doc)
        return
    click.echo(f"wrote {out} ({doc['width']}x{doc['height']} pixels, {doc['steps']} steps)")
    for block in doc["blocks"]:
        gates = ", ".join(f"{g} ({n} units)" for g, n in block["gates"].items())
        click.echo(f"  {block['name']}: {gates}")
    if doc["prediction"] is not None:
        click.echo(f"  prediction: {doc['prediction']}")


# ---------------------------------------------------------------------------------- inspect
@cli.command("inspect")
@click.argument("model_file", metavar="FILE", type=click.Path())
@json_option
def inspect_command(model_file: str, as_json: bool) -> None:
    """Show what a model file holds (names, configs, metrics, tensors) without loading it."""
    from zoo.modelfile import read_info

    info = read_info(model_file)
    if as_json:
        emit_json(info)
        return
    plugin = info["plugin"]
    click.echo(
        f"{model_file}: zoo model format {info['format_version']}, written by zoo {info['zoo_version']}"
    )
    click.echo(
        f"  architecture: {info['architecture']} ({plugin.get('distribution')} {plugin.get('version')})"
    )
    click.echo(f"  task:         {info['task']}")
    click.echo(f"  dataset:      {info['dataset']}")
    n = sum(math.prod(t["shape"]) for t in info["tensors"].values())
    click.echo(f"  tensors:      {len(info['tensors'])} ({n:,} values)")
    for key in ("config", "data_config", "train_config"):
        click.echo(f"  {key + ':':13s} " + json.dumps(info[key], sort_keys=True))
    state_keys = ", ".join(
        f"{k} ({len(v)})" if isinstance(v, (list, dict)) else k
        for k, v in info["data_state"].items()
    )
    click.echo(f"  data_state:   {state_keys}")
    for split, scores in info["metrics"].items():
        if isinstance(scores, dict):
            shown = "  ".join(
                f"{k} {_fmt(v)}"
                for k, v in scores.items()
                if not isinstance(v, dict) and "/" not in k
            )
            click.echo(f"  metrics {split}: {shown}")


# ---------------------------------------------------------------------------------- plugins
@cli.command("plugins")
@json_option
def plugins_command(as_json: bool) -> None:
    """Loaded plugins, their versions and hooks, and any that failed to load."""
    reg = get_registry()
    reg_commands = cli.list_commands(click.get_current_context())  # noqa: F841  (loads command hooks)
    plugins = [
        {
            "name": p.name,
            "distribution": p.distribution,
            "version": p.version,
            "hooks": list(p.hooks),
            "architectures": sorted(
                n for n, e in reg.architectures.items() if e.plugin.name == p.name
            ),
            "datasets": sorted(n for n, e in reg.datasets.items() if e.plugin.name == p.name),
        }
        for p in sorted(reg.plugins.values(), key=lambda p: p.name)
    ]
    failures = [
        {
            "name": f.name,
            "distribution": f.distribution,
            "version": f.version,
            "stage": f.stage,
            "error": f.error,
        }
        for f in reg.failures
    ]
    conflicts = [line for line in reg.problems() if "registered by both" in line]
    if as_json:
        emit_json({"plugins": plugins, "failures": failures, "conflicts": conflicts})
        return
    rows = [
        [
            p["name"],
            f"{p['distribution']} {p['version']}",
            ", ".join(p["hooks"]),
            ", ".join(p["architectures"] + p["datasets"]),
        ]
        for p in plugins
    ]
    click.echo(_table(rows, ["PLUGIN", "DISTRIBUTION", "HOOKS", "PROVIDES"]))
    if failures:
        click.echo("\nFailed")
        for f in reg.failures:
            click.echo(f"  {f.describe()}")
    if conflicts:
        click.echo("\nConflicts")
        for line in conflicts:
            click.echo(f"  {line}")


def main() -> None:
    """Console-script entry point."""
    cli.main(prog_name="zoo", windows_expand_args=False)


if __name__ == "__main__":  # pragma: no cover
    main()
