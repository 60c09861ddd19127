"""The run log on the command line: what `zoo run` and `zoo eval` record (`log_run`,
`log_eval`), and the commands that read it back, `zoo runs` and `zoo compare`.

Imported by zoo/cli/, which registers the commands; nothing here imports torch, so `zoo
runs` and `zoo compare` start as fast as `zoo list`. The storage is zoo/features/runlog.py, the
comparison zoo/features/compare.py; docs/runlog.md explains both.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import click

from zoo.cli.base import command_arguments, complete_names, json_option, option, show
from zoo.core.errors import UsageError, ZooError
from zoo.core.formatting import fmt, scores_line, table
from zoo.core.registry import get_registry
from zoo.core.version import __version__
from zoo.training import distributed


# ------------------------------------------------------------------------------ recording
def _common_fields(ctx: click.Context) -> dict[str, Any]:
    return {
        "arguments": [ctx.info_name, *command_arguments(ctx)],
        "zoo_version": __version__,
        "plugins": {name: p.version for name, p in sorted(get_registry().plugins.items())},
    }


def _header(path: str | None) -> dict[str, str]:
    """A model file's (or checkpoint's) metadata, read without checks; {} if unreadable."""
    from zoo.core.modelfile import read_header

    try:
        return read_header(path)[0] if path else {}
    except ZooError:
        return {}


def log_run(ctx: click.Context, no_log: bool) -> contextlib.AbstractContextManager[Any]:
    """Record this `zoo run`, unless --no-log, or this is not rank 0 of several processes
    (the launcher never gets here: it exits once torchrun is done)."""
    from zoo.features import runlog

    if no_log or not distributed.from_environment().writer:
        return runlog.recording("run", enabled=False)
    p = ctx.params
    saved = _header(p["resume_file"])
    name = p["name"] or saved.get("architecture")
    dataset = p["dataset"] or saved.get("dataset")
    if dataset is None and name in get_registry().architectures:
        dataset = get_registry().architecture(name).spec.default_dataset
    paths = {"path": p["data_path"], "dev_path": p["dev_path"], "test_path": p["test_path"]}
    data = runlog.data_paths(paths)
    return runlog.recording(
        "run",
        architecture=name,
        dataset=dataset,
        data=data,
        data_fingerprint=runlog.data_fingerprint(data),
        threads=p["threads"],
        device=p["device"],
        processes=distributed.from_environment().world_size,
        **_sweep_fields(),
        **_common_fields(ctx),
    )


def _sweep_fields() -> dict[str, Any]:
    """The study and trial number of a run started by `zoo sweep`."""
    from zoo.features.sweep_report import trial_of_environment

    trial = trial_of_environment()
    return {"study": trial.get("study"), "trial": trial["trial"]} if trial else {}


def log_run_result(
    record: Any, doc: dict[str, Any], status: str = "finished", error: str | None = None
) -> None:
    """Complete a `zoo run`'s row from its result document (`RunResult.as_dict`). The model
    is saved by now: a mistake here costs a warning, never the command's output. `status`
    "failed" with its `error`: what came after the save failed (--metrics-out)."""
    from zoo.features import runlog

    try:
        fields = _result_fields(record, doc)
    except Exception as e:
        runlog.warn(f"run log: cannot record the result ({type(e).__name__}: {e})")
        fields = {}
    record.end(status, **fields, **({"error": error} if error else {}))


def _result_fields(record: Any, doc: dict[str, Any]) -> dict[str, Any]:
    from zoo.features import runlog

    training = dict(doc.get("training") or {})
    history = training.pop("history", None)
    fields: dict[str, Any] = {}
    data = runlog.data_paths(doc["settings"]["data"])
    if data and data != record.fields.get("data"):  # paths from --set, or a default file
        fields.update(data=data, data_fingerprint=runlog.data_fingerprint(data))
    return dict(
        task=doc.get("task"),
        settings=doc["settings"],
        metrics=doc["metrics"],
        training=training,
        history=history,
        parameters=doc.get("parameters"),
        model_path=os.path.abspath(doc["path"]),
        model_sha256=_sha256(doc["path"]),
        threads=training.get("threads"),
        device=training.get("device"),
        processes=training.get("processes") or distributed.from_environment().world_size,
        **fields,
    )


def _sha256(path: str) -> str | None:
    from zoo.features.runlog import file_sha256

    try:
        return file_sha256(path)
    except OSError:
        return None


def log_eval(ctx: click.Context, no_log: bool) -> contextlib.AbstractContextManager[Any]:
    """Record this `zoo eval`: the model file evaluated, its settings, the data read."""
    import json

    from zoo.features import runlog

    if no_log:
        return runlog.recording("eval", enabled=False)
    p = ctx.params
    meta = _header(p["model_file"])

    def saved(key: str) -> Any:
        with contextlib.suppress(KeyError, ValueError, TypeError):
            return json.loads(meta[key])
        return {}

    data_config = saved("data_config")
    data = runlog.data_paths({"path": p["data_path"]} if p["data_path"] else data_config)
    return runlog.recording(
        "eval",
        architecture=meta.get("architecture"),
        dataset=p["dataset"] or meta.get("dataset"),
        task=meta.get("task"),
        settings={"model": saved("config"), "data": data_config, "train": saved("train_config")},
        data=data,
        data_fingerprint=runlog.data_fingerprint(data),
        model_path=os.path.abspath(p["model_file"]),
        model_sha256=_sha256(p["model_file"]) if meta else None,
        device=p["device"],
        processes=1,
        **_common_fields(ctx),
    )


# ---------------------------------------------------------------------------------- runs
def read_log() -> Any:
    """The run log for reading, or None when nothing was logged yet; other problems are an
    `Error:` line (a reader has nothing to go on without it)."""
    from zoo.features.runlog import RunLog, RunLogError, default_path

    path = default_path()
    try:
        if not path.exists():
            return None
        if not path.is_file():
            raise RunLogError(
                f"run log {path}: is a folder, not zoo's SQLite run log; move it away or set "
                "ZOO_HOME to another folder"
            )
    except OSError as e:  # the folder cannot be searched (permissions)
        raise RunLogError(f"run log {path}: cannot read it: {e.strerror or e}") from None
    return RunLog.open(create=False)


class Sources:
    """The trainings `zoo compare` and `zoo plot` are given: a model FILE, or a run ID of
    the run log (`12` or `#12`; a file of that name wins). The log is opened once, when first
    needed, and closed at the end of the `with` block."""

    def __init__(self) -> None:
        self.log: Any = None
        self.opened = False

    def __enter__(self) -> Sources:
        return self

    def __exit__(self, *exc: object) -> None:
        if self.log is not None:
            self.log.close()

    def run_log(self) -> Any:
        if not self.opened:
            self.log, self.opened = read_log(), True
        return self.log

    def read(self, source: str) -> tuple[str, dict[str, Any]]:
        """("run", the run log's row) or ("file", the model file's `read_info`)."""
        from zoo.core.modelfile import read_info

        number = source.removeprefix("#")
        if number.isdigit() and not os.path.exists(source):
            log = self.run_log()
            run = log.get(int(number)) if log is not None else None
            if run is None:
                raise UsageError(f"{source}: no such model file or run id (`zoo runs` lists runs)")
            return "run", run
        return "file", read_info(source)


def main_score(run: dict[str, Any]) -> str:
    """`test bpc 2.4260`: the architecture's monitor metric on the test split (else valid)."""
    metric = get_registry().monitor(run.get("architecture"))[0]
    metrics = run.get("metrics") if isinstance(run.get("metrics"), dict) else {}
    for split in ("test", "valid", *metrics):
        value = (metrics.get(split) or {}).get(metric)
        if value is not None:
            return f"{split} {metric} {fmt(value)}"
    return "-"


