"""Recurrent cells written from their equations, and layers that run them like torch's own.

PyTorch's `nn.RNN`, `nn.LSTM` and `nn.GRU` are fused kernels: fast, but nothing a learner can
read. This module writes each cell as the handful of lines of its textbook equations, with
PyTorch's own parameter names, shapes, gate order and initialisation, so that

- a state dict moves unchanged between `ElmanCell`/`LSTMCell`/`GRUCell` and
  `nn.RNNCell`/`nn.LSTMCell`/`nn.GRUCell`;
- `RNN`, `LSTM` and `GRU` below take nn.RNN/nn.LSTM/nn.GRU's constructor arguments and forward
  signature (padded or `PackedSequence` input, `batch_first`, an optional initial state), give
  the same outputs and final states, and name their tensors the same (`weight_ih_l0`,
  `bias_hh_l1_reverse`, ...): a model's state dict is identical whichever implementation
  built it, so a model file saved with one loads with the other;
- on the same seed they start from the same weights as torch's layers (same initialiser, same
  order of draws), so training with either gives the same model up to rounding.

The equations, with x the input, h the previous hidden state and sigma the logistic function
(each W_i* x + b_i* is a slice of `weight_ih @ x + bias_ih`, each W_h* h + b_h* of
`weight_hh @ h + bias_hh`, in the gate order given):

    Elman   h' = act(W_ih x + b_ih + W_hh h + b_hh)          act: tanh, relu or identity
    LSTM    i = sigma(W_ii x + b_ii + W_hi h + b_hi)        gates in the order i, f, g, o
            f = sigma(W_if x + b_if + W_hf h + b_hf)
            g =  tanh(W_ig x + b_ig + W_hg h + b_hg)
            o = sigma(W_io x + b_io + W_ho h + b_ho)
            c' = f * c + i * g          h' = o * tanh(c')
    GRU     r = sigma(W_ir x + b_ir + W_hr h + b_hr)        gates in the order r, z, n
            z = sigma(W_iz x + b_iz + W_hz h + b_hz)
            n =  tanh(W_in x + b_in + r * (W_hn h + b_hn))
            h' = (1 - z) * n + z * h

The layers compute `W_ih x + b_ih` for every time step at once (one matrix product; it does not
depend on h), then step through time calling the cell's `step`.

Using the cells in a plugin is one line per layer: build the layer with `recurrent_layer`
instead of `nn.LSTM(...)` and give the architecture an `impl` setting:

    # __init__.py (config dataclass; no torch here)
    impl: Literal["torch", "cells"] = param("torch", "torch: fused layers; cells: zoo.cells")
    # model.py
    from zoo.cells import recurrent_layer
    self.lstm = recurrent_layer("lstm", config.impl, input_size, hidden_size,
                                num_layers=2, bidirectional=True, batch_first=True)

Everything else (packing, initial states, reading `h_n`) stays as it was for nn.LSTM.
`record_gates(module)` collects every step's gate activations of the cells layers inside a
module, for inspection or a heat map (`zoo gates`).
"""

from __future__ import annotations

import contextlib
import math
import warnings
from collections.abc import Callable, Iterator
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.nn.utils.rnn import PackedSequence

__all__ = [
    "GRU",
    "LSTM",
    "RNN",
    "ElmanCell",
    "GRUCell",
    "LSTMCell",
    "Recurrent",
    "record_gates",
    "recurrent_layer",
]

ACTIVATIONS: dict[str, Callable[[Tensor], Tensor]] = {
    "tanh": torch.tanh,
    "relu": torch.relu,
    "identity": lambda x: x,
}


