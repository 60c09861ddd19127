"""Calling a dataset's loader: for training (state None) and for a trained model (its state).

The one place that turns a plugin's loader into a `zoo.toolkit.data.Data`: file-system trouble
becomes one DataError line naming the file, a failure inside the loader a PluginError naming
the plugin, and a trained model's data is read with the vocabularies and statistics it saved.
"""

from __future__ import annotations

import os
from typing import Any

from zoo.core import config as cfg
from zoo.core.errors import DataError, PluginError, UsageError, ZooError
from zoo.core.registry import Registry
from zoo.core.settings import PATH_OPTIONS
from zoo.toolkit import remote
from zoo.toolkit.data import Data
from zoo.toolkit.textfile import file_errors
from zoo.training import cacheprune, datacache


def load_data(
    registry: Registry,
    name: str,
    data_config: Any,
    state: dict[str, Any] | None,
    *,
    cache: bool | None = None,
) -> Data:
    """Call dataset `name`'s loader with `data_config` and `state` (None: training). For
    training on files, through the prepared-data cache (zoo/training/datacache.py) unless
    `cache` is False or `--no-cache` was given: a later run maps what the first one read."""
    if state is None and (datacache.cache_enabled() if cache is None else cache):
        return prepare(registry, name, data_config)[0]
    return _read(registry, name, remote.localised(data_config), state)


def prepare(
    registry: Registry,
    name: str,
    data_config: Any,
    home: Any = None,
    report: datacache.Report = datacache.silent,
) -> tuple[Data, str | None, bool]:
    """(data, its cache key or None when not cached, whether it was built now): what `zoo run`
    and `zoo data prepare` share. `home`: the prepared-data folder (default: --cache-dir or
    $ZOO_HOME/cache/data)."""
    data_config = remote.localised(data_config)  # URLs: their local copies (remote.py)
    loader = registry.loader(name)
    path = getattr(data_config, "path", None) or name
    with file_errors(path):
        key, facts = datacache.describe(
            name, registry.dataset(name).plugin, loader, data_config, report
        )
    if not facts["files"]:
        return _read(registry, name, data_config, None), None, False
    folder = datacache.home_from_env() if home is None else home
    with cacheprune.using(folder, key) as use:  # used now, and never evicted while mapped
        data, built = datacache.prepared(
            folder, key, facts, lambda: _read(registry, name, data_config, None), report
        )
        use.keep_while(data)
    if built:
        cacheprune.auto_prune(folder)  # ZOO_CACHE_MAX: the cache grew
    return data, (key if (folder / key).is_dir() else None), built


def _read(registry: Registry, name: str, data_config: Any, state: dict[str, Any] | None) -> Data:
    """The loader itself, its failures turned into one line; `data_config` names local files
    (URLs already fetched by `remote.localised`, once: asking a server costs a round trip)."""
    loader = registry.loader(name)
    path = getattr(data_config, "path", None) or name
    try:
        with file_errors(path):
            data = loader(data_config, state)
    except ZooError:
        raise
    except UnicodeDecodeError as e:  # a plugin reader that decodes by itself
        raise DataError(f"not UTF-8 text ({e.reason} at byte {e.start})", path=path) from None
    except Exception as e:
        plugin = registry.dataset(name).plugin
        raise PluginError(
            f"dataset {name!r} ({plugin.label}) failed in load: {type(e).__name__}: {e}"
        ) from e
    if not isinstance(data, Data):
        plugin = registry.dataset(name).plugin
        raise PluginError(
            f"dataset {name!r} from {plugin.label}: loader returned "
            f"{type(data).__name__}, expected zoo.data.Data"
        )
    return data


def data_for_model(
    registry: Registry,
    architecture: str,
    trained_on: tuple[str, Any],
    state: dict[str, Any],
    data: str | os.PathLike[str] | None,
    dataset: str | None,
    data_settings: dict[str, Any],
) -> Data:
    """The data a trained model of `architecture` is evaluated on. `trained_on` is (dataset,
    data config) of its training. Without `data`, its own dataset as configured for training
    (the same held-out split); with it, that path read with the model's `state`; `dataset`
    names another dataset of the same task; `data_settings` change data settings."""
    own_dataset, own_config = trained_on
    name = dataset or own_dataset
    spec = registry.dataset(name).spec
    registry.check_compatible(architecture, name)
    base: dict[str, Any] = {}
    if name == own_dataset and not isinstance(own_config, dict):
        base = cfg.to_dict(own_config)
    if data is not None:  # new data replaces the training files, --dev/--test ones included
        base = {k: v for k, v in base.items() if k not in PATH_OPTIONS.values()}
    values = {**base, **{k.removeprefix("data."): v for k, v in data_settings.items()}}
    if data is not None:
        if "path" not in cfg.field_names(spec.config):
            raise UsageError(f"--data: dataset {name!r} is built in and reads no files")
        values["path"] = os.fspath(data)
    return load_data(registry, name, cfg.build(spec.config, values), state)
