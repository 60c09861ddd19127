"""What every `zoo` command shares: turning a ZooError into one `Error:` line and its exit code,
printing a command's document (`--json` or text), the common options (each also read from
`ZOO_<COMMAND>_<OPTION>`), name completion, and opening a model file for a command.

Torch-free: `zoo --help`, `zoo list` and `zoo runs` import this module and nothing heavier.
"""

from __future__ import annotations

import errno
import os
import sys
from collections.abc import Callable, Iterable
from typing import Any

import click

from zoo.core.errors import PluginError, SettingError, ZooError, out_of_memory
from zoo.core.fileio import atomic_write_text
from zoo.core.formatting import to_json
from zoo.core.registry import get_registry
from zoo.training import distributed

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
    """An exception zoo did not expect: a bug, unless the machine ran out of memory."""
    oom = out_of_memory(e)
    if oom is not None:
        return CLIError(_from_rank(str(oom)), oom.exit_code)
    return CLIError(
        _from_rank(f"internal error: {type(e).__name__}: {e}") + " (a bug in zoo or a plugin; "
        "ZOO_DEBUG=1 shows the traceback)",
        1,
    )


# ----------------------------------------------------------------------------- output
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


def warn_problems() -> None:
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
def complete_names(kind: str) -> Callable[..., list[Any]]:
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


def settings_for(
    verb: Callable[..., Any], settings: dict[str, Any], kind: str | None
) -> dict[str, Any]:
    """`--set` pairs as the keyword settings of an API verb (zoo.run, zoo.evaluate, ...). A
    key that is also one of the verb's own parameters (`zoo eval --set split=0.6,0.2,0.2`, the
    csv dataset's split, against evaluate's `split`) reached Python as a second value for
    it, an internal error: it is passed as `KIND.KEY`, which the verb reads as that setting,
    or, for a verb whose settings have several kinds (`kind` None: zoo.run), refused."""
    import inspect

    own = {
        name
        for name, p in inspect.signature(verb).parameters.items()
        if p.kind is not p.VAR_KEYWORD
    }
    passed: dict[str, Any] = {}
    for key, value in settings.items():
        if key in own and kind is None:
            raise SettingError(
                f"unknown setting {key!r}; a plugin's setting of that name is written "
                f"with its config's name: model.{key}, data.{key} or train.{key}"
            )
        passed[f"{kind}.{key}" if key in own else key] = value
    return passed


# The options that start torchrun; a worker (RANK set) ignores them.
LAUNCH_OPTIONS = (
    "nproc_per_node",
    "nnodes",
    "node_rank",
    "rdzv_endpoint",
    "rdzv_id",
    "max_restarts",
)


def command_arguments(ctx: click.Context, drop: Iterable[str] = LAUNCH_OPTIONS) -> list[str]:
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


def load_model(path: str, threads: int | None = None) -> tuple[Any, int]:
    """(the model in FILE, the torch threads in use): the threads are set first (1 unless the
    user gave --threads; 0 keeps torch's default), as every command that loads a model does."""
    from zoo.training.model import load
    from zoo.training.trainer import set_threads

    used = set_threads(1 if threads is None else threads)
    return load(path), used