# ------------------------------------------------------------------------------------ cells
class _Cell(nn.Module):
    """PyTorch's cell layout: `weight_ih` [chunks*H, I], `weight_hh` [chunks*H, H], and the two
    bias vectors `bias_ih`, `bias_hh` [chunks*H], all drawn from U(-1/sqrt(H), 1/sqrt(H))."""

    chunks = 1  # blocks of H rows in the weights: one per gate
    gate_names: tuple[str, ...] = ()

    def __init__(
        self,
        input_size: int,
        hidden_size: int,
        bias: bool = True,
        device: Any = None,
        dtype: Any = None,
    ):
        super().__init__()
        self.input_size, self.hidden_size, self.bias = input_size, hidden_size, bias
        kw = {"device": device, "dtype": dtype}
        rows = self.chunks * hidden_size
        self.weight_ih = nn.Parameter(torch.empty(rows, input_size, **kw))
        self.weight_hh = nn.Parameter(torch.empty(rows, hidden_size, **kw))
        if bias:
            self.bias_ih = nn.Parameter(torch.empty(rows, **kw))
            self.bias_hh = nn.Parameter(torch.empty(rows, **kw))
        else:
            self.register_parameter("bias_ih", None)
            self.register_parameter("bias_hh", None)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        bound = 1.0 / math.sqrt(self.hidden_size) if self.hidden_size > 0 else 0.0
        for weight in self.parameters():
            nn.init.uniform_(weight, -bound, bound)

    def _zeros(self, x: Tensor) -> Tensor:
        return x.new_zeros(x.shape[0], self.hidden_size)

    def _project(self, x: Tensor) -> Tensor:
        return F.linear(x, self.weight_ih, self.bias_ih)

    def extra_repr(self) -> str:
        return f"{self.input_size}, {self.hidden_size}" + ("" if self.bias else ", bias=False")


def _batched(x: Tensor, *states: Tensor | None) -> tuple[bool, Tensor, list[Tensor | None]]:
    """nn.*Cell accept one example ([features]) or a batch ([batch, features])."""
    if x.dim() == 1:
        return False, x.unsqueeze(0), [None if s is None else s.unsqueeze(0) for s in states]
    return True, x, list(states)


class ElmanCell(_Cell):
    """The simple recurrent network (Elman, 1990): h' = act(W_ih x + b_ih + W_hh h + b_hh).

    `nonlinearity` is tanh or relu (as nn.RNNCell) or identity (a linear recurrence).
    """

    gate_names = ("h",)

    def __init__(
        self,
        input_size: int,
        hidden_size: int,
        bias: bool = True,
        nonlinearity: str = "tanh",
        device: Any = None,
        dtype: Any = None,
    ):
        if nonlinearity not in ACTIVATIONS:
            raise ValueError(f"nonlinearity {nonlinearity!r}: expected tanh, relu or identity")
        self.nonlinearity = nonlinearity
        super().__init__(input_size, hidden_size, bias, device, dtype)

    @staticmethod
    def step(
        xw: Tensor, h: Tensor, w_hh: Tensor, b_hh: Tensor | None, act: Callable = torch.tanh
    ) -> tuple[Tensor, tuple[Tensor, ...]]:
        """One step, given xw = W_ih x + b_ih. Returns (h', (h',))."""
        h = act(xw + F.linear(h, w_hh, b_hh))
        return h, (h,)

    def forward(self, input: Tensor, hx: Tensor | None = None) -> Tensor:
        batched, x, (h,) = _batched(input, hx)
        h = self._zeros(x) if h is None else h
        act = ACTIVATIONS[self.nonlinearity]
        h, _ = self.step(self._project(x), h, self.weight_hh, self.bias_hh, act)
        return h if batched else h.squeeze(0)

    def extra_repr(self) -> str:
        return super().extra_repr() + f", nonlinearity={self.nonlinearity!r}"


