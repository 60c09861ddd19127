"""What is installed and what a file holds: `zoo list`, `zoo info`, `zoo plugins`, `zoo inspect`.

All but `zoo info` (which builds the architecture to count its parameters) are torch-free.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable
from typing import Any

import click

from zoo.cli.base import complete_names, json_option, option, show, warn_problems
from zoo.core import config as cfg
from zoo.core.errors import ZooError
from zoo.core.formatting import clean, scores_line, table
from zoo.core.modelfile import parameter_count
from zoo.core.registry import get_registry


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


@click.command("list")
@click.argument("pattern", required=False, shell_complete=complete_names("any"))
@option("--task", help="Only what serves this task.")
@json_option
def list_command(pattern: str | None, task: str | None, as_json: bool) -> None:
    """List architectures and datasets (PATTERN is a glob, e.g. 'lstm*')."""
    doc = _list_doc(pattern, task)
    warn_problems()
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
    rows = [[f["name"], f["type"], json.dumps(clean(f["default"])), f["help"]] for f in fields]
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
    from zoo.core.settings import resolve

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


@click.command("info")
@click.argument("name", shell_complete=complete_names("any"))
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


# ---------------------------------------------------------------------------------- inspect
def _render_inspect(info: dict[str, Any]) -> Iterable[str]:
    plugin, names = info["plugin"], get_registry().headline(info["architecture"])
    yield f"{info['path']}: zoo model format {info['format_version']}, written by zoo {info['zoo_version']}"
    yield f"  architecture: {info['architecture']} ({plugin.get('distribution')} {plugin.get('version')})"
    yield f"  task:         {info['task']}"
    yield f"  dataset:      {info['dataset']}"
    n = sum(math.prod(t["shape"]) for t in info["tensors"].values())
    yield f"  tensors:      {len(info['tensors'])} ({n:,} values)"
    yield f"  parameters:   {parameter_count(info):,} (buffers not counted)"
    for key in ("config", "data_config", "train_config"):
        yield f"  {key + ':':13s} " + json.dumps(info[key], sort_keys=True)
    state = info["data_state"]
    yield "  data_state:   " + ", ".join(
        f"{k} ({len(v)})" if isinstance(v, (list, dict)) else k for k, v in state.items()
    )
    for split, scores in info["metrics"].items():
        if isinstance(scores, dict) and split != "training":
            yield f"  metrics {split}: " + scores_line(scores, names)
    training = info["metrics"].get("training")
    if isinstance(training, dict):
        yield (
            f"  training:     {training.get('steps')} steps, {training.get('epochs')} epochs, "
            f"{training.get('seconds')} s, {training.get('threads')} thread(s) on "
            f"{training.get('device')}"
        )


@click.command("inspect")
@click.argument("model_file", metavar="FILE", type=click.Path())
@json_option
def inspect_command(model_file: str, as_json: bool) -> None:
    """Show what a model file holds (names, configs, metrics, tensors) without loading it."""
    from zoo.core.modelfile import read_info

    info = read_info(model_file)
    show(info if as_json else {**info, "path": model_file}, as_json, _render_inspect)


# ---------------------------------------------------------------------------------- plugins
def _plugins_doc() -> dict[str, Any]:
    reg = get_registry()
    ctx = click.get_current_context()
    ctx.find_root().command.list_commands(ctx)  # loads the register_commands hooks
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


@click.command("plugins")
@json_option
def plugins_command(as_json: bool) -> None:
    """Loaded plugins, their versions and hooks, and any that failed to load."""
    doc = _plugins_doc()
    if as_json:
        for failure in doc["failures"]:
            del failure["describe"]
    show(doc, as_json, _render_plugins)
