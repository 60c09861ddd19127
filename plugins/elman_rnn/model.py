"""The Elman RNN: one recurrent body, and a network per task built on it.

    h_t = tanh(W_ih x_t + b_ih + W_hh h_{t-1} + b_hh)      (nn.RNN, per layer)
    y_t = W_out h_t + b_out                                  (readout, per step)

`cell` swaps the recurrence for a GRU or LSTM; `impl` builds the layer from torch's fused
nn.RNN/GRU/LSTM or from zoo.cells (the same equations, written out). Tensor names are torch's
own (`rnn.weight_ih_l0`, `readout.weight`) either way, so the weights load into plain torch
layers and a file saved with one implementation loads with the other.

The tasks differ only in what goes in and what the outputs mean: numbers per step
(`StepRegressor`), a symbol per step (`StepClassifier`), and the next character of a text
(`CharLM`), which reads the text as contiguous streams (see data.py) and keeps its final state
between batches: the next window starts where the last one ended, with the state detached so
back-propagation stops there (truncated BPTT).
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from zoo.core import limits
from zoo.core.errors import SettingError, UsageError
from zoo.toolkit.cells import recurrent_layer
from zoo.toolkit.data import parse_numbers
from zoo.toolkit.metrics import Tally
from zoo.toolkit.network import Batch, Network, Prediction
from zoo.toolkit.vocab import Vocab

State = Any  # h, or (h, c) for the LSTM


class ElmanRNN(Network):
    """The shared body: [embedding or one-hot] -> recurrent layers -> a linear readout per
    step. Created in this order (embedding, rnn, readout), so a seed gives the same weights."""

    input_unit = "characters"  # symbols and prompts; the step regressor reads steps
    max_input_length = 20_000

    def __init__(
        self,
        config: Any,
        state: dict[str, Any],
        input_size: int,
        output_size: int,
        vocab_size: int | None = None,
    ):
        super().__init__(config, state)
        self.vocab_size = vocab_size
        self.embedding = (
            nn.Embedding(vocab_size, config.embedding_dim, padding_idx=0)
            if vocab_size is not None and config.embedding_dim > 0
            else None
        )
        extra = {"nonlinearity": config.nonlinearity} if config.cell == "elman" else {}
        self.rnn = recurrent_layer(
            config.cell,
            config.impl,
            input_size,
            config.hidden_size,
            num_layers=config.num_layers,
            dropout=config.dropout if config.num_layers > 1 else 0.0,
            bidirectional=config.bidirectional,
            batch_first=True,
            **extra,
        )
        directions = 2 if config.bidirectional else 1
        self.readout = nn.Linear(config.hidden_size * directions, output_size)

    def export_spec(self) -> Any:
        """The ONNX graph of this task's network and the runtime recipe (export.py)."""
        from .export import export_spec

        if isinstance(self, StepRegressor):
            return export_spec(self, "step-regression")
        return export_spec(
            self, "step-classification" if isinstance(self, StepClassifier) else "char-lm"
        )

    def inputs(self, x: torch.Tensor) -> torch.Tensor:
        """Symbol ids [batch, time] as embeddings or one-hot vectors; numbers pass through."""
        if self.vocab_size is None:
            return x
        if self.embedding is not None:
            return self.embedding(x)
        return F.one_hot(x, self.vocab_size).float()

    def forward(self, x: torch.Tensor, lengths: torch.Tensor | None = None) -> torch.Tensor:
        """x: [batch, time, features] of numbers, or [batch, time] of symbol ids; padded
        sequences are packed, so padding never reaches the state of the real steps."""
        x = self.inputs(x)
        if lengths is not None and bool((lengths != x.shape[1]).any()):
            packed = pack_padded_sequence(x, lengths.cpu(), batch_first=True, enforce_sorted=False)
            out, _ = self.rnn(packed)
            out, _ = pad_packed_sequence(out, batch_first=True, total_length=x.shape[1])
        else:
            out, _ = self.rnn(x)
        return self.readout(out)


def symbol_input_size(config: Any, vocab_size: int) -> int:
    return config.embedding_dim if config.embedding_dim > 0 else vocab_size


