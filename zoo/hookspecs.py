"""The hooks a zoo plugin can implement.

A plugin is any importable module (or object) named by an entry point in the `zoo` group that
implements some of these functions, decorated with `zoo.hookimpl`. The built-in plugins use
exactly this mechanism. Hooks are called once per plugin, so each registration is credited to
the plugin (and its distribution) that made it, and a plugin that raises does not stop the rest.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

import pluggy

if TYPE_CHECKING:
    import click

    from zoo.registry import Architecture, Dataset

hookspec = pluggy.HookspecMarker("zoo")
hookimpl = pluggy.HookimplMarker("zoo")


@hookspec
def register_architectures(register: Callable[[Architecture], None]) -> None:
    """Call `register(Architecture(...))` once for each model architecture the plugin provides.

    Keep torch out of the module that implements this hook: `zoo list` imports every plugin and
    must stay fast. Put the network in the module named by `Architecture.implementation`.
    """


@hookspec
def register_datasets(register: Callable[[Dataset], None]) -> None:
    """Call `register(Dataset(...))` once for each dataset the plugin provides.

    The loader is named by `Dataset.loader` ("package.module:function") and imported only when
    the dataset is used.
    """


@hookspec
def register_commands(cli: click.Group) -> None:
    """Add extra click commands to the `zoo` command line, e.g. `cli.add_command(my_command)`."""
