"""`zoo sweep NAME --set 'lr=loguniform(1e-4,1e-2)' ...` and `zoo sweep show [STUDY]`.

The commands; the search itself is zoo/features/sweep.py (Optuna), the search-space syntax
zoo/features/sweep_space.py. Registered by zoo/cli/. Neither torch nor Optuna is imported until a
sweep starts or a study is shown, so `zoo --help` stays quick and a missing Optuna is one line.
docs/sweeps.md explains the whole.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import click

from zoo.cli.base import json_option, no_log_option, option, set_option, show
from zoo.cli.train import config_option, training_options
from zoo.core.errors import UsageError, ZooError
from zoo.core.formatting import fmt, table
from zoo.core.registry import get_registry
from zoo.features import runconfig
from zoo.features.seeds import parse_seeds

NEEDS_OPTUNA = "zoo sweep needs optuna: pip install 'rnn-zoo[sweep]'"


def _sweep_modules() -> tuple[Any, Any]:
    """zoo/features/sweep.py and its storage (both import Optuna), or one line naming the extra."""
    try:
        from zoo.features import sweep, sweep_storage
    except ModuleNotFoundError as e:
        if e.name in ("optuna", "sqlalchemy"):
            raise UsageError(NEEDS_OPTUNA) from None
        raise
    return sweep, sweep_storage


class SweepGroup(click.Group):
    """`zoo sweep show ...` is a subcommand; anything else is a sweep (`zoo sweep NAME ...`)."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        if not args or args[0] not in self.commands:
            args = ["start", *args]
        return super().parse_args(ctx, args)


class StartCommand(click.Command):
    """The sweep itself, shown to users as `zoo sweep`."""

    def format_usage(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        pieces = self.collect_usage_pieces(ctx)
        formatter.write_usage("zoo sweep", " ".join(pieces))
        formatter.write_text("       zoo sweep show [STUDY] [--storage URL] [--json]")


@click.group("sweep", cls=SweepGroup)
def sweep_group() -> None:
    """Search settings with Optuna: `zoo sweep NAME --set KEY=DIST(...)`, `zoo sweep show`."""


@sweep_group.command(
    "start",
    cls=StartCommand,
    hidden=True,
    context_settings={"auto_envvar_prefix": "ZOO_SWEEP"},
)
@training_options
@option("--device", help="cpu, cuda, cuda:N or auto.")
@set_option(
    "A fixed setting, or one to search: KEY=uniform(A,B), loguniform(A,B), int(A,B), logint(A,B), choice(X,Y,...)."
)
@config_option
@option(
    "--trials",
    type=click.IntRange(min=1),
    default=20,
    show_default=True,
    help="Trials the study should have in all (a rerun continues to this many).",
)
@option(
    "--jobs",
    type=click.IntRange(min=1),
    default=1,
    show_default=True,
    help="Trials at once on this machine, each its own process.",
)
@option(
    "--threads",
    type=click.IntRange(min=0),
    default=1,
    show_default=True,
    help="torch threads of each trial's process.",
)
@option("--seeds", help="Train each trial on these seeds (0-2, or 1,5,9); its value is their mean.")
@option(
    "--storage",
    help="Optuna storage URL: sqlite:///FILE or postgresql://USER:PASS@HOST/DB (default: SQLite in zoo's data folder).",
)
@option(
    "--study", "study_name", help="Study name (default: NAME-DATASET); the same name continues it."
)
@option(
    "--models",
    "models_dir",
    type=click.Path(file_okay=False),
    help="Folder for the trials' run files, logs and models (default: sweeps/STUDY in zoo's data folder).",
)
@option(
    "--sampler-seed",
    type=click.IntRange(min=0),
    help="Seed Optuna's sampler: the same settings are tried in the same order (with --jobs 1).",
)
@option(
    "--pruner",
    type=click.Choice(["median", "none"]),
    default="median",
    show_default=True,
    help="Stop trials whose validation scores trail the median of earlier ones.",
)
@option(
    "--prune-after",
    type=click.IntRange(min=0),
    default=0,
    show_default=True,
    metavar="STEPS",
    help="Never prune a trial before this many of its optimizer steps (scores trained with "
    "different schedules differ most at first).",
)
@no_log_option
@json_option
def start_command(
    name: str | None,
    dataset: str | None,
    data_path: str | None,
    dev_path: str | None,
    test_path: str | None,
    assignments: tuple[str, ...],
    config_file: str | None,
    trials: int,
    jobs: int,
    threads: int,
    seeds: str | None,
    storage: str | None,
    study_name: str | None,
    models_dir: str | None,
    sampler_seed: int | None,
    pruner: str,
    prune_after: int,
    no_log: bool,
    as_json: bool,
    **explicit: Any,
) -> None:
    """Search NAME's settings with Optuna's TPE sampler, pruning hopeless trials, by the
    architecture's validation metric (never test). Each trial is a `zoo run` in its own
    process; the best trial's model file is kept and every trial is in the run log.

    `--storage postgresql://...` on several machines running the same command joins one
    study; running it again continues it. `zoo sweep show [STUDY]` shows a study.
    """
    ctx = click.get_current_context()
    sweep, storage_of = _sweep_modules()
    plan = _plan(ctx, sweep, name, assignments, explicit)
    plan.trials, plan.jobs, plan.threads, plan.pruner = trials, jobs, threads, pruner
    plan.prune_after = prune_after
    plan.seeds = parse_seeds(seeds) if seeds else plan.seeds
    plan.study = study_name or f"{plan.architecture}-{plan.dataset}"
    plan.storage = storage or storage_of.default_storage()
    plan.folder = Path(models_dir) if models_dir else _default_folder(plan.study)
    plan.no_log, plan.sampler_seed = no_log, sampler_seed
    plan.echo = lambda line: click.echo(line, err=True)  # progress: stderr
    _run_sweep(sweep, plan, as_json)


def _default_folder(study: str) -> Path:
    from zoo.features.runlog import default_path

    safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in study)
    return default_path().parent / "sweeps" / safe


