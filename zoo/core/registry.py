"""The registry: which architectures and datasets exist, and which plugin provided each.

Plugins are found through the `zoo` entry-point group and registered with one pluggy manager;
each hook is called plugin by plugin, so a plugin that fails to import, raises in a hook or
registers something malformed is recorded as a failure and the others still work. Two plugins
registering the same name make that name unusable, with an error that names both distributions.

Specs are plain data. The code behind them (`implementation`, `loader`) is named by a dotted
path and imported only when first used, so listing stays fast and torch-free. Model files never
name code: a file says "lstm-tagger" and the registry decides what that means.
"""

from __future__ import annotations

import dataclasses
import fnmatch
import importlib
import importlib.metadata
import re
import traceback
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import pluggy

from zoo.core import hookspecs
from zoo.core.config import suggest
from zoo.core.errors import PluginError, UsageError
from zoo.core.specs import Architecture, Dataset

ENTRY_POINT_GROUP = "zoo"
NAME_PATTERN = re.compile(r"^[a-z0-9][a-z0-9._-]{0,63}$")


@dataclass(frozen=True)
class Plugin:
    """A loaded plugin and where it came from."""

    name: str
    distribution: str
    version: str
    hooks: tuple[str, ...]

    @property
    def label(self) -> str:
        return f"{self.distribution} {self.version}"


@dataclass(frozen=True)
class PluginFailure:
    """A plugin (or one of its registrations) that could not be used, and why."""

    name: str
    distribution: str
    version: str
    stage: str
    error: str

    def describe(self) -> str:
        return f"plugin {self.name!r} ({self.distribution} {self.version}) failed in {self.stage}: {self.error}"


@dataclass(frozen=True)
class Entry:
    """A registered spec together with the plugin that registered it."""

    spec: Any
    plugin: Plugin


def _error_text(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}".strip()


def _check_spec(spec: Any, kind: type) -> None:
    """Raise TypeError/ValueError when a plugin registers something malformed."""
    if not isinstance(spec, kind):
        raise TypeError(f"expected a zoo.{kind.__name__}, got {type(spec).__name__}")
    if not isinstance(spec.name, str) or not NAME_PATTERN.match(spec.name):
        raise ValueError(f"name {spec.name!r} must be lower-case letters, digits, '-', '.' or '_'")
    if not isinstance(spec.description, str):
        raise TypeError(f"{spec.name}: description must be a string")
    if not (isinstance(spec.config, type) and dataclasses.is_dataclass(spec.config)):
        raise TypeError(f"{spec.name}: config must be a dataclass type")
    if kind is Architecture:
        if (
            not isinstance(spec.tasks, tuple)
            or not spec.tasks
            or not all(isinstance(t, str) for t in spec.tasks)
        ):
            raise TypeError(f"{spec.name}: tasks must be a non-empty tuple of strings")
        if not isinstance(spec.default_dataset, str):
            raise TypeError(f"{spec.name}: default_dataset must be a dataset name")
        if spec.monitor[1] not in ("min", "max"):
            raise ValueError(f"{spec.name}: monitor must be (metric, 'min' or 'max')")
        if not isinstance(spec.headline, tuple) or not all(
            isinstance(m, str) for m in spec.headline
        ):
            raise TypeError(f"{spec.name}: headline must be a tuple of metric names")
        if isinstance(spec.implementation, Mapping):
            stray = sorted(set(spec.implementation) - set(spec.tasks))
            if stray:
                raise ValueError(f"{spec.name}: implementation names tasks it lacks: {stray}")
        if spec.predict_config is not None and not dataclasses.is_dataclass(spec.predict_config):
            raise TypeError(f"{spec.name}: predict_config must be a dataclass type or None")
    else:
        if not isinstance(spec.task, str) or not spec.task:
            raise TypeError(f"{spec.name}: task must be a string")


