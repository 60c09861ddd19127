"""The plugin contract: a zoo network is a `torch.nn.Module` that also says how to train,
score and use it, as llm's `Model.execute` and nanoGPT's `forward(idx, targets)` do.

    class Classifier(zoo.Network):
        def __init__(self, config, state):
            super().__init__(config, state)
            self.embedding = nn.Embedding(len(state["symbols"]), config.embedding_dim)
            ...

        def forward(self, symbols, lengths): ...           # the network itself
        def loss(self, batch): ...                          # a scalar to minimise
        def evaluate(self, batches): ...                    # metrics over every batch given
        def predict(self, inputs, options): ...             # raw strings in, a dict each out

`evaluate` may instead come in two halves, `tally(batches)` (the sums and tables the metrics
are made of: a `zoo.metrics.Tally`) and `score(tally)` (the metrics from them); then several
training processes each score a share of the validation split and zoo merges their tallies
(docs/distributed.md, "Sharded validation"). A network with only `evaluate` still works: each
process scores the whole split.

zoo builds it as `NetworkClass(config, state)` from the architecture's config (a dataclass)
and the data state the dataset's loader made (vocabularies, normalisation). Both are kept as
plain attributes, not tensors, so the state dict (and the model file) holds the layers'
weights under torch's own names.

zoo calls `loss` in training mode, `evaluate` and `predict` in eval mode under
`torch.no_grad()`; a failure or a wrong return type is reported naming the plugin. Two optional
hooks frame training: `initialise(data)` before it, `calibrate(data)` after it (docs/plugins.md,
"The lifecycle"). zoo first
builds the network on torch's meta device when loading a file, to compare its tensors' names
and shapes with the file's before allocating anything: keep `__init__` to creating layers.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

import torch
from torch import nn

from zoo.core import limits
from zoo.core.errors import UsageError

if TYPE_CHECKING:
    from zoo.toolkit.data import Data
    from zoo.toolkit.exportspec import ExportSpec
    from zoo.toolkit.metrics import Tally
    from zoo.toolkit.textfile import TextFile

Batch = dict[str, Any]
_INPUT_K = re.compile(r"^input (\d+)\b:?")


def _at_line(message: str, path: str, lines: list[int]) -> str:
    """An error about `input K` of a file's inputs, said of the file's line instead."""
    found = _INPUT_K.match(message)
    if not found or not 1 <= int(found.group(1)) <= len(lines):
        return message
    line = lines[int(found.group(1)) - 1] + 1
    rest = message[found.end() :].lstrip()
    return f"{path}:{line}: {rest}"


Prediction = dict[str, Any]


class Network(nn.Module):
    """Base class of every architecture's network (see the module docstring)."""

    # How one input to `predict` is measured ("characters", "words" or "steps") and the most
    # it may hold: zoo checks every input before `predict` runs, so that one megabyte line is
    # refused instead of asking for gigabytes; `--set max_input_length=N` changes the maximum
    # for one command. Set them as class attributes, or as properties where they depend on
    # the state (docs/plugins.md, "Input limits").
    input_unit: str = "characters"
    max_input_length: int = 100_000

    def __init__(self, config: Any, state: dict[str, Any]):
        super().__init__()
        self.config = config
        self.state = state

    @property
    def device(self) -> torch.device:
        """Where the weights are (inputs built for prediction go there)."""
        first = next(self.parameters(), None)
        return first.device if first is not None else torch.device("cpu")

    # ------------------------------------------------------------------ what zoo asks of it
    def loss(self, batch: Batch) -> torch.Tensor:
        """The training loss of one batch (the dict the dataset's collate made): a scalar."""
        raise NotImplementedError(f"{type(self).__name__} does not define loss(batch)")

    def evaluate(self, batches: Iterable[Batch]) -> dict[str, Any]:
        """Metrics over every batch given (a whole split): plain numbers, including the
        architecture's monitor metric; `zoo.metrics.Confusion` gives classification ones.
        By default `score(tally(batches))`, for a network that defines those two."""
        if self.shardable:
            return self.score(self.tally(batches))
        raise NotImplementedError(f"{type(self).__name__} does not define evaluate(batches)")

    def tally(self, batches: Iterable[Batch]) -> Tally:
        """Optional, with `score`: the sums, counts and tables (`zoo.metrics.Tally`) that the
        metrics of the batches given are made of. Defining both lets each training process
        score only its share of the validation split: zoo merges the tallies (sums add up
        exactly; averages would not) and calls `score` on the whole split's."""
        raise NotImplementedError(f"{type(self).__name__} does not define tally(batches)")

    def score(self, tally: Tally) -> dict[str, Any]:
        """The metrics (what `evaluate` returns) of a merged `tally`; called once per split."""
        raise NotImplementedError(f"{type(self).__name__} does not define score(tally)")

    @property
    def shardable(self) -> bool:
        """Whether the network scores by `tally` and `score`, so its validation can be split
        among processes; a network with only `evaluate` is scored whole by each."""
        kind = type(self)
        return kind.tally is not Network.tally and kind.score is not Network.score

    def predict(self, inputs: list[str], options: Any) -> list[Prediction]:
        """One dict per input (a sentence, a sequence, numbers as text), with at least
        `input`, `output` and `text` (one line for a terminal). `options` is an instance of
        the architecture's `predict_config`, or None. Raise `zoo.UsageError` for input that
        cannot be used."""
        raise NotImplementedError(f"{type(self).__name__} does not define predict(inputs)")

    # ------------------------------------------------------------------- optional hooks
    def initialise(self, data: Data) -> None:
        """Called once after the network is built for a new training, before the first step;
        never when a file or checkpoint is loaded (their weights replace what it would set):
        start weights from outside resources (pretrained vectors named in the config)."""

    def calibrate(self, data: Data) -> None:
        """Called with the weights as they are before each validation, and once more when
        training ends with the final weights in place (the best validation's, or the moving
        average), before the final evaluation and the save; in eval mode under
        `torch.no_grad()`. Compute state from the training data here (an anomaly threshold, a
        temperature) and keep it in a buffer (`self.register_buffer` in `__init__`), which
        the model file and checkpoints save with the weights; a plain attribute would be
        lost. Read the data with `data.batches("train", n, device=self.device)`."""

    def carried_state(self) -> dict[str, torch.Tensor]:
        """Tensors that training carries from one step to the next besides the weights and
        the optimizer (a language model's final hidden state, which the next window of its
        text streams starts from): saved in checkpoints, so that a run resumed mid-epoch
        continues exactly, and never in the model file. Empty by default."""
        return {}

    def load_carried_state(self, tensors: dict[str, torch.Tensor]) -> None:
        """Take back what `carried_state` gave, when a run resumes from a checkpoint (an
        empty dict: there was nothing to carry yet); on the CPU, move it to `self.device`."""

    def export_spec(self) -> ExportSpec | None:
        """What `zoo export` writes to ONNX: the graphs (modules with example inputs and the
        axes that vary) and the runtime recipe that turns raw input into graph inputs and
        graph outputs into answers (`zoo.toolkit.exportspec.ExportSpec`, docs/export.md). None (the
        default): zoo traces `forward` as `predict` calls it on `zoo export --example INPUT`,
        and the runtime exchanges raw arrays."""
        return None

    def predict_file(self, file: TextFile, options: Any) -> tuple[str, list[Prediction]]:
        """`zoo predict MODEL --input FILE`: the output text and the predictions. By default
        each non-blank line is an input and each gives one output line, blank lines staying
        blank so the output lines up with the input; override to read a structured format
        (CoNLL-U, CSV) instead."""
        lines = file.lines()
        filled = [i for i, line in enumerate(lines) if line.strip()]
        inputs = [lines[i] for i in filled]
        limits.check_inputs(inputs, lambda k: f"{file.path}:{filled[k] + 1}", file.path)
        try:
            predictions = self.predict([lines[i] for i in filled], options) if filled else []
        except UsageError as e:  # "input K: ..." is line filled[K - 1] of the file
            raise UsageError(_at_line(str(e), file.path, filled)) from None
        if len(predictions) != len(filled):  # the lines made one input (numbers, one a line)
            return "".join(f"{p.get('text', p.get('output'))}\n" for p in predictions), predictions
        rendered = [""] * len(lines)
        for i, prediction in zip(filled, predictions):
            rendered[i] = str(prediction.get("text", prediction.get("output")))
        return "".join(line + "\n" for line in rendered), predictions