# --------------------------------------------------------------------- step regression
class StepRegressor(ElmanRNN):
    """A vector of numbers out per vector in (sine-cosine: sin t -> cos t), scored by MSE."""

    input_unit = "steps"

    def __init__(self, config: Any, state: dict[str, Any]):
        super().__init__(config, state, int(state["input_size"]), int(state["output_size"]))

    def loss(self, batch: Batch) -> torch.Tensor:
        mask = batch["mask"]
        return F.mse_loss(self(batch["x"], batch["lengths"])[mask], batch["y"][mask])

    def tally(self, batches: Iterable[Batch]) -> Tally:
        """Squared and absolute errors summed over every scored value, and their count."""
        tally = Tally()
        for batch in batches:
            mask = batch["mask"]
            diff = self(batch["x"], batch["lengths"])[mask] - batch["y"][mask]
            tally.add("se", diff**2)
            tally.add("ae", diff.abs())
            tally.add("values", diff.numel())
        return tally

    def score(self, tally: Tally) -> dict[str, float]:
        n = tally["values"]
        return {"loss": tally["se"] / n, "mse": tally["se"] / n, "mae": tally["ae"] / n}

    def predict(self, inputs: list[str], options: Any) -> list[Prediction]:
        """Numbers typed one per argument (or one per line) form one sequence; otherwise each
        input is a sequence of whitespace-separated steps, commas separating features."""
        sequences = [parse_numbers(s, where=f"input {i + 1}") for i, s in enumerate(inputs)]
        if all(len(s.split()) == 1 for s in inputs):
            limits.check_input(sequences, "the inputs, read as one sequence")
            sequences = [[step for one in sequences for step in one]]
        size = self.state["input_size"]
        results = []
        for seq in sequences:
            if not seq:
                raise UsageError("empty input: give numbers, one per time step")
            if any(len(step) != size for step in seq):
                raise UsageError(f"each step needs {size} comma-separated value(s)")
            out = self(torch.tensor([seq], dtype=torch.float32, device=self.device))[0]
            values = [[round(v, 6) for v in row] for row in out.tolist()]
            flat = [v[0] if len(v) == 1 else v for v in values]
            results.append(
                {
                    "input": [s[0] if len(s) == 1 else s for s in seq],
                    "output": flat,
                    "text": " ".join(
                        f"{v:.4f}" if isinstance(v, float) else ",".join(f"{u:.4f}" for u in v)
                        for v in flat
                    ),
                }
            )
        return results


# ----------------------------------------------------------------- step classification
class StepClassifier(ElmanRNN):
    """A symbol out per symbol in (char-pairs: hello -> ohlol)."""

    def __init__(self, config: Any, state: dict[str, Any]):
        vocab, outputs = len(state["input_vocab"]), len(state["output_vocab"])
        super().__init__(config, state, symbol_input_size(config, vocab), outputs, vocab)

    def loss(self, batch: Batch) -> torch.Tensor:
        out = self(batch["x"], batch["lengths"])
        return F.cross_entropy(
            out.reshape(-1, out.shape[-1]), batch["y"].reshape(-1), ignore_index=-100
        )

    def tally(self, batches: Iterable[Batch]) -> Tally:
        """The loss summed over symbols, the symbols' confusion table, sequences all right."""
        tally = Tally()
        confusion = tally.confusion("symbols", self.state["output_vocab"])
        for batch in batches:
            out, y = self(batch["x"], batch["lengths"]), batch["y"]
            valid = y != -100
            tally.add("loss_sum", F.cross_entropy(out[valid], y[valid], reduction="sum"))
            predicted = out.argmax(-1)
            confusion.add(predicted, y)
            tally.add("tokens", valid.sum())
            tally.add("exact", ((predicted == y) | ~valid).all(dim=1).sum())
            tally.add("sequences", y.shape[0])
        return tally

    def score(self, tally: Tally) -> dict[str, Any]:
        """Per-symbol loss and Confusion metrics; `sequence_accuracy`: sequences all right."""
        return {
            "loss": tally["loss_sum"] / tally["tokens"],
            **tally.confusion("symbols", self.state["output_vocab"]).metrics(),
            "sequence_accuracy": tally["exact"] / tally["sequences"],
        }

    def predict(self, inputs: list[str], options: Any) -> list[Prediction]:
        vocab, outputs = Vocab(self.state["input_vocab"]), Vocab(self.state["output_vocab"])
        results = []
        for text in inputs:
            if not text:
                raise UsageError("empty input: give a string of symbols, e.g. hello")
            ids = torch.tensor([vocab.encode(text)], device=self.device)
            predicted = "".join(outputs.decode(self(ids)[0].argmax(-1).tolist()))
            results.append({"input": text, "output": predicted, "text": f"{text} -> {predicted}"})
        return results


# ---------------------------------------------------------------------------- char LM
def detach(state: State) -> State:
    return tuple(s.detach() for s in state) if isinstance(state, tuple) else state.detach()


def rows(state: State) -> int:
    return int((state[0] if isinstance(state, tuple) else state).shape[1])