class LSTMCell(_Cell):
    """Long short-term memory (Hochreiter & Schmidhuber, 1997, with the forget gate of Gers
    et al.): input gate i, forget gate f, candidate g, output gate o, in PyTorch's order.

        c' = f * c + i * g        h' = o * tanh(c')
    """

    chunks = 4
    gate_names = ("i", "f", "g", "o", "c")

    @staticmethod
    def step(
        xw: Tensor, state: tuple[Tensor, Tensor], w_hh: Tensor, b_hh: Tensor | None
    ) -> tuple[tuple[Tensor, Tensor], tuple[Tensor, ...]]:
        """One step, given xw = W_ih x + b_ih. Returns ((h', c'), (i, f, g, o, c'))."""
        h, c = state
        xi, xf, xg, xo = xw.chunk(4, dim=-1)
        hi, hf, hg, ho = F.linear(h, w_hh, b_hh).chunk(4, dim=-1)
        i = torch.sigmoid(xi + hi)
        f = torch.sigmoid(xf + hf)
        g = torch.tanh(xg + hg)
        o = torch.sigmoid(xo + ho)
        c = f * c + i * g
        h = o * torch.tanh(c)
        return (h, c), (i, f, g, o, c)

    def forward(
        self, input: Tensor, hx: tuple[Tensor, Tensor] | None = None
    ) -> tuple[Tensor, Tensor]:
        h0, c0 = hx if hx is not None else (None, None)
        batched, x, (h, c) = _batched(input, h0, c0)
        h = self._zeros(x) if h is None else h
        c = self._zeros(x) if c is None else c
        (h, c), _ = self.step(self._project(x), (h, c), self.weight_hh, self.bias_hh)
        return (h, c) if batched else (h.squeeze(0), c.squeeze(0))


class GRUCell(_Cell):
    """Gated recurrent unit (Cho et al., 2014), PyTorch's variant: reset gate r, update gate z,
    candidate n, in that order; r scales W_hn h + b_hn *after* the product.

        h' = (1 - z) * n + z * h
    """

    chunks = 3
    gate_names = ("r", "z", "n")

    @staticmethod
    def step(
        xw: Tensor, h: Tensor, w_hh: Tensor, b_hh: Tensor | None
    ) -> tuple[Tensor, tuple[Tensor, ...]]:
        """One step, given xw = W_ih x + b_ih. Returns (h', (r, z, n))."""
        xr, xz, xn = xw.chunk(3, dim=-1)
        hr, hz, hn = F.linear(h, w_hh, b_hh).chunk(3, dim=-1)
        r = torch.sigmoid(xr + hr)
        z = torch.sigmoid(xz + hz)
        n = torch.tanh(xn + r * hn)
        h = (1 - z) * n + z * h
        return h, (r, z, n)

    def forward(self, input: Tensor, hx: Tensor | None = None) -> Tensor:
        batched, x, (h,) = _batched(input, hx)
        h = self._zeros(x) if h is None else h
        h, _ = self.step(self._project(x), h, self.weight_hh, self.bias_hh)
        return h if batched else h.squeeze(0)


CELLS: dict[str, type[_Cell]] = {"RNN": ElmanCell, "LSTM": LSTMCell, "GRU": GRUCell}


# ----------------------------------------------------------------------------------- layers
State = tuple[Tensor, ...]  # (h,) or, for the LSTM, (h, c)
Step = Callable[[Tensor, State], tuple[State, tuple[Tensor, ...]]]


