"""Run files: `zoo run --config run.toml` reads a run's options and settings from a TOML file,
and `zoo run ... --print-config` writes one that reproduces the run.

A run file holds the command's options as top-level keys (`architecture`, `dataset`, `data`,
`epochs`, `threads`, `out`, ...) and what `--set` takes in a `[settings]` table. The command
line wins: an option given on the command line (or in its ZOO_RUN_* variable) beats the file's
key, and `--set k=v` beats `[settings] k`. Paths in the file are relative to the current
folder, as on the command line, so a file means the same wherever it is kept.

The file's options reach click as the context's `default_map`, so they pass through click's
own type and range checks and `ctx.get_parameter_source` reports them as DEFAULT_MAP; the
launcher hands `--config` on to every worker, which reads the file again. Nothing here imports
torch: `zoo run --help` stays quick.
"""

from __future__ import annotations

import json
import math
import sys
import typing
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import click

from zoo.core import config as cfg
from zoo.core import settings as settings_mod
from zoo.core.config import suggest
from zoo.core.errors import UsageError
from zoo.core.registry import get_registry

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - the tomli backport has the same API
    import tomli as tomllib

# Top-level keys of a run file and the `zoo run` parameter each one fills.
OPTIONS = {
    "architecture": "name",
    "dataset": "dataset",
    "data": "data_path",
    "dev": "dev_path",
    "test": "test_path",
    "out": "out",
    "checkpoint_every": "checkpoint_every",
    "epochs": "epochs",
    "steps": "steps",
    "batch_size": "batch_size",
    "lr": "lr",
    "seed": "seed",
    "device": "device",
    "threads": "threads",
    # `zoo sweep --config`: its own options
    "trials": "trials",
    "jobs": "jobs",
    "seeds": "seeds",
    "storage": "storage",
    "study": "study_name",
    "models": "models_dir",
    "pruner": "pruner",
    "prune_after": "prune_after",
    "sampler_seed": "sampler_seed",
}
SETTINGS = "settings"
_META = "zoo.runconfig"  # where the file's [settings] wait in ctx.meta for run_command


@dataclass(frozen=True)
class RunFile:
    """A read run file: its path, top-level options (by run_command parameter) and settings."""

    path: str
    options: dict[str, Any]
    settings: dict[str, Any]


def read(path: str) -> dict[str, Any]:
    """The TOML document at `path`; a missing or malformed file is one UsageError."""
    try:
        with open(path, "rb") as f:
            return tomllib.load(f)
    except FileNotFoundError:
        raise UsageError(f"--config {path}: no such file") from None
    except IsADirectoryError:
        raise UsageError(f"--config {path}: is a folder, expected a TOML file") from None
    except OSError as e:
        raise UsageError(f"--config {path}: cannot read it: {e.strerror}") from None
    except UnicodeDecodeError:
        raise UsageError(f"--config {path}: not UTF-8 text, expected a TOML file") from None
    except tomllib.TOMLDecodeError as e:
        # the parser's message ends with "(at line L, column C)"
        raise UsageError(f"--config {path}: not valid TOML: {e}") from None
    except RecursionError:  # the parser recurses once per level of nesting
        raise UsageError(
            f"--config {path}: not valid TOML for zoo: arrays or tables nested too deeply"
        ) from None


def _flat_settings(path: str, table: Any) -> dict[str, Any]:
    """`[settings]` as flat keys: a dotted key (`model.hidden_size = 8`), which TOML reads as
    a nested table, becomes 'model.hidden_size' again, as `--set` spells it."""
    if not isinstance(table, dict):
        raise UsageError(f"{path}: 'settings' must be a table ([settings]), not a value")
    out: dict[str, Any] = {}
    for key, value in table.items():
        if key in settings_mod.KINDS and isinstance(value, dict):
            out.update({f"{key}.{name}": v for name, v in value.items()})
        else:
            out[key] = value
    return out


def _toml_type_problem(param: click.Parameter, value: Any) -> str | None:
    """What a TOML value should have been, if it lacks the option's type (a string for a
    number, 3.5 for an integer); None when it is fine."""
    if isinstance(param.type, click.types.IntParamType):
        ok = isinstance(value, int) and not isinstance(value, bool)
        return None if ok else "an integer"
    if isinstance(param.type, click.types.FloatParamType):
        ok = isinstance(value, (int, float)) and not isinstance(value, bool)
        return None if ok else "a number"
    return None if isinstance(value, str) else "a string"