class CharLM(ElmanRNN):
    """The next character of a text at every step, trained by truncated BPTT on contiguous
    streams; scored in bits per character; predict continues a prompt by sampling."""

    def __init__(self, config: Any, state: dict[str, Any]):
        if config.bidirectional:
            raise SettingError(
                "bidirectional=True: a language model reads left to right (it would see the "
                "character it has to predict); use bidirectional=False"
            )
        vocab = len(state["vocab"])
        super().__init__(config, state, symbol_input_size(config, vocab), vocab, vocab)
        # The final state of the last window, per mode (training and evaluation read
        # different streams); not a parameter, never in the model file: a checkpoint holds
        # the training one (`carried_state`), which the next window starts from.
        self.carry: dict[bool, State] = {}

    def run(self, x: torch.Tensor, state: State = None) -> tuple[torch.Tensor, State]:
        """Logits [batch, time, symbols] for ids [batch, time] from `state`, and the state after."""
        out, state = self.rnn(self.inputs(x), state)
        return self.readout(out), state

    def stream(self, x: torch.Tensor, reset: bool) -> torch.Tensor:
        """Logits for the next window of the text streams, continuing from the state the
        previous window ended in (the teaching code's h_state), detached so gradients stop at
        the window's start; `reset` starts afresh (first window of a pass)."""
        state = None if reset else self.carry.get(self.training)
        if state is not None and rows(state) != x.shape[0]:
            state = None
        logits, state = self.run(x, state)
        self.carry[self.training] = detach(state)
        return logits

    def carried_state(self) -> dict[str, torch.Tensor]:
        """The training streams' state after the last window (h; and c for the LSTM), so
        that a run resumed mid-epoch continues the streams as an uninterrupted run does."""
        state = self.carry.get(True)
        if state is None:
            return {}
        return dict(zip(("h", "c"), state if isinstance(state, tuple) else (state,)))

    def load_carried_state(self, tensors: dict[str, torch.Tensor]) -> None:
        self.carry.pop(True, None)
        if "h" in tensors:
            parts = tuple(tensors[k].to(self.device) for k in ("h", "c") if k in tensors)
            self.carry[True] = parts if len(parts) > 1 else parts[0]

    def loss(self, batch: Batch) -> torch.Tensor:
        out = self.stream(batch["x"], batch["reset"])
        return F.cross_entropy(out.flatten(0, 1), batch["y"].flatten(), ignore_index=-100)

    def tally(self, batches: Iterable[Batch]) -> Tally:
        """Nats summed over every predicted character, right guesses, characters. Several
        processes each read their own rows (streams) of every window: every character is
        counted once, by the process whose stream holds it, and the nats are added row by
        row, so that the sum does not depend on which rows shared a batch."""
        tally = Tally()
        for batch in batches:
            out = self.stream(batch["x"], batch["reset"])
            y = batch["y"]
            valid = y != -100
            nats = F.cross_entropy(out.transpose(1, 2), y, reduction="none", ignore_index=-100)
            for row in nats.double().sum(1).tolist():  # a row's sum: the same on any process
                tally.add("nats", row)
            tally.add("correct", (out.argmax(-1)[valid] == y[valid]).sum())
            tally.add("characters", valid.sum())
        return tally

    def score(self, tally: Tally) -> dict[str, float]:
        """Bits per character: the mean negative log2-probability of each next character."""
        nats, count = tally["nats"], tally["characters"]
        return {
            "loss": nats / count,
            "bpc": nats / count / math.log(2),
            "accuracy": tally["correct"] / count,
            "characters": int(count),
        }

    def generate(self, prompt: str, vocab: Vocab, options: Any, generator: torch.Generator) -> str:
        """Read the prompt, then sample one character at a time, feeding each back in. The
        unknown symbol is never sampled."""
        logits, state = self.run(torch.tensor([vocab.encode(prompt)], device=self.device))
        out = []
        for _ in range(options.length):
            scores = logits[0, -1].clone()
            if vocab.unk_id is not None and len(vocab) > 1:
                scores[vocab.unk_id] = -math.inf
            if options.temperature == 0:
                nxt = int(scores.argmax())
            else:
                probs = torch.softmax(scores / options.temperature, dim=-1)
                nxt = int(torch.multinomial(probs, 1, generator=generator))
            out.append(vocab.tokens[nxt])
            logits, state = self.run(torch.tensor([[nxt]], device=self.device), state)
        return "".join(out)

    def predict(self, inputs: list[str], options: Any) -> list[Prediction]:
        vocab = Vocab(self.state["vocab"])
        generator = torch.Generator(self.device).manual_seed(options.seed)
        results = []
        for prompt in inputs:
            if not prompt:
                raise UsageError('empty prompt: give some text to continue, e.g. "To be"')
            text = self.generate(prompt, vocab, options, generator)
            results.append({"input": prompt, "output": text, "text": prompt + text})
        return results