def _plan(
    ctx: click.Context, sweep: Any, name: str | None, assignments: tuple[str, ...], explicit: dict
) -> Any:
    """The sweep's plan from the command line and run file, checked before any trial."""
    from zoo.core.settings import TrainConfig
    from zoo.features import sweep_space

    if name is None:
        raise UsageError("give the architecture NAME to sweep (`zoo list`)")
    reg = get_registry()
    spec = reg.architecture(name).spec
    dataset = ctx.params["dataset"] or spec.default_dataset
    reg.check_compatible(name, dataset)
    _check_searches_kept(ctx, assignments, explicit)
    fixed, space = sweep_space.split(runconfig.run_settings(ctx, assignments, explicit))
    if not space:
        raise UsageError(
            "nothing to search: give at least one --set KEY=DISTRIBUTION(...), "
            "e.g. --set 'lr=loguniform(1e-4,1e-2)'"
        )
    convert = runconfig.setting_converter(name, dataset)
    for key, value in fixed.items():
        convert(key, value)
    sweep_space.check(space, convert)
    metric, mode = spec.monitor
    headline = reg.headline(name)
    p = ctx.params
    options = {"data": p["data_path"], "dev": p["dev_path"], "test": p["test_path"]}
    return sweep.Plan(
        architecture=name,
        dataset=dataset,
        options=options,
        fixed=fixed,
        space=space,
        metric=metric,
        direction="minimize" if mode == "min" else "maximize",
        seeds=[TrainConfig().seed],
        threads=1,
        trials=1,
        jobs=1,
        study="",
        storage="",
        folder=Path("."),
        headline=headline,
    )


