"""The `zoo` command line: a thin layer over the Python API (`zoo.api`), one module per group of
verbs, each registered on the one click group defined here.

| module | commands |
|---|---|
| `catalog.py` | `list`, `info`, `plugins`, `inspect` |
| `train.py` | `run` |
| `use.py` | `predict`, `eval`, `gates` |
| `runlog.py` | `runs`, `compare` |
| `plot.py` | `plot curves`, `plot confusion`, `plot forecast` |
| `export.py` | `export`, `card` |
| `sweep.py` | `sweep`, `sweep show` |
| `serve.py` | `serve` |

`base.py` holds what they share. Commands that only read the registry, a model file's header or
the run log (`list`, `plugins`, `inspect`, `runs`, `compare`, `--help`) never import torch, so
they answer at once; the others import it when they run. Every error the user can cause is a
`ZooError`, shown as one `Error:` line with exit code 1 (runtime) or 2 (usage). Each command
builds one document: `--json` prints it on stdout, otherwise a renderer prints it as text;
progress and logs go to stderr. Options can also come from environment variables
`ZOO_<COMMAND>_<OPTION>` (`ZOO_RUN_THREADS=2`), and names complete in the shell
(`eval "$(_ZOO_COMPLETE=bash_source zoo)"`).
"""

from __future__ import annotations

import click

from zoo.cli import catalog, data, export, plot, runlog, serve, sweep, train, use
from zoo.cli.base import ZooGroup
from zoo.core.version import __version__


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


for command in (
    catalog.list_command,
    catalog.info_command,
    train.run_command,
    use.predict_command,
    use.eval_command,
    use.gates_command,
    catalog.inspect_command,
    catalog.plugins_command,
    runlog.runs_command,
    runlog.compare_command,
    plot.plot_group,
    export.export_command,
    export.card_command,
    sweep.sweep_group,
    serve.serve_command,
    data.data_group,
):
    cli.add_command(command)


def main() -> None:
    """Console-script entry point; options also read ZOO_<COMMAND>_<OPTION> variables."""
    cli.main(prog_name="zoo", windows_expand_args=False, auto_envvar_prefix="ZOO")


if __name__ == "__main__":  # pragma: no cover
    main()
