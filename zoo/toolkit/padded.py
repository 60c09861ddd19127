"""Run torch's recurrent layers over right-padded batches, exactly, without packing.

Why not `pack_padded_sequence`: on CPU, training through a PackedSequence runs every time step
as its own small slice of the input, and the backward pass of each slice fills a gradient the
size of the whole input (EWT tagger: `aten::fill_` took 44% of a training step). A dense
batch instead goes to one fused kernel per layer and direction (oneDNN's on CPU).

Why this is exact: with padding at the end of each row, the forward direction reads every
real step before any padding, so the padding changes no real output. The backward direction
would read the padding first; so each row is reversed within its own length before that
direction runs and reversed back after, which puts its padding at the end too. Layers are run
one at a time with the layer's own parameters (state dict unchanged), dropout between layers as
nn.LSTM applies it. Outputs at padded positions are zero, as `pad_packed_sequence` gives.

Padding costs work, so batches should hold sentences of similar length (zoo's `Data.length`
bucketing does that).

Inference (eval mode, no autograd, float32 on the CPU): torch's LSTM kernel there is oneDNN's,
and torch hands it the weights in torch's layout, which oneDNN reorders into its own on every
call: 0.3 ms of each layer and direction for the EWT tagger (hidden 240), whatever the
batch, most of the time to tag one short sentence. So an LSTM's weights are reordered once
(per version of the weights: training or loading new ones packs them again) and the same
kernel is called with them: the same numbers, bit for bit (tests/core/test_padded.py).
"""

from __future__ import annotations

import functools
import operator
from typing import Any
from weakref import WeakKeyDictionary

import torch
import torch.nn.functional as F
from torch import nn

_KERNELS = {
    "LSTM": torch.lstm,
    "GRU": torch.gru,
    "RNN_TANH": torch.rnn_tanh,
    "RNN_RELU": torch.rnn_relu,
}


def supports(layer: nn.Module) -> bool:
    """True for the torch layers `run` handles: nn.LSTM (without projections), nn.GRU, nn.RNN."""
    return (
        isinstance(layer, nn.RNNBase)
        and layer.mode in _KERNELS
        and not getattr(layer, "proj_size", 0)
    )


def reverse_index(lengths: torch.Tensor, steps: int) -> torch.Tensor:
    """[B, T] time indices that reverse each row within its length and leave its padding."""
    t = torch.arange(steps, device=lengths.device).unsqueeze(0)
    n = lengths.to(t.device).unsqueeze(1)
    return torch.where(t < n, n - 1 - t, t)


