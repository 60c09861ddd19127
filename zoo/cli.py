"""The `zoo` command line: a thin layer over the Python API (`zoo.api`).

Commands that only read the registry (`list`, `plugins`, `inspect`, `--help`) never import
torch, so they answer at once; the others import `zoo.api` when they run. Every error the user
can cause is a `ZooError`, shown as one `Error:` line with exit code 1 (runtime) or 2 (usage).
Each command builds one document: `--json` prints it on stdout, otherwise a renderer prints it
as text; progress and logs go to stderr. Options can also come from environment variables
`ZOO_<COMMAND>_<OPTION>` (`ZOO_RUN_THREADS=2`), and names complete in the shell
(`eval "$(_ZOO_COMPLETE=bash_source zoo)"`).
"""

from __future__ import annotations

import errno
import json
import math
import os
import sys
import time
from collections.abc import Callable, Iterable
from typing import Any

import click

from zoo import __version__, distributed, runconfig
from zoo import config as cfg
from zoo.errors import PluginError, SettingError, UsageError, ZooError
from zoo.fileio import atomic_write_text, check_writable
from zoo.registry import get_registry

PIPE_CLOSED = 128 + 13  # how a Unix tool killed by SIGPIPE exits


class CLIError(click.ClickException):
    """A ZooError on its way out: one line on stderr, the error's exit code."""

    def __init__(self, message: str, exit_code: int):
        super().__init__(message)
        self.exit_code = exit_code


def _quiet_closed_pipe() -> None:
    """stdout's reader went away (`zoo list | head -1`): end quietly, as Unix tools do.
    Point stdout at /dev/null so the interpreter's final flush cannot complain again."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
    raise click.exceptions.Exit(PIPE_CLOSED)


def _message(e: ZooError) -> str:
    text = f"--set {e}" if isinstance(e, SettingError) else str(e)
    return text + (" (ZOO_DEBUG=1 shows the traceback)" if e.__cause__ is not None else "")


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
            if _said_elsewhere(e):
                raise click.exceptions.Exit(e.exit_code) from None
            raise CLIError(_from_rank(_message(e)), e.exit_code) from None
        except KeyboardInterrupt:
            click.echo("\ninterrupted", err=True)
            raise click.exceptions.Exit(130) from None
        except OSError as e:
            if e.errno == errno.EPIPE:
                _quiet_closed_pipe()
            if debug:
                raise
            raise _internal(e) from None
        except Exception as e:
            if debug:
                raise
            raise _internal(e) from None


def _said_elsewhere(e: ZooError) -> bool:
    """On several processes, errors that every process meets at once (bad settings or data,
    a divergence, Ctrl-C) are said by rank 0 alone; a process that only saw another one stop
    says nothing (torchrun names the one that failed)."""
    if getattr(e, "quiet", False):
        return True
    return not distributed.from_environment().writer and not isinstance(e, PluginError)


def _from_rank(message: str) -> str:
    """A message of a process other than rank 0 says which one it is."""
    procs = distributed.from_environment()
    return message if procs.writer else f"rank {procs.rank}: {message}"


def _internal(e: Exception) -> CLIError:
    return CLIError(
        _from_rank(f"internal error: {type(e).__name__}: {e}") + " (a bug in zoo or a plugin; "
        "ZOO_DEBUG=1 shows the traceback)",
        1,
    )


# ----------------------------------------------------------------------------- output
def _clean(value: Any) -> Any:
    """JSON-safe: NaN and infinities become null; tuples become lists."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {str(k): _clean(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_clean(v) for v in value]
    return value


def to_json(doc: Any) -> str:
    return json.dumps(_clean(doc), indent=2, ensure_ascii=False, allow_nan=False)


def show(doc: Any, as_json: bool, render: Callable[[Any], Iterable[str]]) -> None:
    """The one way a command prints its document: JSON on stdout, or `render`'s lines."""
    if as_json:
        click.echo(to_json(doc))
        return
    for line in render(doc):
        click.echo(line)


def write_json(path: str, doc: Any) -> None:
    """The same document as --json, written atomically to a file."""
    atomic_write_text(path, to_json(doc) + "\n")