class Recurrent(nn.Module):
    """A stack of cells run over sequences, exactly as nn.RNN/nn.LSTM/nn.GRU run theirs.

    `mode` is "RNN", "LSTM" or "GRU". Parameters are registered under torch's names
    (`weight_ih_l{k}`, `weight_hh_l{k}`, `bias_ih_l{k}`, `bias_hh_l{k}`, `_reverse` for the
    backward direction) in torch's order, and initialised as torch initialises them.
    """

    def __init__(
        self,
        mode: str,
        input_size: int,
        hidden_size: int,
        num_layers: int = 1,
        bias: bool = True,
        batch_first: bool = False,
        dropout: float = 0.0,
        bidirectional: bool = False,
        nonlinearity: str = "tanh",
        proj_size: int = 0,
        device: Any = None,
        dtype: Any = None,
    ):
        super().__init__()
        if mode not in CELLS:
            raise ValueError(f"mode {mode!r}: expected RNN, LSTM or GRU")
        if proj_size:
            raise ValueError("proj_size (LSTM projections) is not supported by zoo.cells")
        if mode == "RNN" and nonlinearity not in ACTIVATIONS:
            raise ValueError(f"nonlinearity {nonlinearity!r}: expected tanh, relu or identity")
        if not 0 <= dropout <= 1 or isinstance(dropout, bool):
            raise ValueError("dropout should be a number in [0, 1]")
        if dropout > 0 and num_layers == 1:
            warnings.warn(
                "dropout option adds dropout after all but last recurrent layer, so non-zero "
                f"dropout expects num_layers greater than 1, but got dropout={dropout} and "
                f"num_layers={num_layers}",
                stacklevel=2,
            )
        if hidden_size <= 0 or num_layers <= 0:
            raise ValueError("hidden_size and num_layers must be positive")
        self.mode, self.input_size, self.hidden_size = mode, input_size, hidden_size
        self.num_layers, self.bias, self.batch_first = num_layers, bias, batch_first
        self.dropout, self.bidirectional = float(dropout), bidirectional
        self.nonlinearity = nonlinearity
        self.proj_size = 0
        self.cell = CELLS[mode]
        rows = self.cell.chunks * hidden_size
        directions = 2 if bidirectional else 1
        kw = {"device": device, "dtype": dtype}
        self._weight_names: list[tuple[str, str, str | None, str | None]] = []
        for layer in range(num_layers):
            layer_input = input_size if layer == 0 else hidden_size * directions
            for direction in range(directions):
                sfx = f"_l{layer}" + ("_reverse" if direction else "")
                names = (f"weight_ih{sfx}", f"weight_hh{sfx}")
                setattr(self, names[0], nn.Parameter(torch.empty(rows, layer_input, **kw)))
                setattr(self, names[1], nn.Parameter(torch.empty(rows, hidden_size, **kw)))
                biases: tuple[str | None, str | None] = (None, None)
                if bias:
                    biases = (f"bias_ih{sfx}", f"bias_hh{sfx}")
                    setattr(self, biases[0], nn.Parameter(torch.empty(rows, **kw)))
                    setattr(self, biases[1], nn.Parameter(torch.empty(rows, **kw)))
                self._weight_names.append((*names, *biases))
        self.recording: list[dict[str, Any]] | None = None  # see record_gates
        self.reset_parameters()

    def reset_parameters(self) -> None:
        bound = 1.0 / math.sqrt(self.hidden_size)
        for weight in self.parameters():
            nn.init.uniform_(weight, -bound, bound)

    def flatten_parameters(self) -> None:
        """A no-op, so code written for torch's layers (which call it for cuDNN) runs as is."""

    @property
    def all_weights(self) -> list[list[nn.Parameter]]:
        """Per layer and direction: [weight_ih, weight_hh, bias_ih, bias_hh], as torch's."""
        return [[getattr(self, n) for n in names if n] for names in self._weight_names]

    def extra_repr(self) -> str:
        s = f"{self.input_size}, {self.hidden_size}"
        if self.num_layers != 1:
            s += f", num_layers={self.num_layers}"
        if self.mode == "RNN" and self.nonlinearity != "tanh":
            s += f", nonlinearity={self.nonlinearity!r}"
        for name, default in (("bias", True), ("batch_first", False), ("bidirectional", False)):
            if getattr(self, name) != default:
                s += f", {name}={getattr(self, name)}"
        if self.dropout:
            s += f", dropout={self.dropout}"
        return s

    # -- one direction of one layer -----------------------------------------------------------
    def _step_function(self, w_hh: Tensor, b_hh: Tensor | None) -> Step:
        """The cell's step with this layer's weights, on a state tuple."""
        if self.mode == "LSTM":
            return lambda xw, s: LSTMCell.step(xw, (s[0], s[1]), w_hh, b_hh)
        if self.mode == "GRU":

            def gru(xw: Tensor, s: State) -> tuple[State, tuple[Tensor, ...]]:
                h, gates = GRUCell.step(xw, s[0], w_hh, b_hh)
                return (h,), gates

            return gru
        act = ACTIVATIONS[self.nonlinearity]

        def elman(xw: Tensor, s: State) -> tuple[State, tuple[Tensor, ...]]:
            h, gates = ElmanCell.step(xw, s[0], w_hh, b_hh, act)
            return (h,), gates

        return elman

    @staticmethod
    def _run_direction(
        step: Step,
        xw: Tensor,
        batch_sizes: list[int],
        initial: State,
        reverse: bool,
        gates: list[tuple[Tensor, ...]] | None,
    ) -> tuple[Tensor, State]:
        """Step through packed rows: at time t the first batch_sizes[t] sequences (longest
        first) are active. Forwards, a sequence's final state is the one after its own last
        step; backwards, each sequence starts from its initial state at its own last step."""
        starts = [0]
        for n in batch_sizes:
            starts.append(starts[-1] + n)
        outputs: list[Tensor] = []
        if not reverse:
            state, finished = initial, []
            for t, n in enumerate(batch_sizes):
                if n < state[0].shape[0]:  # the shortest sequences have ended: keep their state
                    finished.append(tuple(s[n:] for s in state))
                    state = tuple(s[:n] for s in state)
                state, g = step(xw[starts[t] : starts[t] + n], state)
                outputs.append(state[0])
                if gates is not None:
                    gates.append(g)
            final = tuple(
                torch.cat([state[k], *(f[k] for f in reversed(finished))])
                for k in range(len(state))
            )
        else:
            state = tuple(s[: batch_sizes[-1]] for s in initial)
            for t in reversed(range(len(batch_sizes))):
                n, m = batch_sizes[t], state[0].shape[0]
                if n > m:  # longer sequences start here, at their own last step
                    state = tuple(torch.cat([s, s0[m:n]]) for s, s0 in zip(state, initial))
                state, g = step(xw[starts[t] : starts[t] + n], state)
                outputs.append(state[0])
                if gates is not None:
                    gates.append(g)
            outputs.reverse()
            if gates is not None:
                gates.reverse()
            final = state
        return torch.cat(outputs), final

    # -- the layer --------------------------------------------------------------------------
    def forward(
        self, input: Tensor | PackedSequence, hx: Tensor | tuple[Tensor, Tensor] | None = None
    ) -> tuple[Any, Any]:
        """As nn.RNN/nn.GRU (`hx`: h_0) and nn.LSTM (`hx`: (h_0, c_0)); returns (output, h_n)
        or, for the LSTM, (output, (h_n, c_n))."""
        flat = self._flatten(input)
        data, batch_sizes = flat["data"], flat["batch_sizes"]
        if data.shape[-1] != self.input_size:
            raise RuntimeError(
                f"input.size(-1) must be equal to input_size. Expected {self.input_size}, "
                f"got {data.shape[-1]}"
            )
        states = self._initial_states(
            hx, batch_sizes[0] if batch_sizes else 0, data, flat["batched"]
        )
        if flat["sorted"] is not None:
            states = tuple(s.index_select(1, flat["sorted"]) for s in states)
        output, finals = self._run_layers(data, batch_sizes, states, flat["unsorted"])
        h_n = tuple(torch.stack([f[k] for f in finals]) for k in range(len(states)))
        if flat["unsorted"] is not None:
            h_n = tuple(s.index_select(1, flat["unsorted"]) for s in h_n)
        if isinstance(input, PackedSequence):
            output = PackedSequence(output, input.batch_sizes, flat["sorted"], flat["unsorted"])
        else:
            output = output.reshape(len(batch_sizes), batch_sizes[0], -1)
            if self.batch_first:
                output = output.transpose(0, 1)
            if not flat["batched"]:
                output = output.squeeze(0 if self.batch_first else 1)
                h_n = tuple(s.squeeze(1) for s in h_n)
        return output, (h_n if self.mode == "LSTM" else h_n[0])

    def _flatten(self, input: Tensor | PackedSequence) -> dict[str, Any]:
        """The input as rows of [steps * batch, features], time-major, with the batch size of
        each step (as a PackedSequence holds it), whatever form it came in."""
        if isinstance(input, PackedSequence):
            data, batch_sizes, sorted_indices, unsorted_indices = input
            return {"data": data, "batch_sizes": batch_sizes.tolist(), "batched": True,
                    "sorted": sorted_indices, "unsorted": unsorted_indices}  # fmt: skip
        if input.dim() not in (2, 3):
            raise ValueError(
                f"{self.mode}: Expected input to be 2D or 3D, got {input.dim()}D tensor instead"
            )
        batched = input.dim() == 3
        x = input if batched else input.unsqueeze(0 if self.batch_first else 1)
        if self.batch_first:
            x = x.transpose(0, 1)
        time_steps, batch = x.shape[0], x.shape[1]
        data = x.reshape(time_steps * batch, x.shape[2])
        return {"data": data, "batch_sizes": [batch] * time_steps, "batched": batched,
                "sorted": None, "unsorted": None}  # fmt: skip

    def _run_layers(
        self, data: Tensor, batch_sizes: list[int], states: State, unsorted: Tensor | None
    ) -> tuple[Tensor, list[Any]]:
        """Every layer and direction over the flattened input: (top output, final states)."""
        directions = 2 if self.bidirectional else 1
        layer_input, finals = data, []
        record = self.recording is not None
        for layer in range(self.num_layers):
            outputs = []
            for direction in range(directions):
                index = layer * directions + direction
                w_ih, w_hh, b_ih, b_hh = (
                    None if n is None else getattr(self, n) for n in self._weight_names[index]
                )
                xw = F.linear(layer_input, w_ih, b_ih)  # W_ih x + b_ih for every step at once
                gates: list[tuple[Tensor, ...]] | None = [] if record else None
                out, final = self._run_direction(
                    self._step_function(w_hh, b_hh),
                    xw,
                    batch_sizes,
                    tuple(s[index] for s in states),
                    reverse=direction == 1,
                    gates=gates,
                )
                outputs.append(out)
                finals.append(final)
                if gates is not None:
                    self._record(layer, direction, gates, batch_sizes, unsorted)
            layer_input = outputs[0] if directions == 1 else torch.cat(outputs, dim=-1)
            if self.dropout and self.training and layer < self.num_layers - 1:
                layer_input = F.dropout(layer_input, self.dropout, training=True)
        return layer_input, finals

    def _initial_states(self, hx: Any, batch: int, data: Tensor, batched: bool) -> State:
        """hx as a tuple of [layers*directions, batch, hidden] tensors (zeros when None)."""
        shape = (self.num_layers * (2 if self.bidirectional else 1), batch, self.hidden_size)
        count = 2 if self.mode == "LSTM" else 1
        if hx is None:
            zeros = data.new_zeros(shape)
            return (zeros,) * count
        states = tuple(hx) if self.mode == "LSTM" else (hx,)
        if len(states) != count or not all(isinstance(s, Tensor) for s in states):
            raise RuntimeError(
                f"{self.mode}: hx must be " + ("(h_0, c_0)" if count == 2 else "a tensor")
            )
        if not batched:
            if any(s.dim() != 2 for s in states):
                raise RuntimeError("For unbatched 2-D input, hx should also be 2-D")
            states = tuple(s.unsqueeze(1) for s in states)
        for s in states:
            if tuple(s.shape) != shape:
                raise RuntimeError(f"Expected hidden size {shape}, got {tuple(s.shape)}")
        return states

    def _record(
        self,
        layer: int,
        direction: int,
        steps: list[tuple[Tensor, ...]],
        batch_sizes: list[int],
        unsorted_indices: Tensor | None,
    ) -> None:
        """Each gate as a [time, batch, hidden] tensor (zero past a sequence's end)."""
        assert self.recording is not None
        batch = batch_sizes[0]
        out: dict[str, Tensor] = {}
        for k, name in enumerate(self.cell.gate_names):
            first = steps[0][k]
            full = first.new_zeros(len(steps), batch, self.hidden_size)
            for t, g in enumerate(steps):
                full[t, : g[k].shape[0]] = g[k].detach()
            if unsorted_indices is not None:
                full = full.index_select(1, unsorted_indices)
            out[name] = full
        self.recording.append({"layer": layer, "direction": direction, "gates": out})


