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
"""

from __future__ import annotations

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
    lengths = lengths.to(x.device)  # the index and mask live beside x, wherever lengths came from
    zero = x.new_zeros(1, x.shape[0], layer.hidden_size)
    hx = (zero, zero) if layer.mode == "LSTM" else zero
    names = ["weight_ih", "weight_hh"] + (["bias_ih", "bias_hh"] if layer.bias else [])
    directions = ["", "_reverse"] if layer.bidirectional else [""]
    if layer.bidirectional:
        index = reverse_index(lengths, steps).unsqueeze(2)

    def flip(t: torch.Tensor) -> torch.Tensor:
        return t.gather(1, index.expand(-1, -1, t.shape[2]))

    h = x
    for k in range(layer.num_layers):
        outs = []
        for suffix in directions:
            params = [getattr(layer, f"{n}_l{k}{suffix}") for n in names]
            inp = flip(h) if suffix else h  # the reverse direction reads each row backwards
            out = kernel(inp, hx, params, layer.bias, 1, 0.0, layer.training, False, True)[0]
            outs.append(flip(out) if suffix else out)
        h = torch.cat(outs, dim=2) if len(outs) > 1 else outs[0]
        if k < layer.num_layers - 1 and layer.dropout > 0:
            h = F.dropout(h, layer.dropout, layer.training)
    mask = torch.arange(steps, device=h.device).unsqueeze(0) < lengths.unsqueeze(1)
    return h * mask.unsqueeze(2)