def _render_runs(doc: list[dict[str, Any]]) -> Iterable[str]:
    if not doc:
        yield "no runs"
        return
    rows = [
        [
            str(r["id"]),
            (r["started"] or "").replace("T", " ")[:16],
            r["command"],
            r["status"],
            r["architecture"] or "-",
            r["dataset"] or "-",
            main_score(r),
            "-" if r["seconds"] is None else f"{r['seconds']:.1f}",
            _shorter(r["model_path"]),
        ]
        for r in doc
    ]
    headers = ["ID", "STARTED (UTC)", "COMMAND", "STATUS", "ARCHITECTURE", "DATASET"]
    yield table(rows, [*headers, "SCORE", "SECONDS", "MODEL"])


def _shorter(path: str | None) -> str:
    """A path relative to the current folder when it lies below it."""
    if not path:
        return "-"
    with contextlib.suppress(ValueError):
        return str(Path(path).relative_to(Path.cwd()))
    return path


@click.group("runs", invoke_without_command=True)
@option(
    "--arch",
    "architecture",
    help="Only runs of this architecture.",
    shell_complete=complete_names("architecture"),
)
@option("--dataset", help="Only runs on this dataset.", shell_complete=complete_names("dataset"))
@option(
    "--status",
    type=click.Choice(
        ["running", "finished", "interrupted", "diverged", "failed", "pruned", "killed"]
    ),
    help="Only runs that ended so (killed: the process vanished without a word; pruned: a "
    "sweep stopped the trial).",
)
@option(
    "-n",
    "--limit",
    type=click.IntRange(min=1),
    default=20,
    show_default=True,
    help="How many runs, latest first.",
)
@option("--study", help="Only the trials of this sweep (`zoo sweep show` lists studies).")
@json_option
@click.pass_context
def runs_command(
    ctx: click.Context,
    architecture: str | None,
    dataset: str | None,
    status: str | None,
    limit: int,
    study: str | None,
    as_json: bool,
) -> None:
    """The latest runs of `zoo run` and `zoo eval` from the run log (docs/runlog.md);
    `zoo runs show ID` shows one. The log is $ZOO_HOME/runs.sqlite, else in the user's
    data folder; `--no-log` on `zoo run`/`zoo eval` leaves a command out."""
    if ctx.invoked_subcommand is not None:
        return
    log = read_log()
    found = []
    if log is not None:
        found = log.find(
            architecture=architecture, dataset=dataset, status=status, study=study, limit=limit
        )
        log.close()
    show(found, as_json, _render_runs)


