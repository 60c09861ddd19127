"""`zoo run`: train one model (or one per seed with `--seeds`, or on several processes through
torchrun with `--nproc-per-node`), from options, `--set` settings and run files.

The options that `zoo sweep` shares with it are `training_options` and `config_option`.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable
from typing import Any

import click

from zoo.cli.base import (
    command_arguments,
    complete_names,
    json_option,
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
from zoo.core.errors import UsageError, ZooError
from zoo.core.fileio import check_writable
from zoo.core.formatting import scores_line
from zoo.core.registry import get_registry
from zoo.core.settings import default_out
from zoo.features import runconfig
from zoo.training import distributed

# ------------------------------------------------------------------------------------- run
RUN_OPTIONS = ("epochs", "steps", "batch_size", "lr", "seed", "device", "threads")


def _render_run(doc: dict[str, Any]) -> Iterable[str]:
    training = doc["training"]
    yield f"saved {doc['path']} ({doc['parameters']:,} parameters)"
    names = get_registry().headline(doc["architecture"])
    for split, scores in doc["metrics"].items():
        yield f"{split:6s} " + scores_line(scores, names)
    yield (
        f"trained {training.get('steps')} steps ({training.get('epochs')} epochs) in "
        f"{training.get('seconds', 0):.1f} s, {training.get('cpu_seconds', 0):.1f} CPU-s, "
        f"{training.get('threads')} thread(s) on {training.get('device')}"
    )


def _launch_if_asked(ctx: click.Context) -> None:
    """`zoo run ... --nproc-per-node N` (or `--nnodes`, `--rdzv-endpoint`) outside a torchrun
    worker: run the same command under torchrun and exit with its exit code."""
    from zoo.training import launch

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
    launch.check(nproc, threads=_threads_asked(ctx), **where)
    if p["max_restarts"] and not p.get("checkpoint_every") and not p.get("resume_file"):
        click.echo(
            f"warning: --max-restarts {p['max_restarts']} without --checkpoint-every N: a "
            "restarted run starts again from the beginning",
            err=True,
        )
    code = launch.launch(
        command_arguments(ctx),
        nproc_per_node=nproc,
        rdzv_id=p["rdzv_id"],
        max_restarts=p["max_restarts"],
        threads=p.get("threads"),
        **where,
    )
    raise click.exceptions.Exit(code)


def _threads_asked(ctx: click.Context) -> int | None:
    """The threads each process was asked for: `--threads`, else `--set threads=`."""
    p = ctx.params
    if p.get("threads") is not None:
        return p["threads"]
    asked = cfg.parse_assignments(p.get("assignments") or ())
    value = asked.get("threads", asked.get("train.threads"))
    return int(value) if value is not None and str(value).strip().isdigit() else None


def _run_files(ctx: click.Context, name: str | None, dataset: str | None) -> dict[str, Any]:
    """The files `zoo run` reads or writes besides --metrics-out, which must not be one."""
    p = ctx.params
    out = p["out"]
    if out is None and name is not None and p["resume_file"] is None:
        out = default_out(name, dataset or get_registry().architecture(name).spec.default_dataset)
    named = ("data_path", "dev_path", "test_path", "resume_file", "config_file")
    files = {f"--{k.split('_')[0]}": p.get(k) for k in named}
    return {**files, "--out": out}


def _check_before_starting(
    ctx: click.Context,
    name: str | None,
    dataset: str | None,
    resume_file: str | None,
    metrics_out: str | None,
) -> None:
    """The mistakes `zoo run` finds before any data is read or any process is started."""
    if metrics_out is not None:
        check_writable(metrics_out, option="--metrics-out", inputs=_run_files(ctx, name, dataset))
    if name is not None and resume_file is None:
        get_registry().architecture(name)  # an unknown name
        runconfig.check_settings(ctx, name, dataset)


# What `zoo run --seeds` sets for each seed itself, or does not pass on.
SEED_RUN_OWN = ("seeds", "jobs", "seed", "out", "metrics_out", "as_json", "quiet", "print_config")


def _run_seeds(ctx: click.Context, seeds_text: str, as_json: bool) -> None:
    """`zoo run ... --seeds 0-4 --jobs J`: one `zoo run` per seed, then mean ± sd."""
    from zoo.features import seeds

    p = ctx.params
    chosen = seeds.parse_seeds(seeds_text)
    if p["resume_file"] is not None:
        raise UsageError("--seeds with --resume: a checkpoint continues one run; give one")
    if ctx.get_parameter_source("seed") == click.core.ParameterSource.COMMANDLINE:
        raise UsageError("give --seeds or --seed, not both")
    if p["name"] is None:
        raise UsageError("--seeds: give the architecture NAME (`zoo list`)")
    spec = get_registry().architecture(p["name"]).spec
    out = p["out"] or default_out(p["name"], p["dataset"] or spec.default_dataset)
    arguments = command_arguments(ctx, drop=SEED_RUN_OWN)
    if p["jobs"] > 1 and p.get("threads") is None:
        arguments.append("--threads=1")
    runs = seeds.SeedRuns(arguments, out, p["jobs"], echo=lambda line: click.echo(line, err=True))
    runs.run(chosen)
    finished = [runs.results[s] for s in chosen if s in runs.results]
    doc = {
        "seeds": chosen,
        "runs": finished,
        "failed": [{"seed": s, "error": e} for s, e in sorted(runs.errors.items())],
        "summary": seeds.summarise(finished, get_registry().headline(p["name"]))
        if finished
        else {},
    }
    if p["metrics_out"] is not None:
        write_json(p["metrics_out"], doc)
    show(doc, as_json, seeds.render)
    if runs.children.stopped:
        raise click.exceptions.Exit(128 + runs.children.stopped)
    if runs.errors:
        raise click.exceptions.Exit(1)


def _cache_setting(ctx: click.Context, param: click.Parameter, value: Any) -> None:
    """`--no-cache`/`--cache-dir` as the environment the data loader reads (docs/data.md), so
    that torchrun's ranks and a sweep's trials, started from this process, see them too."""
    if value and param.name == "no_cache":
        os.environ["ZOO_NO_CACHE"] = "1"
    elif value and param.name == "cache_dir":
        os.environ["ZOO_CACHE_DIR"] = os.path.abspath(value)


cache_options = [
    option(
        "--cache-dir",
        type=click.Path(file_okay=False),
        expose_value=False,
        callback=_cache_setting,
        help="Folder of prepared data (default: $ZOO_HOME/cache); see `zoo data`.",
    ),
    option(
        "--no-cache",
        is_flag=True,
        expose_value=False,
        callback=_cache_setting,
        help="Read and parse the data files as they are, without the prepared-data cache.",
    ),
]


def training_options(command: Callable[..., Any]) -> Callable[..., Any]:
    """NAME and the data and training options that `zoo run` and `zoo sweep` share."""
    for decorator in reversed(
        [
            click.argument("name", required=False, shell_complete=complete_names("architecture")),
            option(
                "--dataset",
                help="Dataset to train on (default: the architecture's own).",
                shell_complete=complete_names("dataset"),
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
            *cache_options,
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


@click.command("run")
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
    from zoo.training.launch import fair_threads

    _train_one(ctx, fair_threads(runconfig.run_settings(ctx, assignments, explicit)))


def _train_one(ctx: click.Context, settings: dict[str, Any]) -> None:
    """One `zoo run` in this process (or this torchrun worker): train, log, print, write."""
    from zoo.api import run
    from zoo.cli.runlog import log_run, log_run_result
    from zoo.features.sweep_report import join_study
    from zoo.training.progress import Progress

    p = ctx.params
    join_study(get_registry())  # a trial of `zoo sweep`: report validation scores to its study
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
            **settings_for(run, settings, None),
        )
        if not distributed.from_environment().writer:
            return  # several processes: rank 0 alone prints, writes and logs
        doc = result.as_dict()
        try:
            if p["metrics_out"] is not None:
                write_json(p["metrics_out"], doc)
        except ZooError as e:  # the command fails: so does its row, which keeps the result
            log_run_result(record, doc, "failed", str(e))
            raise
        log_run_result(record, doc)
    show(doc, p["as_json"], _render_run)