class RNN(Recurrent):
    """nn.RNN from `ElmanCell`s: same arguments (plus nonlinearity="identity"), same results."""

    def __init__(
        self,
        input_size: int,
        hidden_size: int,
        num_layers: int = 1,
        nonlinearity: str = "tanh",
        bias: bool = True,
        batch_first: bool = False,
        dropout: float = 0.0,
        bidirectional: bool = False,
        device: Any = None,
        dtype: Any = None,
    ):
        super().__init__(
            "RNN",
            input_size,
            hidden_size,
            num_layers,
            bias,
            batch_first,
            dropout,
            bidirectional,
            nonlinearity=nonlinearity,
            device=device,
            dtype=dtype,
        )


class LSTM(Recurrent):
    """nn.LSTM from `LSTMCell`s: same arguments (proj_size must be 0), same results."""

    def __init__(
        self,
        input_size: int,
        hidden_size: int,
        num_layers: int = 1,
        bias: bool = True,
        batch_first: bool = False,
        dropout: float = 0.0,
        bidirectional: bool = False,
        proj_size: int = 0,
        device: Any = None,
        dtype: Any = None,
    ):
        super().__init__(
            "LSTM",
            input_size,
            hidden_size,
            num_layers,
            bias,
            batch_first,
            dropout,
            bidirectional,
            proj_size=proj_size,
            device=device,
            dtype=dtype,
        )