def _check_searches_kept(ctx: click.Context, assignments: tuple[str, ...], explicit: dict) -> None:
    """A searched setting that an option of its own also sets (`--epochs 1` and `--set
    epochs=int(1,2)`) is refused naming both: the option would win and the search be
    dropped without a word. The run file's searches and options count as the command
    line's do."""
    from zoo.core import config as cfg
    from zoo.features import sweep_space

    found = runconfig.run_file(ctx)
    from_set = cfg.parse_assignments(assignments)
    searched = {**(found.settings if found else {}), **from_set}
    settings = runconfig.run_settings(ctx, assignments, explicit)
    for key, value in explicit.items():
        for name in (key, f"train.{key}"):
            search = searched.get(name)
            if value is None or not sweep_space.is_search(search):
                continue
            if sweep_space.is_search(settings.get(name)):
                continue  # the search won (an option from the run file, a --set here)
            where = "--set " if name in from_set or not found else f"{found.path} [settings] "
            option = f"--{key.replace('_', '-')} {value}"
            if found and ctx.get_parameter_source(key) == click.core.ParameterSource.DEFAULT_MAP:
                option = f"{key} = {value} in {found.path}"
            raise UsageError(
                f"{where}{name}={sweep_space.shown(str(search))} searches a setting that "
                f"{option} fixes; give one of them"
            )


def _run_sweep(sweep: Any, plan: Any, as_json: bool) -> None:
    from zoo.features.sweep_storage import shown_url

    study = sweep.open_study(plan)
    plan.folder.mkdir(parents=True, exist_ok=True)
    already = sweep.counted(study)
    plan.echo(
        f"study {plan.study}: {plan.direction} valid {plan.metric} over "
        f"{', '.join(plan.space)}; {already} of {plan.trials} trial(s) done, {plan.jobs} at a "
        f"time; storage {shown_url(plan.storage)}; files in {plan.folder}"
    )
    runner = sweep.Sweep(plan, study)
    runner.run()
    if runner.interrupted:
        plan.echo("interrupted: the study keeps every trial; run the same command to continue")
        raise click.exceptions.Exit(130)
    if runner.failing():
        raise ZooError(
            f"stopped after {runner.failures_in_a_row} failed trials in a row; the last: "
            f"{runner.last_error} (logs in {plan.folder})"
        )
    show(study_document(sweep, study), as_json, _render_study)


# ------------------------------------------------------------------------------- show
def study_document(sweep: Any, study: Any, importances: bool = True) -> dict[str, Any]:
    """A study as plain data: what it searches, its trials, the best, the importances.
    Trials given back unrun (handed out past --trials) are no part of it."""
    trials = [_trial_doc(t) for t in study.get_trials(deepcopy=False) if not sweep.given_back(t)]
    best = sweep.best_trial(study)
    counts: dict[str, int] = {}
    for t in trials:
        counts[t["state"]] = counts.get(t["state"], 0) + 1
    return {
        "study": study.study_name,
        "direction": study.direction.name.lower(),
        "search": study.user_attrs.get("zoo", {}),
        "counts": counts,
        "best": _trial_doc(best) if best is not None else None,
        "importances": _importances(study) if importances else None,
        "trials": trials,
    }


def _trial_doc(trial: Any) -> dict[str, Any]:
    seconds = None
    if trial.datetime_start and trial.datetime_complete:
        seconds = round((trial.datetime_complete - trial.datetime_start).total_seconds(), 1)
    state = trial.state.name.lower()
    if trial.user_attrs.get("interrupted"):
        state = "interrupted"
    return {
        "number": trial.number,
        "state": state,
        "value": trial.value,
        "valid": trial.user_attrs.get("valid") or {},  # the headline metrics
        "params": trial.params,
        "seconds": seconds,
        "steps_reported": len(trial.intermediate_values),
        "error": trial.user_attrs.get("error"),
        "models": [m for m in trial.user_attrs.get("models", []) if Path(m).exists()],
        "seed_values": trial.user_attrs.get("seed_values"),
    }