def _render_run(run: dict[str, Any]) -> Iterable[str]:
    import shlex

    names = get_registry().headline(run["architecture"])
    yield f"run {run['id']}: {run['status']}" + (f": {run['error']}" if run["error"] else "")
    yield "  command:      zoo " + shlex.join(run["arguments"] or [run["command"]])
    yield f"  started:      {run['started']} on {run['host']} (pid {run['pid']}) in {run['cwd']}"
    seconds = "" if run["seconds"] is None else f" ({run['seconds']:.1f} s)"
    yield f"  ended:        {run['ended'] or '-'}{seconds}"
    yield f"  architecture: {run['architecture']} on {run['dataset']} ({run['task'] or '-'})"
    files = ", ".join(f"{role} {path}" for role, path in (run["data"] or {}).items())
    yield f"  data files:   {files or '-'}"
    yield f"  fingerprint:  {run['data_fingerprint'] or '-'}"
    yield f"  model:        {run['model_path'] or '-'} (sha256 {run['model_sha256'] or '-'})"
    processes = f", {run['processes']} process(es)" if run["processes"] else ""
    yield f"  device:       {run['device'] or '-'}, {run['threads'] or '-'} thread(s){processes}"
    plugins = ", ".join(f"{k} {v}" for k, v in (run["plugins"] or {}).items())
    yield f"  versions:     zoo {run['zoo_version']}; {plugins}"
    for kind, values in (run["settings"] or {}).items():
        yield f"  {kind + ':':13s} " + " ".join(f"{k}={v}" for k, v in values.items())
    for split, scores in (run["metrics"] or {}).items():
        if isinstance(scores, dict):
            yield f"  metrics {split}: " + scores_line(scores, names)
    if run["history"]:
        yield f"  history:      {len(run['history'])} entries (--json shows them)"