def _options(ctx: click.Context, path: str, doc: Mapping[str, Any]) -> dict[str, Any]:
    """The file's top-level keys as run_command parameters, each converted and checked by the
    option's own click type (so `epochs = -1` fails as `--epochs -1` would)."""
    params = {p.name: p for p in ctx.command.params}
    keys = {key: name for key, name in OPTIONS.items() if name in params}  # this command's
    out: dict[str, Any] = {}
    for key, value in doc.items():
        if key == SETTINGS:
            continue
        if key not in keys:
            valid = [*keys, SETTINGS]
            raise UsageError(
                f"{path}: unknown key {key!r}{suggest(key, valid)}; valid: {', '.join(valid)} "
                "(model, data and training settings go in [settings])"
            )
        param = params[keys[key]]
        expected = _toml_type_problem(param, value)
        if expected is not None:
            raise UsageError(f"{path}: {key} = {value!r}: expected {expected}")
        try:
            out[param.name] = param.type_cast_value(ctx, value)
        except click.BadParameter as e:
            raise UsageError(f"{path}: {key} = {value!r}: {e.message}") from None
    return out


def load(ctx: click.Context, param: click.Parameter, path: str | None) -> str | None:
    """The `--config` option's callback (eager, so it runs before the other options): read the
    file and make its options the defaults the command line overrides."""
    if path is None:
        return None
    doc = read(path)
    options = _options(ctx, path, doc)
    found = RunFile(path, options, _flat_settings(path, doc.get(SETTINGS, {})))
    ctx.meta[_META] = found
    ctx.default_map = {**(ctx.default_map or {}), **options}
    return path


def setting_converter(name: str, dataset: str | None) -> Callable[..., Any]:
    """`convert(key, value, where=None)`: a setting of architecture `name`, its dataset or
    training, converted to its type and checked against its limits, as `--set` would be."""
    reg = get_registry()
    spec = reg.architecture(name).spec
    ds_spec = reg.dataset(dataset or spec.default_dataset).spec
    classes = {"model": spec.config, "data": ds_spec.config, "train": settings_mod.TrainConfig}
    infos = {kind: {f.name: f for f in cfg.fields(c)} for kind, c in classes.items()}
    tables = {kind: list(names) for kind, names in infos.items()}

    def convert(key: str, value: Any, where: str | None = None) -> Any:
        kind, setting = settings_mod.route(key, tables, where=where)
        return cfg.convert(infos[kind][setting], value, where=where)

    return convert


def check_settings(ctx: click.Context, name: str, dataset: str | None) -> None:
    """Each `[settings]` key of the run file (if any) names a setting of architecture `name`,
    its dataset or training, with that setting's type and limits; errors name the file."""
    found = run_file(ctx)
    if found is None:
        return
    convert = setting_converter(name, dataset)
    where = f"{found.path} [settings]"
    for key, value in found.settings.items():
        convert(key, value, where)


def run_file(ctx: click.Context) -> RunFile | None:
    """The run file `--config` read for this command, if any."""
    return ctx.meta.get(_META)


def run_settings(
    ctx: click.Context, assignments: tuple[str, ...], explicit: Mapping[str, Any]
) -> dict[str, Any]:
    """The settings of `zoo run`: the file's [settings], then `--set`, then the dedicated
    options (--epochs, ...), later ones winning; a dedicated option that only came from the
    file does not beat a `--set` of the same setting on the command line."""
    found = run_file(ctx)
    from_set = cfg.parse_assignments(assignments)
    settings: dict[str, Any] = dict(found.settings) if found else {}
    for key, value in from_set.items():
        settings.pop(key, None)
        settings[key] = value
    for key, value in explicit.items():
        if value is None:
            continue
        from_file = ctx.get_parameter_source(key) == click.core.ParameterSource.DEFAULT_MAP
        if from_file and (key in from_set or f"train.{key}" in from_set):
            continue
        settings.pop(key, None)
        settings.pop(f"train.{key}", None)
        settings[f"train.{key}"] = value
    return settings