def run(layer: nn.RNNBase, x: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
    """Outputs of `layer` (batch_first) for x [B, T, in] whose row b is real up to lengths[b]:
    [B, T, directions * hidden], the same numbers as through pack_padded_sequence."""
    if not layer.batch_first:
        raise ValueError("padded.run needs a batch_first layer")
    kernel = _KERNELS[layer.mode]
    steps = x.shape[1]
    # No padding (one sentence, say): rows reversed whole and no mask, the same numbers with
    # fewer operations. Asked only of lengths on the CPU: on a GPU the answer costs a sync.
    full = lengths.device.type == "cpu" and bool((lengths == steps).all())
    lengths = lengths.to(x.device)  # the index and mask live beside x, wherever lengths came from
    zero = x.new_zeros(1, x.shape[0], layer.hidden_size)
    hx = (zero, zero) if layer.mode == "LSTM" else zero
    names = ["weight_ih", "weight_hh"] + (["bias_ih", "bias_hh"] if layer.bias else [])
    directions = ["", "_reverse"] if layer.bidirectional else [""]
    if layer.bidirectional and not full:
        index = reverse_index(lengths, steps).unsqueeze(2)

    def flip(t: torch.Tensor) -> torch.Tensor:
        if full:
            return t.flip(1)
        return t.gather(1, index.expand(-1, -1, t.shape[2]))

    packed = _packed_weights(layer) if _packable(layer, x) else None
    h = x
    for k in range(layer.num_layers):
        outs = []
        for suffix in directions:
            params = [getattr(layer, f"{n}_l{k}{suffix}") for n in names]
            inp = flip(h) if suffix else h  # the reverse direction reads each row backwards
            if packed is not None:
                out = _lstm_packed(inp, hx, packed[f"l{k}{suffix}"], params, layer.hidden_size)
            else:
                out = kernel(inp, hx, params, layer.bias, 1, 0.0, layer.training, False, True)[0]
            outs.append(flip(out) if suffix else out)
        h = torch.cat(outs, dim=2) if len(outs) > 1 else outs[0]
        if k < layer.num_layers - 1 and layer.dropout > 0:
            h = F.dropout(h, layer.dropout, layer.training)
    if full:
        return h
    mask = torch.arange(steps, device=h.device).unsqueeze(0) < lengths.unsqueeze(1)
    return h * mask.unsqueeze(2)


# layer -> (its weights, their versions, each direction's weights in oneDNN's layout): the
# weights are kept so that a replaced tensor can never be taken for the one packed.
_PACKED: WeakKeyDictionary[nn.RNNBase, tuple[list[torch.Tensor], list[int], dict[str, Any]]]
_PACKED = WeakKeyDictionary()
# torch's call of oneDNN for one LSTM layer and direction, time-major, in inference
# (aten::mkldnn_rnn_layer; mode 2 is ideep's LSTM)
_ONE_LAYER = {
    "reverse": False,
    "batch_sizes": [],
    "mode": 2,
    "num_layers": 1,
    "has_biases": True,
    "bidirectional": False,
    "batch_first": False,
    "train": False,
}


def _packable(layer: nn.RNNBase, x: torch.Tensor) -> bool:
    """Whether torch would run this LSTM through oneDNN for inference (the module docstring),
    this torch can hand oneDNN packed weights, and no graph is being recorded."""
    return (
        layer.mode == "LSTM"
        and layer.bias
        and not layer.training
        and not torch.is_grad_enabled()
        and x.device.type == "cpu"
        and x.dtype == torch.float32
        and x.numel() > 0
        and not layer.weight_ih_l0.is_inference()  # no version: a change would go unseen
        and bool(torch.backends.mkldnn.enabled)
        and _onednn_lstm()
        and not torch.jit.is_tracing()  # an export (ONNX) records torch's own LSTM
        and not torch.compiler.is_compiling()
    )


@functools.cache
def _onednn_lstm() -> bool:
    """This torch has oneDNN and takes its LSTM weights packed (asked once: looking up an
    operator in torch.ops costs microseconds at every call)."""
    return torch.backends.mkldnn.is_available() and hasattr(
        torch.ops.mkldnn, "_reorder_mkldnn_rnn_layer_weight"
    )


def _packed_weights(layer: nn.RNNBase) -> dict[str, Any]:
    """`l{k}{suffix}` -> (weight_ih, weight_hh) of that layer and direction in oneDNN's layout,
    packed again whenever a weight was replaced or changed in place (its version)."""
    directions = ["", "_reverse"] if layer.bidirectional else [""]
    names = [f"l{k}{s}" for k in range(layer.num_layers) for s in directions]
    weights = [getattr(layer, f"weight_{w}_{n}") for n in names for w in ("ih", "hh")]
    versions = [w._version for w in weights]
    cached = _PACKED.get(layer)
    if cached is None or cached[1] != versions or any(map(operator.is_not, cached[0], weights)):
        pack = torch.ops.mkldnn._reorder_mkldnn_rnn_layer_weight
        packed = {
            n: pack(weights[2 * i], weights[2 * i + 1], layer.hidden_size, False, True, False)
            for i, n in enumerate(names)
        }
        cached = _PACKED[layer] = (weights, versions, packed)
    return cached[2]


def _lstm_packed(
    x: torch.Tensor, hx: Any, weights: list[torch.Tensor], params: list[torch.Tensor], size: int
) -> torch.Tensor:
    """One LSTM layer and direction over batch-first x [B, T, in] with packed weights: what
    torch.lstm does on the CPU, time-major for oneDNN, without the reorder."""
    steps = x.transpose(0, 1).contiguous()
    h0, c0 = hx[0][0], hx[1][0]
    run = torch.ops.aten.mkldnn_rnn_layer
    out = run(steps, *weights, params[2], params[3], h0, c0, hidden_size=size, **_ONE_LAYER)[0]
    return out.transpose(0, 1)