@runs_command.command("show")
@click.argument("run_id", metavar="ID", type=int)
@json_option
def runs_show_command(run_id: int, as_json: bool) -> None:
    """Everything the log holds about run ID: command, settings, metrics, versions, data."""
    log = read_log()
    run = log.get(run_id) if log is not None else None
    if log is not None:
        log.close()
    if run is None:
        raise UsageError(f"run {run_id}: no such run in the run log (`zoo runs` lists them)")
    show(run, as_json, _render_run)


# ------------------------------------------------------------------------------- compare
def _records(sources: tuple[str, ...]) -> list[dict[str, Any]]:
    """One comparison record per FILE or run ID, in the order given (a study: its trials)."""
    from zoo.features import compare

    records = []
    with Sources() as found:
        for source in sources:
            if source.startswith(STUDY_PREFIX):
                records += _study_records(found.run_log(), source)
                continue
            kind, item = found.read(source)
            if kind == "run":
                records.append(compare.from_run(item))
            else:
                records.append(compare.from_model_info(source, item))
    return records


STUDY_PREFIX = "study:"


def _study_records(log: Any, source: str) -> list[dict[str, Any]]:
    """`study:NAME`: the finished trials of a sweep, from the run log."""
    from zoo.features import compare

    name = source.removeprefix(STUDY_PREFIX)
    runs = log.find(study=name, status="finished") if log is not None else []
    if not runs:
        raise UsageError(f"{source}: no finished trials of study {name!r} in the run log")
    return [compare.from_run(run) for run in reversed(runs)]


def _render_compare(style: str) -> Any:
    from zoo.features import compare

    def render(doc: dict[str, Any]) -> Iterable[str]:
        monitor = doc["monitor"]
        if style == "csv":
            import csv
            import io

            buffer = io.StringIO()
            csv.writer(buffer, lineterminator="\n").writerows(compare.csv_rows(doc))
            yield buffer.getvalue().rstrip("\n")
            return
        headers, rows = compare.headers_and_cells(doc, fmt)
        if style == "markdown":
            yield compare.markdown(headers, rows)
            return
        yield table(rows, headers)
        order = "lowest" if monitor["mode"] == "min" else "highest"
        yield f"(best first: {order} {monitor['split']} {monitor['metric']})"

    return render


@click.command("compare")
@click.argument("sources", metavar="FILE|ID|study:NAME...", nargs=-1, required=True)
@option(
    "--format",
    "style",
    type=click.Choice(["table", "markdown", "csv"]),
    default="table",
    show_default=True,
    help="markdown and csv for papers and docs.",
)
@option(
    "--metric",
    "metrics",
    multiple=True,
    help="Show only this metric (repeatable; default: every score, the monitored one first).",
)
@json_option
def compare_command(
    sources: tuple[str, ...], style: str, metrics: tuple[str, ...], as_json: bool
) -> None:
    """Compare trained models: model FILEs, run IDs of the run log (`zoo runs`), and
    `study:NAME` for every finished trial of a sweep.

    Shows the settings that differ and the valid and test metrics; runs that differ only in
    their seed are pooled into mean ± sd (n); best first by the architecture's monitored
    metric. Reads model files without loading them (no torch).
    """
    from zoo.features import compare

    records = _records(sources)
    architecture = records[0]["architecture"]
    reg = get_registry()
    doc = compare.compare(
        records, reg.monitor(architecture), list(metrics), reg.headline(architecture)
    )
    show(doc, as_json, _render_compare(style))