def _importances(study: Any) -> dict[str, float] | str:
    """Optuna's parameter importances (its default evaluator: PED-ANOVA in Optuna 5), or
    why there are none yet."""
    import optuna

    complete = study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,))
    if len(complete) < 2:
        return "need at least 2 finished trials"
    try:
        with warnings.catch_warnings():  # "importances will be equal" and the like
            warnings.simplefilter("ignore")
            found = optuna.importance.get_param_importances(study)
    except (ValueError, RuntimeError) as e:
        return f"not computed: {e}"
    return {k: round(float(v), 4) for k, v in found.items() if math.isfinite(v)}


def _render_study(doc: dict[str, Any]) -> Iterable[str]:
    search = doc["search"]
    counts = ", ".join(f"{n} {state}" for state, n in sorted(doc["counts"].items()))
    yield (
        f"study {doc['study']}: {search.get('architecture')} on {search.get('dataset')}, "
        f"{doc['direction']} valid {search.get('metric')}; {len(doc['trials'])} trials ({counts})"
    )
    for key, spelled in search.get("space", {}).items():
        yield f"  search {key} = {spelled}"
    best = doc["best"]
    if best is not None:
        settings = " ".join(f"{k}={fmt(v)}" for k, v in best["params"].items())
        yield f"best: trial {best['number']}, valid {search.get('metric')} {fmt(best['value'])}: {settings}"
        for model in best["models"]:
            yield f"  model: {model}"
    imp = doc["importances"]
    if isinstance(imp, dict):
        yield "importances: " + ", ".join(f"{k} {v:.2f}" for k, v in imp.items())
    elif imp:
        yield f"importances: {imp}"
    params = list(search.get("space", {}))
    recorded = dict.fromkeys(k for t in doc["trials"] for k in t["valid"])
    shown = [k for k in recorded if k != search.get("metric")]  # the objective is VALUE
    rows = [
        [
            str(t["number"]),
            t["state"],
            "-" if t["value"] is None else fmt(t["value"]),
            *[fmt(t["valid"][k]) if k in t["valid"] else "-" for k in shown],
            "-" if t["seconds"] is None else f"{t['seconds']:.0f}",
        ]
        + [fmt(t["params"][k]) if k in t["params"] else "-" for k in params]
        for t in doc["trials"]
    ]
    yield table(rows, ["TRIAL", "STATE", "VALUE", *shown, "SECONDS", *params])


@sweep_group.command("show")
@click.argument("study_name", metavar="[STUDY]", required=False)
@option("--storage", help="Optuna storage URL (default: SQLite in zoo's data folder).")
@json_option
def show_command(study_name: str | None, storage: str | None, as_json: bool) -> None:
    """A study's trials (settings, value, state, time), the best settings and model, and
    Optuna's parameter importances; without STUDY, the studies in the storage."""
    sweep, storage_of = _sweep_modules()
    import optuna

    url = storage or storage_of.default_storage(create=False)
    names: list[str] = []
    if storage_of.storage_to_read(url, named=storage is not None):  # else: create nothing
        store = storage_of.open_storage(url)
        summaries = optuna.get_all_study_summaries(store, include_best_trial=False)
        names = [s.study_name for s in summaries]
    if study_name is None:
        show({"storage": storage_of.shown_url(url), "studies": names}, as_json, _render_studies)
        return
    if study_name not in names:
        known = ", ".join(names) or "none"
        raise UsageError(
            f"no study {study_name!r} in {storage_of.shown_url(url)} (studies: {known})"
        )
    study = optuna.load_study(study_name=study_name, storage=store)
    show(study_document(sweep, study), as_json, _render_study)


def _render_studies(doc: dict[str, Any]) -> Iterable[str]:
    if not doc["studies"]:
        yield f"no studies in {doc['storage']}"
    yield from doc["studies"]