class GRU(Recurrent):
    """nn.GRU from `GRUCell`s: same arguments, same results."""

    def __init__(
        self,
        input_size: int,
        hidden_size: int,
        num_layers: int = 1,
        bias: bool = True,
        batch_first: bool = False,
        dropout: float = 0.0,
        bidirectional: bool = False,
        device: Any = None,
        dtype: Any = None,
    ):
        super().__init__(
            "GRU",
            input_size,
            hidden_size,
            num_layers,
            bias,
            batch_first,
            dropout,
            bidirectional,
            device=device,
            dtype=dtype,
        )


KINDS = {"rnn": "RNN", "elman": "RNN", "lstm": "LSTM", "gru": "GRU"}
IMPLS = ("torch", "cells")


def recurrent_layer(kind: str, impl: str = "torch", *args: Any, **kwargs: Any) -> nn.Module:
    """nn.RNN/nn.LSTM/nn.GRU (`impl="torch"`) or the equivalent layer of this module
    (`impl="cells"`), built from the same arguments; `kind` is rnn (or elman), lstm or gru.

    Both give the same state dict, outputs and final states, and the same initial weights on
    the same seed; `cells` steps through the equations above, `torch` runs a fused kernel.
    """
    mode = KINDS.get(kind.lower())
    if mode is None:
        raise ValueError(f"kind {kind!r}: expected one of {', '.join(KINDS)}")
    if impl == "cells":
        return {"RNN": RNN, "LSTM": LSTM, "GRU": GRU}[mode](*args, **kwargs)
    if impl != "torch":
        raise ValueError(f"impl {impl!r}: expected torch or cells")
    if mode == "RNN" and kwargs.get("nonlinearity") == "identity":
        raise ValueError("nn.RNN has no identity nonlinearity; use impl='cells'")
    return {"RNN": nn.RNN, "LSTM": nn.LSTM, "GRU": nn.GRU}[mode](*args, **kwargs)


@contextlib.contextmanager
def record_gates(module: nn.Module) -> Iterator[list[dict[str, Any]]]:
    """Collect the gate activations of every zoo.cells layer inside `module` while the block
    runs. Yields a list that fills with one entry per layer, direction and forward call:
    {"module": name, "layer": k, "direction": 0 or 1, "gates": {gate: [time, batch, hidden]}}
    (gates: h for Elman; i, f, g, o and the cell state c for the LSTM; r, z, n for the GRU).
    """
    found: list[dict[str, Any]] = []
    layers = [(n, m) for n, m in module.named_modules() if isinstance(m, Recurrent)]
    sinks: list[tuple[str, list[dict[str, Any]]]] = []
    for name, layer in layers:
        sink: list[dict[str, Any]] = []
        layer.recording = sink
        sinks.append((name, sink))
    try:
        yield found
    finally:
        for _, layer in layers:
            layer.recording = None
    # Entries from all layers in call order per layer; the caller reads them after the block.
    for name, sink in sinks:
        found.extend({"module": name, **entry} for entry in sink)