def table(rows: list[list[str]], headers: list[str], indent: int = 0) -> str:
    widths = [max(len(str(r[i])) for r in [headers, *rows]) for i in range(len(headers))]
    lines = [
        " " * indent + "  ".join(str(c).ljust(w) for c, w in zip(r, widths)).rstrip()
        for r in [headers, *rows]
    ]
    return "\n".join(lines)


def fmt(value: Any) -> str:
    if isinstance(value, float):
        if value != 0 and (abs(value) < 1e-3 or abs(value) >= 1e6):
            return f"{value:.4e}"
        return f"{value:.4f}"
    return str(value)


def scores_line(scores: dict[str, Any]) -> str:
    """The headline numbers of a metrics dict (per-class keys and the matrix left out)."""
    shown = [(k, v) for k, v in scores.items() if "/" not in k and not isinstance(v, dict)]
    return "  ".join(f"{k} {fmt(v)}" for k, v in shown)


def _warn_problems() -> None:
    for line in get_registry().problems():
        click.echo(f"warning: {line}", err=True)


# ------------------------------------------------------------- options and completion
class EnvOption(click.Option):
    """An option that also reads `ZOO_<COMMAND>_<OPTION>`, named after the option as a user
    types it (`--json`: ZOO_LIST_JSON, `--data`: ZOO_RUN_DATA), not after the Python
    parameter behind it, as click's automatic names would be."""

    def resolve_envvar_value(self, ctx: click.Context) -> str | None:
        value = click.Parameter.resolve_envvar_value(self, ctx)  # an explicit envvar= first
        if value is not None or not self.allow_from_autoenv or ctx.auto_envvar_prefix is None:
            return value
        name = max(self.opts, key=len).lstrip("-").replace("-", "_").upper()
        return os.environ.get(f"{ctx.auto_envvar_prefix}_{name}") or None


def option(*decls: str, **attrs: Any) -> Callable[..., Any]:
    return click.option(*decls, cls=EnvOption, **attrs)


# --------------------------------------------------------------------- completion
def _complete(kind: str) -> Callable[..., list[Any]]:
    """Shell completion of architecture and/or dataset names (torch-free)."""

    def complete(ctx: click.Context, param: click.Parameter, incomplete: str) -> list[Any]:
        reg = get_registry()
        names = []
        if kind in ("architecture", "any"):
            names += reg.list_architectures()
        if kind in ("dataset", "any"):
            names += reg.list_datasets()
        return [click.shell_completion.CompletionItem(n) for n in names if n.startswith(incomplete)]

    return complete


json_option = option("--json", "as_json", is_flag=True, help="Print one JSON document on stdout.")
metrics_out_option = option(
    "--metrics-out",
    type=click.Path(dir_okay=False),
    help="Also write the JSON result document to this file (atomically).",
)
no_log_option = option(
    "--no-log",
    is_flag=True,
    help="Leave this command out of the run log (`zoo runs`, docs/runlog.md).",
)
threads_option = option(
    "--threads",
    type=click.IntRange(min=0),
    default=None,
    help="torch intra-op threads on CPU (0: torch's default). Default: 1 (fastest for small RNNs).",
)


def set_option(help: str) -> Callable[..., Any]:
    return option("--set", "assignments", multiple=True, metavar="KEY=VALUE", help=help)