# ------------------------------------------------------------------------------- writing
def _toml_string(text: str) -> str:
    # JSON's escapes are TOML's, except that TOML wants DEL escaped too
    return json.dumps(text, ensure_ascii=False).replace("\x7f", "\\u007f")


def toml_value(value: Any) -> str:
    """`value` (str, bool, int, float, list, tuple or dict of those) as a TOML value."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if math.isnan(value):
            return "nan"
        if math.isinf(value):
            return "inf" if value > 0 else "-inf"
        return repr(value)
    if isinstance(value, str):
        return _toml_string(value)
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(toml_value(v) for v in value) + "]"
    if isinstance(value, dict):
        items = (f"{_toml_string(str(k))} = {toml_value(v)}" for k, v in value.items())
        return "{" + ", ".join(items) + "}"
    raise TypeError(f"cannot write {type(value).__name__} {value!r} as TOML")


def _none_value(info: cfg.FieldInfo) -> str | None:
    """How to write a setting resolved to None: 'none' where the type allows None (the file
    reader converts it back), else nothing (the setting's default)."""
    if type(None) in typing.get_args(info.type):
        return '"none"'
    return None


def _setting_lines(resolved: settings_mod.Settings, skip: Mapping[str, set[str]]) -> list[str]:
    """One `key = value` line per resolved setting, prefixed (`model.x`) where the bare name
    belongs to more than one config."""
    configs = {"model": resolved.model, "data": resolved.data, "train": resolved.train}
    infos = {kind: cfg.fields(type(c)) for kind, c in configs.items()}
    owners: dict[str, int] = {}
    for fields in infos.values():
        for f in fields:
            owners[f.name] = owners.get(f.name, 0) + 1
    lines = []
    for kind, fields in infos.items():
        lines.append(f"# {kind}")
        for f in fields:
            if f.name in skip.get(kind, set()):
                continue
            value = getattr(configs[kind], f.name)
            text = toml_value(value) if value is not None else _none_value(f)
            key = f.name if owners[f.name] == 1 else f"{kind}.{f.name}"
            lines.append(f"{key} = {text}" if text is not None else f"# {key}: none (default)")
    return lines


def to_toml(options: Mapping[str, Any], resolved: settings_mod.Settings) -> str:
    """A run file that reproduces a run: its options (run-file keys; None left out) and every
    model, data and training setting resolved to its value. Dataset paths are written as the
    top-level data/dev/test keys, not again as settings."""
    lines = ["# zoo run --config FILE: reproduces this run (written by --print-config)"]
    for key, value in options.items():
        if value is not None:
            lines.append(f"{key} = {toml_value(value)}")
    paths = {"path": "data", "dev_path": "dev", "test_path": "test"}
    lines += ["", f"[{SETTINGS}]"]
    given = {field for field, key in paths.items() if options.get(key) is not None}
    lines += _setting_lines(resolved, {"data": given})
    return "\n".join(lines) + "\n"


def print_config(
    ctx: click.Context, assignments: tuple[str, ...], explicit: Mapping[str, Any]
) -> str:
    """The run file of this `zoo run` (`--print-config`): its settings resolved as `zoo.create`
    resolves them, without reading data or training."""
    p = ctx.params
    if p["resume_file"] is not None:
        raise UsageError("--print-config: a resumed run's settings come from its checkpoint")
    if p["name"] is None:
        raise UsageError("--print-config: give the architecture NAME (`zoo list`)")
    reg = get_registry()
    spec = reg.architecture(p["name"]).spec
    dataset = p["dataset"] or spec.default_dataset
    ds_spec = reg.dataset(dataset).spec
    reg.check_compatible(p["name"], dataset)
    check_settings(ctx, p["name"], dataset)
    paths = {"--data": p["data_path"], "--dev": p["dev_path"], "--test": p["test_path"]}
    user = settings_mod.with_paths(run_settings(ctx, assignments, explicit), paths, ds_spec)
    resolved = settings_mod.resolve(spec, ds_spec, user)
    options = {"architecture": p["name"], "dataset": dataset}
    options.update({key: p[OPTIONS[key]] for key in ("data", "dev", "test", "out")})
    options["checkpoint_every"] = p["checkpoint_every"]
    return to_toml(options, resolved)
