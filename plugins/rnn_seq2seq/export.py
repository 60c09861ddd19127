"""The encoder-decoder as two ONNX graphs (`zoo export`, docs/export.md), so that greedy and
beam search run outside the graph, in the runtime's numpy, as decode.py runs them here:

- `encoder`: source ids [batch, length] and lengths [batch] -> the decoder's first state
  (h, and c for an LSTM) and, with attention, the memory, its attention keys and the mask of
  real source positions;
- `decoder`: the previous tokens [batch], the state and the encoder's outputs -> scores over
  the target vocabulary [batch, vocab] and the next state. Beam search reorders the state rows.

The encoder packs the padded batch as `Seq2Seq.encode` does; torch's exporter writes that as
ONNX's recurrent operators with `sequence_lens`, whose final states are each row's own.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from zoo.toolkit.exportspec import ExportSpec, Graph

from .data import BOS_ID, EOS_ID, PAD_ID
from .decode import Encoded, map_state

BATCH, SOURCE = {0: "batch"}, {0: "batch", 1: "source"}


class Encoder(nn.Module):
    def __init__(self, network: Any):
        super().__init__()
        self.network = network

    def forward(self, src: torch.Tensor, lengths: torch.Tensor) -> tuple[torch.Tensor, ...]:
        net = self.network
        if net.config.attention != "none":
            encoded, state = net.encode(src, lengths)
            states = state if isinstance(state, tuple) else (state,)
            return (*states, encoded.memory, encoded.keys, encoded.mask)
        # Seq2Seq.encode without attention leaves the packed outputs unused, which torch's
        # exporter cannot handle; here they are unpacked and given as an extra output.
        emb = net.dropout(net.src_embedding(src))
        packed = pack_padded_sequence(emb, lengths, batch_first=True, enforce_sorted=False)
        out, state = net.encoder(packed)
        if net.config.bidirectional:
            state = map_state(state, net._join_directions)
        outputs, _ = pad_packed_sequence(out, batch_first=True, total_length=src.shape[1])
        return (*(state if isinstance(state, tuple) else (state,)), outputs)


class DecoderStep(nn.Module):
    def __init__(self, network: Any):
        super().__init__()
        self.network = network
        self.lstm = network.config.cell == "lstm"

    def forward(self, tokens: torch.Tensor, *rest: torch.Tensor) -> tuple[torch.Tensor, ...]:
        count = 2 if self.lstm else 1
        state = tuple(rest[:count]) if self.lstm else rest[0]
        memory = rest[count:]
        encoded = Encoded(*memory) if memory else None
        scores, after = self.network.step(tokens, state, encoded)
        return (scores, *after) if isinstance(after, tuple) else (scores, after)


def export_spec(network: Any) -> ExportSpec:
    """Both graphs, traced on two sources of different lengths."""
    config = network.config
    src = torch.tensor([[4, 5, 6, 7, 5], [6, 4, 5, 0, 0]]).clamp(
        max=len(network.state["source"]) - 1
    )
    lengths = torch.tensor([5, 3])
    encoder = Encoder(network)
    with torch.no_grad():
        encoded = encoder(src, lengths)
    states = ["h", "c"] if config.cell == "lstm" else ["h"]
    memory = ["outputs"] if config.attention == "none" else ["memory", "keys", "mask"]
    state_axes = {1: "batch"}
    encoder_graph = Graph(
        encoder,
        {"src": src, "lengths": lengths},
        states + memory,
        {
            "src": SOURCE,
            "lengths": BATCH,
            **dict.fromkeys(states, state_axes),
            **dict.fromkeys(memory, SOURCE),
        },
        role="encoder",
    )
    if config.attention == "none":
        memory = []  # the decoder reads no memory
    tokens = torch.tensor([BOS_ID, BOS_ID])
    decoder_inputs = {"tokens": tokens, **dict(zip(states + memory, encoded))}
    decoder_graph = Graph(
        DecoderStep(network),
        decoder_inputs,
        ["scores", *(f"{n}_out" for n in states)],
        {
            "tokens": BATCH,
            "scores": BATCH,
            **dict.fromkeys(states, state_axes),
            **{f"{n}_out": state_axes for n in states},
            **dict.fromkeys(memory, SOURCE),
        },
        role="decoder",
    )
    settings = {"pad": PAD_ID, "bos": BOS_ID, "eos": EOS_ID, "max_length": network.max_length}
    return ExportSpec("seq2seq", [encoder_graph, decoder_graph], settings)