TRAINED_MODEL_SETTINGS = "model settings that keep the trained weights (impl=cells)"


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

    Every option can also be set as ZOO_<COMMAND>_<OPTION> (ZOO_RUN_THREADS=2); shell
    completion: eval "$(_ZOO_COMPLETE=bash_source zoo)" (zsh_source, fish_source).
    """


# ------------------------------------------------------------------------------------ list
def _list_doc(pattern: str | None, task: str | None) -> dict[str, Any]:
    reg = get_registry()

    def origin(e: Any) -> dict[str, str]:
        return {
            "plugin": e.plugin.name,
            "distribution": e.plugin.distribution,
            "version": e.plugin.version,
        }

    archs = [reg.architectures[n] for n in reg.list_architectures(pattern, task)]
    datasets = [reg.datasets[n] for n in reg.list_datasets(pattern, task)]
    return {
        "architectures": [
            {
                "name": e.spec.name,
                "description": e.spec.description,
                "tasks": list(e.spec.tasks),
                "default_dataset": e.spec.default_dataset,
                **origin(e),
            }
            for e in archs
        ],
        "datasets": [
            {
                "name": e.spec.name,
                "description": e.spec.description,
                "task": e.spec.task,
                "reads_files": "path" in cfg.field_names(e.spec.config),
                **origin(e),
            }
            for e in datasets
        ],
        "problems": reg.problems(),
    }


def _render_list(doc: dict[str, Any]) -> Iterable[str]:
    def label(item: dict[str, Any]) -> str:
        return f"{item['distribution']} {item['version']}"

    archs = [
        [a["name"], ",".join(a["tasks"]), a["default_dataset"], label(a), a["description"]]
        for a in doc["architectures"]
    ]
    yield "Architectures"
    headers = ["NAME", "TASK", "DEFAULT DATASET", "PLUGIN", "DESCRIPTION"]
    yield table(archs, headers, indent=2) if archs else "  (none)"
    data = [
        [
            d["name"],
            d["task"],
            "file" if d["reads_files"] else "built-in",
            label(d),
            d["description"],
        ]
        for d in doc["datasets"]
    ]
    yield "\nDatasets"
    yield (
        table(data, ["NAME", "TASK", "DATA", "PLUGIN", "DESCRIPTION"], indent=2)
        if data
        else "  (none)"
    )


@cli.command("list")
@click.argument("pattern", required=False, shell_complete=_complete("any"))
@option("--task", help="Only what serves this task.")
@json_option
def list_command(pattern: str | None, task: str | None, as_json: bool) -> None:
    """List architectures and datasets (PATTERN is a glob, e.g. 'lstm*')."""
    doc = _list_doc(pattern, task)
    _warn_problems()
    show(doc, as_json, _render_list)


# ------------------------------------------------------------------------------------ info
def _fields_doc(config_cls: type, values: Any = None) -> list[dict[str, Any]]:
    out = []
    for f in cfg.fields(config_cls):
        item = {"name": f.name, "type": f.type_name, "default": f.default, "help": f.help}
        if values is not None:
            item["default"] = getattr(values, f.name)
        item.update({k: getattr(f, k) for k in ("min", "max") if getattr(f, k) is not None})
        out.append(item)
    return out


def _print_fields(title: str, fields: list[dict[str, Any]]) -> Iterable[str]:
    yield f"\n{title}"
    if not fields:
        yield "  (none)"
        return
    rows = [[f["name"], f["type"], json.dumps(_clean(f["default"])), f["help"]] for f in fields]
    yield table(rows, ["NAME", "TYPE", "DEFAULT", "HELP"], indent=2)


def _dataset_doc(name: str) -> dict[str, Any]:
    reg = get_registry()
    e = reg.dataset(name)
    return {
        "description": e.spec.description,
        "task": e.spec.task,
        "plugin": e.plugin.name,
        "distribution": e.plugin.distribution,
        "version": e.plugin.version,
        "architectures": reg.list_architectures(task=e.spec.task),
        "settings": _fields_doc(e.spec.config),
    }


def _architecture_doc(name: str) -> dict[str, Any]:
    from zoo.settings import resolve

    reg = get_registry()
    e = reg.architecture(name)  # raises with suggestions when unknown
    spec = e.spec
    resolved = resolve(spec, reg.dataset(spec.default_dataset).spec)
    doc: dict[str, Any] = {
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
    from zoo.api import count_parameters

    try:
        doc["parameters"] = count_parameters(name, epochs=1)
    except ZooError as err:
        doc["parameters"], doc["parameters_error"] = None, str(err)
    return doc


def _render_architecture(name: str, a: dict[str, Any]) -> Iterable[str]:
    params = a["parameters"]
    yield f"{name}: {a['description']}"
    yield f"  plugin:              {a['distribution']} {a['version']} (plugin {a['plugin']})"
    yield f"  tasks:               {', '.join(a['tasks'])}"
    yield f"  default dataset:     {a['default_dataset']}"
    yield f"  compatible datasets: {', '.join(a['compatible_datasets'])}"
    yield (
        f"  parameters:          {params:,} (default settings, default dataset)"
        if params is not None
        else f"  parameters:          unknown ({a.get('parameters_error')})"
    )
    yield f"  selects on:          valid {a['monitor'][0]} ({a['monitor'][1]})"
    yield from _print_fields("Model settings (--set KEY=VALUE)", a["settings"])
    yield from _print_fields(f"Data settings of {a['default_dataset']}", a["data_settings"])
    yield from _print_fields(
        f"Training settings (as resolved for {a['default_dataset']})", a["training"]
    )
    if a["predict_options"]:
        yield from _print_fields(
            "Predict options (zoo predict --set KEY=VALUE)", a["predict_options"]
        )


def _render_info(doc: dict[str, Any]) -> Iterable[str]:
    name = doc["name"]
    if "architecture" in doc:
        yield from _render_architecture(name, doc["architecture"])
    if "dataset" in doc:
        d = doc["dataset"]
        if "architecture" in doc:
            yield ""
        yield f"{name} (dataset): {d['description']}"
        yield f"  plugin:        {d['distribution']} {d['version']} (plugin {d['plugin']})"
        yield f"  task:          {d['task']}"
        yield f"  architectures: {', '.join(d['architectures']) or 'none installed'}"
        yield from _print_fields("Data settings (--set KEY=VALUE; --data sets path)", d["settings"])


@cli.command("info")
@click.argument("name", shell_complete=_complete("any"))
@json_option
def info_command(name: str, as_json: bool) -> None:
    """Settings, datasets and size of an architecture (or the settings of a dataset)."""
    reg = get_registry()
    doc: dict[str, Any] = {"name": name}
    if name in reg.datasets:
        doc["dataset"] = _dataset_doc(name)
    if name in reg.architectures or "dataset" not in doc:
        doc["architecture"] = _architecture_doc(name)
    show(doc, as_json, _render_info)


# ------------------------------------------------------------------------------------- run
RUN_OPTIONS = ("epochs", "steps", "batch_size", "lr", "seed", "device", "threads")


def _render_run(doc: dict[str, Any]) -> Iterable[str]:
    training = doc["training"]
    yield f"saved {doc['path']} ({doc['parameters']:,} parameters)"
    for split, scores in doc["metrics"].items():
        yield f"{split:6s} " + scores_line(scores)
    yield (
        f"trained {training.get('steps')} steps ({training.get('epochs')} epochs) in "
        f"{training.get('seconds', 0):.1f} s, {training.get('cpu_seconds', 0):.1f} CPU-s, "
        f"{training.get('threads')} thread(s) on {training.get('device')}"
    )


# The options that start torchrun; a worker (RANK set) ignores them.
LAUNCH_OPTIONS = (
    "nproc_per_node",
    "nnodes",
    "node_rank",
    "rdzv_endpoint",
    "rdzv_id",
    "max_restarts",
)


def _worker_arguments(ctx: click.Context, drop: Iterable[str] = LAUNCH_OPTIONS) -> list[str]:
    """The arguments of this `zoo run` as given (on the command line or from ZOO_RUN_*
    variables), less the options in `drop` (by default the launcher's): what every worker
    runs. Rebuilt from the parsed values, so it works in-process (click's CliRunner) as from
    a shell."""
    args: list[str] = []
    for param in ctx.command.params:
        name = param.name
        if name is None or name in drop:
            continue
        if ctx.get_parameter_source(name) in (None, click.core.ParameterSource.DEFAULT):
            continue
        value = ctx.params.get(name)
        if isinstance(param, click.Argument):
            if value is not None:
                args.insert(0, str(value))
            continue
        opt = max(param.opts, key=len)
        if getattr(param, "is_flag", False) and not getattr(param, "multiple", False):
            if value:
                args.append(opt)
            elif param.secondary_opts:
                args.append(max(param.secondary_opts, key=len))
            continue
        values = value if getattr(param, "multiple", False) else [value]
        args += [f"{opt}={v}" for v in values if v is not None]  # `=`: a value may start with -
    return args


def _launch_if_asked(ctx: click.Context) -> None:
    """`zoo run ... --nproc-per-node N` (or `--nnodes`, `--rdzv-endpoint`) outside a torchrun
    worker: run the same command under torchrun and exit with its exit code."""
    from zoo import launch

    if launch.in_worker():
        return
    p = ctx.params
    if p["nproc_per_node"] is None and p["nnodes"] is None and p["rdzv_endpoint"] is None:
        if p["node_rank"] is not None:
            raise UsageError("--node-rank needs --nnodes (the number of machines)")
        for key in ("max_restarts", "rdzv_id"):
            if ctx.get_parameter_source(key) == click.core.ParameterSource.COMMANDLINE:
                option_name = "--" + key.replace("_", "-")
                raise UsageError(f"{option_name} needs --nproc-per-node N (or --nnodes)")
        return
    nproc = 1 if p["nproc_per_node"] is None else p["nproc_per_node"]
    where = {k: p[k] for k in ("nnodes", "node_rank", "rdzv_endpoint")}
    launch.check(nproc, threads=p.get("threads"), **where)
    if p["max_restarts"] and not p.get("checkpoint_every") and not p.get("resume_file"):
        click.echo(
            f"warning: --max-restarts {p['max_restarts']} without --checkpoint-every N: a "
            "restarted run starts again from the beginning",
            err=True,
        )
    code = launch.launch(
        _worker_arguments(ctx),
        nproc_per_node=nproc,
        rdzv_id=p["rdzv_id"],
        max_restarts=p["max_restarts"],
        threads=p.get("threads"),
        **where,
    )
    raise click.exceptions.Exit(code)


def _check_before_starting(
    ctx: click.Context,
    name: str | None,
    dataset: str | None,
    resume_file: str | None,
    metrics_out: str | None,
) -> None:
    """The mistakes `zoo run` finds before any data is read or any process is started."""
    if metrics_out is not None:
        check_writable(metrics_out, option="--metrics-out")
    if name is not None and resume_file is None:
        get_registry().architecture(name)  # an unknown name
        runconfig.check_settings(ctx, name, dataset)


# What `zoo run --seeds` sets for each seed itself, or does not pass on.
SEED_RUN_OWN = ("seeds", "jobs", "seed", "out", "metrics_out", "as_json", "quiet", "print_config")


def _run_seeds(ctx: click.Context, seeds_text: str, as_json: bool) -> None:
    """`zoo run ... --seeds 0-4 --jobs J`: one `zoo run` per seed, then mean ± sd."""
    from zoo import seeds

    p = ctx.params
    chosen = seeds.parse_seeds(seeds_text)
    if p["resume_file"] is not None:
        raise UsageError("--seeds with --resume: a checkpoint continues one run; give one")
    if ctx.get_parameter_source("seed") == click.core.ParameterSource.COMMANDLINE:
        raise UsageError("give --seeds or --seed, not both")
    if p["name"] is None:
        raise UsageError("--seeds: give the architecture NAME (`zoo list`)")
    spec = get_registry().architecture(p["name"]).spec
    out = p["out"] or f"{p['name']}-{p['dataset'] or spec.default_dataset}.safetensors"
    arguments = _worker_arguments(ctx, drop=SEED_RUN_OWN)
    if p["jobs"] > 1 and p.get("threads") is None:
        arguments.append("--threads=1")
    runs = seeds.SeedRuns(arguments, out, p["jobs"], echo=lambda line: click.echo(line, err=True))
    runs.run(chosen)
    finished = [runs.results[s] for s in chosen if s in runs.results]
    doc = {
        "seeds": chosen,
        "runs": finished,
        "failed": [{"seed": s, "error": e} for s, e in sorted(runs.errors.items())],
        "summary": seeds.summarise(finished) if finished else {},
    }
    if p["metrics_out"] is not None:
        write_json(p["metrics_out"], doc)
    show(doc, as_json, seeds.render)
    if runs.children.stopped:
        raise click.exceptions.Exit(128 + runs.children.stopped)
    if runs.errors:
        raise click.exceptions.Exit(1)


def training_options(command: Callable[..., Any]) -> Callable[..., Any]:
    """NAME and the data and training options that `zoo run` and `zoo sweep` share."""
    for decorator in reversed(
        [
            click.argument("name", required=False, shell_complete=_complete("architecture")),
            option(
                "--dataset",
                help="Dataset to train on (default: the architecture's own).",
                shell_complete=_complete("dataset"),
            ),
            option(
                "--data", "data_path", type=click.Path(), help="File or folder the dataset reads."
            ),
            option(
                "--dev",
                "dev_path",
                type=click.Path(),
                help="Validation file, for datasets that take one.",
            ),
            option(
                "--test",
                "test_path",
                type=click.Path(),
                help="Test file, for datasets that take one.",
            ),
            option("--epochs", type=click.IntRange(min=0), help="Passes over the training data."),
            option(
                "--steps", type=click.IntRange(min=0), help="Optimizer steps (overrides --epochs)."
            ),
            option("--batch-size", type=click.IntRange(min=1), help="Examples per step."),
            option("--lr", type=click.FloatRange(min=0), help="Learning rate."),
        ]
    ):
        command = decorator(command)
    return command


config_option = option(
    "--config",
    "config_file",
    type=click.Path(dir_okay=False),
    is_eager=True,
    callback=runconfig.load,
    help="Read options and [settings] from this TOML run file; the command line wins.",
)


@cli.command("run")
@training_options
@option("--seed", type=click.IntRange(min=0), help="Seed for initialisation, shuffling, dropout.")
@option("--device", help="cpu, cuda, cuda:N or auto (default: auto).")
@threads_option
@option("--out", type=click.Path(), help="Model file to write (default: NAME-DATASET.safetensors).")
@option(
    "--checkpoint-every",
    type=click.IntRange(min=0),
    help="Save a resumable checkpoint (OUT.ckpt.safetensors) every N steps; Ctrl-C always saves one.",
)
@option(
    "--resume",
    "resume_file",
    type=click.Path(),
    help="Continue an interrupted run from its checkpoint (NAME and settings come from it).",
)
@set_option("Any model, data or training setting (repeatable); `zoo info NAME` lists them.")
@config_option
@option(
    "--print-config",
    is_flag=True,
    help="Print this run's options and resolved settings as a run file (TOML) and exit.",
)
@option(
    "--seeds",
    metavar="SEEDS",
    help="Train once per seed (0-4, or 1,5,9) and print mean ± sd of every metric; models go to OUT-seedS.",
)
@option(
    "--jobs",
    type=click.IntRange(min=1),
    default=1,
    show_default=True,
    help="With --seeds: seeds trained at once, each its own process (one thread unless --threads).",
)
@metrics_out_option
@option("-q", "--quiet", is_flag=True, help="No progress display.")
@json_option
@no_log_option
@option(
    "--nproc-per-node",
    type=int,
    metavar="N",
    help="Train with N processes on this machine, started by torchrun (see docs/distributed.md).",
)
@option(
    "--nnodes",
    metavar="M|MIN:MAX",
    help="Machines taking part (each runs this command; needs --rdzv-endpoint).",
)
@option(
    "--node-rank", type=int, metavar="R", help="This machine's number, 0 to M-1 (with --nnodes)."
)
@option(
    "--rdzv-endpoint",
    metavar="HOST:PORT",
    help="Where the machines meet (c10d rendezvous): the same HOST:PORT on every machine.",
)
@option(
    "--rdzv-id",
    metavar="ID",
    default="zoo",
    show_default=True,
    help="Name of this job at the endpoint.",
)
@option(
    "--max-restarts",
    type=click.IntRange(min=0),
    metavar="K",
    default=0,
    show_default=True,
    help="Restart the processes this many times if one fails.",
)
def run_command(
    name: str | None,
    dataset: str | None,
    data_path: str | None,
    dev_path: str | None,
    test_path: str | None,
    out: str | None,
    checkpoint_every: int | None,
    resume_file: str | None,
    assignments: tuple[str, ...],
    config_file: str | None,
    print_config: bool,
    seeds: str | None,
    jobs: int,
    metrics_out: str | None,
    quiet: bool,
    as_json: bool,
    no_log: bool,
    nproc_per_node: int | None,
    nnodes: str | None,
    node_rank: int | None,
    rdzv_endpoint: str | None,
    rdzv_id: str,
    max_restarts: int,
    **explicit: Any,
) -> None:
    """Build NAME and its dataset, train, evaluate on held-out data, and save one model file.

    Ctrl-C saves a checkpoint that `--resume FILE` continues exactly; `--nproc-per-node N`
    trains on N processes (docs/distributed.md); `--config run.toml` reads a run file."""
    ctx = click.get_current_context()
    if print_config:
        click.echo(runconfig.print_config(ctx, assignments, explicit), nl=False)
        return
    _check_before_starting(ctx, name, dataset, resume_file, metrics_out)
    if seeds is not None:
        _run_seeds(ctx, seeds, as_json)
        return
    _launch_if_asked(ctx)
    _train_one(ctx, runconfig.run_settings(ctx, assignments, explicit))


def _train_one(ctx: click.Context, settings: dict[str, Any]) -> None:
    """One `zoo run` in this process (or this torchrun worker): train, log, print, write."""
    from zoo.api import run
    from zoo.progress import Progress
    from zoo.runlog_cli import log_run, log_run_result

    p = ctx.params
    with log_run(ctx, p["no_log"]) as record:
        result = run(
            p["name"],
            p["dataset"],
            p["data_path"],
            dev=p["dev_path"],
            test=p["test_path"],
            out=p["out"],
            resume=p["resume_file"],
            checkpoint_every=p["checkpoint_every"],
            progress=Progress(enabled=not p["quiet"]),
            **settings,
        )
        if not distributed.from_environment().writer:
            return  # several processes: rank 0 alone prints, writes and logs
        doc = result.as_dict()
        log_run_result(record, doc)
    if p["metrics_out"] is not None:
        write_json(p["metrics_out"], doc)
    show(doc, p["as_json"], _render_run)


# --------------------------------------------------------------------------------- predict
def _predict_settings(assignments: tuple[str, ...], batch_size: int | None) -> dict[str, Any]:
    settings: dict[str, Any] = dict(cfg.parse_assignments(assignments))
    if batch_size is not None:
        settings["predict.batch_size"] = batch_size
    return settings


@cli.command(
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
        check_writable(output_file, option="--output")
    from zoo.api import load, predict, predict_file
    from zoo.textfile import read_text
    from zoo.trainer import set_threads

    set_threads(1 if threads is None else threads)
    t0 = time.perf_counter()
    model = load(model_file)
    t1 = time.perf_counter()
    if input_file is not None:
        text, predictions = predict_file(model, read_text(input_file, option="--input"), **settings)
    else:
        predictions = predict(model, list(inputs), **settings)
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


@cli.command("eval")
@click.argument("model_file", metavar="FILE", type=click.Path())
@option("--data", "data_path", type=click.Path(), help="File or folder to evaluate on.")
@option(
    "--dataset",
    help="Read --data as this dataset (default: the model's own).",
    shell_complete=_complete("dataset"),
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
        check_writable(metrics_out, option="--metrics-out")
    settings = cfg.parse_assignments(assignments)
    from zoo.api import evaluate, load
    from zoo.runlog_cli import log_eval
    from zoo.trainer import set_threads

    with log_eval(click.get_current_context(), no_log) as record:
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
        record.end("finished", metrics={split: metrics}, threads=used_threads)
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


@cli.command("gates")
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
    from zoo.plots import output_format

    output_format(out)
    check_writable(out)
    options = cfg.parse_assignments(assignments)
    from zoo.api import load
    from zoo.gates import draw
    from zoo.trainer import set_threads

    set_threads(1)
    doc = {"out": out, **draw(load(model_file), text, out, **options)}
    show(doc, as_json, _render_gates)


# ---------------------------------------------------------------------------------- inspect
def _render_inspect(info: dict[str, Any]) -> Iterable[str]:
    plugin = info["plugin"]
    yield f"{info['path']}: zoo model format {info['format_version']}, written by zoo {info['zoo_version']}"
    yield f"  architecture: {info['architecture']} ({plugin.get('distribution')} {plugin.get('version')})"
    yield f"  task:         {info['task']}"
    yield f"  dataset:      {info['dataset']}"
    n = sum(math.prod(t["shape"]) for t in info["tensors"].values())
    yield f"  tensors:      {len(info['tensors'])} ({n:,} values)"
    for key in ("config", "data_config", "train_config"):
        yield f"  {key + ':':13s} " + json.dumps(info[key], sort_keys=True)
    state = info["data_state"]
    yield "  data_state:   " + ", ".join(
        f"{k} ({len(v)})" if isinstance(v, (list, dict)) else k for k, v in state.items()
    )
    for split, scores in info["metrics"].items():
        if isinstance(scores, dict):
            yield f"  metrics {split}: " + scores_line(scores)


@cli.command("inspect")
@click.argument("model_file", metavar="FILE", type=click.Path())
@json_option
def inspect_command(model_file: str, as_json: bool) -> None:
    """Show what a model file holds (names, configs, metrics, tensors) without loading it."""
    from zoo.modelfile import read_info

    info = read_info(model_file)
    show(info if as_json else {**info, "path": model_file}, as_json, _render_inspect)


# ---------------------------------------------------------------------------------- plugins
def _plugins_doc() -> dict[str, Any]:
    reg = get_registry()
    cli.list_commands(click.get_current_context())  # loads the register_commands hooks
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
            "describe": f.describe(),
        }
        for f in reg.failures
    ]
    conflicts = [line for line in reg.problems() if "registered by both" in line]
    return {"plugins": plugins, "failures": failures, "conflicts": conflicts}


def _render_plugins(doc: dict[str, Any]) -> Iterable[str]:
    rows = [
        [
            p["name"],
            f"{p['distribution']} {p['version']}",
            ", ".join(p["hooks"]),
            ", ".join(p["architectures"] + p["datasets"]),
        ]
        for p in doc["plugins"]
    ]
    yield table(rows, ["PLUGIN", "DISTRIBUTION", "HOOKS", "PROVIDES"])
    if doc["failures"]:
        yield "\nFailed"
        yield from (f"  {f['describe']}" for f in doc["failures"])
    if doc["conflicts"]:
        yield "\nConflicts"
        yield from (f"  {line}" for line in doc["conflicts"])


@cli.command("plugins")
@json_option
def plugins_command(as_json: bool) -> None:
    """Loaded plugins, their versions and hooks, and any that failed to load."""
    doc = _plugins_doc()
    if as_json:
        for failure in doc["failures"]:
            del failure["describe"]
    show(doc, as_json, _render_plugins)


# The run log's readers (zoo/runlog_cli.py, torch-free; imported last: it uses the helpers above).
from zoo.runlog_cli import compare_command, runs_command  # noqa: E402

cli.add_command(runs_command)
cli.add_command(compare_command)

# `zoo plot` (zoo/plot_cli.py: torch-free and matplotlib-free until a figure is drawn).
from zoo.plot_cli import plot_group  # noqa: E402

cli.add_command(plot_group)

# ONNX export and model cards (zoo/export_cli.py; torch, onnx imported when they run).
from zoo.export_cli import card_command, export_command  # noqa: E402

cli.add_command(export_command)
cli.add_command(card_command)

# `zoo sweep` (zoo/sweep_cli.py; Optuna and torch imported when a sweep starts).
from zoo.sweep_cli import sweep_group  # noqa: E402

cli.add_command(sweep_group)


def main() -> None:
    """Console-script entry point; options also read ZOO_<COMMAND>_<OPTION> variables."""
    cli.main(prog_name="zoo", windows_expand_args=False, auto_envvar_prefix="ZOO")


if __name__ == "__main__":  # pragma: no cover
    main()