class Registry:
    """All architectures and datasets from all plugins, with failures and conflicts kept."""

    def __init__(self) -> None:
        self.plugin_manager = pluggy.PluginManager(ENTRY_POINT_GROUP)
        self.plugin_manager.add_hookspecs(hookspecs)
        self.plugins: dict[str, Plugin] = {}
        self.failures: list[PluginFailure] = []
        self.architectures: dict[str, Entry] = {}
        self.datasets: dict[str, Entry] = {}
        # name -> every plugin that registered it, for names registered more than once
        self.conflicts: dict[tuple[str, str], list[Plugin]] = {}
        self._resolved: dict[tuple[int, str], Any] = {}

    # ----------------------------------------------------------------- loading plugins
    @classmethod
    def from_entry_points(cls) -> Registry:
        """Load every plugin in the `zoo` entry-point group; failures are recorded, not raised."""
        registry = cls()
        for ep in sorted(
            importlib.metadata.entry_points(group=ENTRY_POINT_GROUP), key=lambda e: e.name
        ):
            dist = getattr(ep, "dist", None)
            dist_name = dist.metadata["Name"] if dist is not None else "unknown"
            version = dist.version if dist is not None else "unknown"
            try:
                obj = ep.load()
            except Exception as exc:  # a broken plugin must not break the others
                registry.failures.append(
                    PluginFailure(ep.name, dist_name, version, "import", _error_text(exc))
                )
                continue
            registry.add_plugin(obj, ep.name, dist_name, version)
        registry.register_all()
        return registry

    @classmethod
    def from_plugins(cls, plugins: Iterable[tuple[Any, str, str, str]]) -> Registry:
        """A registry from explicit (object, name, distribution, version) tuples, for tests and
        programs that embed zoo with their own plugins."""
        registry = cls()
        for obj, name, dist, version in plugins:
            registry.add_plugin(obj, name, dist, version)
        registry.register_all()
        return registry

    def add_plugin(self, obj: Any, name: str, distribution: str, version: str) -> None:
        try:
            self.plugin_manager.register(obj, name=name)
        except Exception as exc:
            self.failures.append(
                PluginFailure(name, distribution, version, "registration", _error_text(exc))
            )
            return
        hooks = tuple(sorted(h.name for h in self.plugin_manager.get_hookcallers(obj) or []))
        self.plugins[name] = Plugin(name, distribution, version, hooks)

    def fail(self, plugin: Plugin, stage: str, error: str) -> None:
        """Record that a loaded plugin failed in `stage`; the others go on."""
        self.failures.append(
            PluginFailure(plugin.name, plugin.distribution, plugin.version, stage, error)
        )

    def register_all(self) -> None:
        self._call_each("register_datasets", Dataset, self.datasets)
        self._call_each("register_architectures", Architecture, self.architectures)

    def _call_each(self, hook_name: str, kind: type, table: dict[str, Entry]) -> None:
        caller = getattr(self.plugin_manager.hook, hook_name)
        for impl in caller.get_hookimpls():
            plugin = self.plugins[impl.plugin_name]

            def register(spec: Any, _plugin: Plugin = plugin) -> None:
                try:
                    _check_spec(spec, kind)
                except (TypeError, ValueError, AttributeError) as exc:
                    self.fail(_plugin, hook_name, "malformed registration: " + _error_text(exc))
                    return
                self._add(kind.__name__.lower(), table, Entry(spec, _plugin))

            try:
                impl.function(register=register)
            except Exception as exc:
                self.fail(plugin, hook_name, _error_text(exc) + " (" + _last_frame(exc) + ")")

    def _add(self, kind: str, table: dict[str, Entry], entry: Entry) -> None:
        name = entry.spec.name
        key = (kind, name)
        if key in self.conflicts:
            self.conflicts[key].append(entry.plugin)
        elif name in table:
            self.conflicts[key] = [table.pop(name).plugin, entry.plugin]
        else:
            table[name] = entry

    def add_commands(self, cli: Any) -> None:
        """Let plugins add CLI commands; a plugin that raises is recorded as a failure."""
        for impl in self.plugin_manager.hook.register_commands.get_hookimpls():
            plugin = self.plugins[impl.plugin_name]
            try:
                impl.function(cli=cli)
            except Exception as exc:
                self.fail(plugin, "register_commands", _error_text(exc))

    # ----------------------------------------------------------------- looking things up
    def problems(self) -> list[str]:
        """One line per failed plugin and per name claimed by several plugins."""
        lines = [f.describe() for f in self.failures]
        for (kind, name), plugins in sorted(self.conflicts.items()):
            lines.append(conflict_message(kind, name, plugins))
        return lines

    def list_architectures(self, pattern: str | None = None, task: str | None = None) -> list[str]:
        """Architecture names, optionally filtered by a glob pattern and a task."""
        names = sorted(self.architectures)
        if pattern:
            names = [n for n in names if fnmatch.fnmatch(n, pattern)]
        if task:
            names = [n for n in names if task in self.architectures[n].spec.tasks]
        return names

    def list_datasets(self, pattern: str | None = None, task: str | None = None) -> list[str]:
        """Dataset names, optionally filtered by a glob pattern and a task."""
        names = sorted(self.datasets)
        if pattern:
            names = [n for n in names if fnmatch.fnmatch(n, pattern)]
        if task:
            names = [n for n in names if self.datasets[n].spec.task == task]
        return names

    def architecture(self, name: str) -> Entry:
        return self._lookup("architecture", name, self.architectures)

    def dataset(self, name: str) -> Entry:
        return self._lookup("dataset", name, self.datasets)

    def _lookup(self, kind: str, name: str, table: dict[str, Entry]) -> Entry:
        if name in table:
            return table[name]
        if (kind, name) in self.conflicts:
            raise PluginError(conflict_message(kind, name, self.conflicts[(kind, name)]))
        for failure in self.failures:
            if failure.name == name:
                raise PluginError(f"{kind} {name!r} is unavailable: {failure.describe()}")
        hint = f"`zoo list` shows the {kind}s installed"
        if self.failures:
            hint += f"; {len(self.failures)} plugin problem(s), see `zoo plugins`"
        raise UsageError(f"unknown {kind} {name!r}{suggest(name, table)}; {hint}")

    def monitor(self, architecture: str | None) -> tuple[str, str]:
        """The metric an installed architecture selects its best weights by; loss otherwise
        (an architecture not installed, as a run log or model file may name)."""
        entry = self.architectures.get(architecture or "")
        return tuple(entry.spec.monitor) if entry is not None else ("loss", "min")  # type: ignore[return-value]

    def headline(self, architecture: str | None) -> tuple[str, ...]:
        """The metrics an architecture shows (`Architecture.headline`), its monitor first when
        the plugin leaves it out; () for one not installed: show every plain number."""
        entry = self.architectures.get(architecture or "")
        return entry.spec.headline_metrics() if entry is not None else ()

    def compatible_datasets(self, architecture: str) -> list[str]:
        tasks = self.architecture(architecture).spec.tasks
        return [n for n in sorted(self.datasets) if self.datasets[n].spec.task in tasks]

    def check_compatible(self, architecture: str, dataset: str) -> None:
        """Raise UsageError when the dataset's task is not one the architecture handles."""
        arch = self.architecture(architecture).spec
        data = self.dataset(dataset).spec
        if data.task not in arch.tasks:
            fitting = self.compatible_datasets(architecture)
            raise UsageError(
                f"architecture {arch.name!r} (task {', '.join(arch.tasks)}) cannot train on "
                f"dataset {data.name!r} (task {data.task}); compatible datasets: "
                + (", ".join(fitting) or "none installed")
            )

    def network_class(self, name: str, task: str) -> Callable[..., Any]:
        """What builds architecture `name`'s network for `task` (see `Architecture`),
        imported on first use."""
        entry = self.architecture(name)
        ref = entry.spec.implementation
        what = f"architecture {name!r}"
        if isinstance(ref, Mapping):
            if task not in ref:
                raise PluginError(
                    f"{what} from {entry.plugin.label}: its implementation names no network "
                    f"for task {task!r} (it has {', '.join(map(str, ref)) or 'none'})"
                )
            ref, what = ref[task], f"{what} (task {task})"
        factory = self._resolve(entry, ref, what)
        if not callable(factory):
            raise PluginError(
                f"{what} from {entry.plugin.label}: implementation {ref!r} is not a class "
                "or function that builds a zoo.Network"
            )
        return factory

    def loader(self, name: str) -> Callable[..., Any]:
        """The function behind a dataset's `loader`, imported on first use."""
        entry = self.dataset(name)
        load = self._resolve(entry, entry.spec.loader, f"dataset {name!r}")
        if not callable(load):
            raise PluginError(f"dataset {name!r} from {entry.plugin.label}: loader is not callable")
        return load

    def _resolve(self, entry: Entry, ref: Any, what: str) -> Any:
        if not isinstance(ref, str):
            return ref
        key = (id(entry), ref)
        if key in self._resolved:
            return self._resolved[key]
        module_name, _, attr = ref.partition(":")
        try:
            obj = importlib.import_module(module_name)
            for part in filter(None, attr.split(".")):
                obj = getattr(obj, part)
        except Exception as exc:
            raise PluginError(
                f"{what} from {entry.plugin.label}: cannot load {ref!r}: {_error_text(exc)}"
            ) from exc
        self._resolved[key] = obj
        return obj


def conflict_message(kind: str, name: str, plugins: list[Plugin]) -> str:
    ordered = sorted(plugins, key=lambda p: (p.distribution, p.name))
    who = " and ".join(f"{p.distribution} {p.version} (plugin {p.name!r})" for p in ordered)
    return f"{kind} {name!r} is registered by both {who}; uninstall one of them"


def _last_frame(exc: BaseException) -> str:
    frames = traceback.extract_tb(exc.__traceback__)
    if not frames:
        return "no traceback"
    last = frames[-1]
    return f"{last.filename}:{last.lineno}"


_default: Registry | None = None


def get_registry() -> Registry:
    """The process-wide registry of installed plugins, loaded on first use."""
    global _default
    if _default is None:
        _default = Registry.from_entry_points()
    return _default


def reset_registry(registry: Registry | None = None) -> None:
    """Replace (or drop, to reload on next use) the process-wide registry."""
    global _default
    _default = registry
