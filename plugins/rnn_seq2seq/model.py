"""The encoder-decoder network: embeddings, RNN encoder, attention, RNN decoder, output layer.

    memory, state = Encoder(Embed(x_1 .. x_n))          # bidirectional: both halves joined
    no attention:  s_t = Dec(Embed(y_{t-1}), s_{t-1});  o_t = s_t
    luong:         s_t = Dec(Embed(y_{t-1}), s_{t-1});  c_t = Attn(s_t, memory);
                   o_t = tanh(W_c [c_t; s_t])
    bahdanau:      c_t = Attn(s_{t-1}, memory);  s_t = Dec([Embed(y_{t-1}); c_t], s_{t-1});
                   o_t = tanh(W_c [c_t; s_t])
    p(y_t) = softmax(W_o o_t + b)

Without attention, or with Luong attention, a teacher-forced decoder does not depend on its own
outputs, so training runs the decoder RNN over the whole target in one call (torch's fused
loop); Bahdanau attention, or a teacher-forcing ratio below 1, steps through time instead.
Both paths use the same `step`-compatible layers, so a model trained one way decodes the other.

Layer names are torch's own (`encoder.weight_ih_l0`, `tgt_embedding.weight`), so the weights
load into plain `nn.LSTM`/`nn.GRU`/`nn.RNN`, `nn.Embedding` and `nn.Linear` layers. Greedy and
beam search are in `decode.py`, the data in `data.py`.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

import zoo
from zoo.core.errors import SettingError, UsageError
from zoo.toolkit.cells import recurrent_layer
from zoo.toolkit.data import lengths as lengths_of
from zoo.toolkit.data import map_in_length_order, pad
from zoo.toolkit.metrics import Tally
from zoo.toolkit.vocab import Tokenizer, Vocab

from . import PredictConfig
from .bleu import MAX_ORDER, bleu_of, segment_counts
from .data import PAD_ID, UNK_ID
from .decode import Encoded, State, beam_search, decode_limit, greedy, map_state


class LuongAttention(nn.Module):
    """Multiplicative ("general") attention: score(s, m) = s^T W m, padding masked out."""

    def __init__(self, query_size: int, memory_size: int):
        super().__init__()
        self.linear_in = nn.Linear(memory_size, query_size, bias=False)

    def keys(self, memory: torch.Tensor) -> torch.Tensor:
        """W m for every memory position, computed once per source batch."""
        return self.linear_in(memory)

    def scores(self, query: torch.Tensor, keys: torch.Tensor) -> torch.Tensor:
        return torch.bmm(query, keys.transpose(1, 2))  # [B, T, S]


class BahdanauAttention(nn.Module):
    """Additive attention: score(s, m) = v^T tanh(W_q s + W_m m), padding masked out."""

    def __init__(self, query_size: int, memory_size: int):
        super().__init__()
        self.memory_layer = nn.Linear(memory_size, query_size, bias=False)
        self.query_layer = nn.Linear(query_size, query_size)
        self.v = nn.Linear(query_size, 1, bias=False)

    def keys(self, memory: torch.Tensor) -> torch.Tensor:
        return self.memory_layer(memory)

    def scores(self, query: torch.Tensor, keys: torch.Tensor) -> torch.Tensor:
        q = self.query_layer(query).unsqueeze(2)  # [B, T, 1, A]
        return self.v(torch.tanh(q + keys.unsqueeze(1))).squeeze(-1)  # [B, T, S]


ATTENTIONS = {"luong": LuongAttention, "bahdanau": BahdanauAttention}


def attend(
    attention: nn.Module,
    query: torch.Tensor,
    keys: torch.Tensor,
    memory: torch.Tensor,
    mask: torch.Tensor,
) -> torch.Tensor:
    """Context vectors [B, T, M] for queries [B, T, H]; `mask` [B, S] is True on real tokens."""
    scores = attention.scores(query, keys).masked_fill(~mask.unsqueeze(1), float("-inf"))
    return torch.bmm(torch.softmax(scores, dim=-1), memory)


class Seq2Seq(zoo.Network):
    """RNN encoder-decoder with optional attention; see the module docstring for the equations.
    The state gives the vocabularies (`source`, `target`), the tokeniser and
    `max_target_length` (the decoding limit follows it)."""

    max_input_length = 2_000  # tokens of one source: attention and beams grow with it

    @property
    def input_unit(self) -> str:  # type: ignore[override]
        """Source tokens: characters or words, as the data was tokenised."""
        return "characters" if self.state.get("tokens") == "char" else "words"

    def __init__(self, config: Any, state: dict[str, Any]):
        super().__init__(config, state)
        if config.tie_embeddings == "all" and state["source"] != state["target"]:
            raise SettingError(
                "tie_embeddings=all: needs one vocabulary for source and target; "
                "train with shared_vocab=true"
            )
        source_vocab, target_vocab = len(state["source"]), len(state["target"])
        emb, hidden, layers = config.embedding_dim, config.hidden_size, config.num_layers
        self.max_length = decode_limit(config, state)
        between = config.dropout if layers > 1 else 0.0
        rnn = functools.partial(recurrent_layer, config.cell, config.impl)

        self.src_embedding = nn.Embedding(source_vocab, emb, padding_idx=PAD_ID)
        if config.tie_embeddings == "all":
            self.tgt_embedding = self.src_embedding
        else:
            self.tgt_embedding = nn.Embedding(target_vocab, emb, padding_idx=PAD_ID)
        # A bidirectional encoder has half the units per direction, so its outputs and its
        # final states (both directions joined) have the decoder's size.
        enc_hidden = hidden // 2 if config.bidirectional else hidden
        self.encoder = rnn(
            emb,
            enc_hidden,
            layers,
            batch_first=True,
            dropout=between,
            bidirectional=config.bidirectional,
        )
        dec_input = emb + (hidden if config.attention == "bahdanau" else 0)
        self.decoder = rnn(dec_input, hidden, layers, batch_first=True, dropout=between)
        if config.attention != "none":
            self.attention = ATTENTIONS[config.attention](hidden, hidden)
            self.combine = nn.Linear(2 * hidden, hidden)
        self.dropout = nn.Dropout(config.dropout)
        readout = hidden
        if config.tie_embeddings != "none" and hidden != emb:
            self.project = nn.Linear(hidden, emb, bias=False)
            readout = emb
        self.out = nn.Linear(readout, target_vocab)
        if config.tie_embeddings != "none":
            self.out.weight = self.tgt_embedding.weight

    def export_spec(self) -> Any:
        """The encoder and decoder-step ONNX graphs, for the runtime's `seq2seq` recipe."""
        from .export import export_spec

        return export_spec(self)

    # ----------------------------------------------------------------------------- encoder
    def encode(self, src: torch.Tensor, lengths: torch.Tensor) -> tuple[Encoded, State]:
        """Encoder outputs (padding masked) and the decoder's initial state."""
        packed = pack_padded_sequence(
            self.dropout(self.src_embedding(src)),
            lengths.cpu(),
            batch_first=True,
            enforce_sorted=False,
        )
        out, state = self.encoder(packed)
        if self.config.bidirectional:
            state = map_state(state, self._join_directions)
        if self.config.attention == "none":
            return Encoded(src.new_empty(0), None, src.new_empty(0, dtype=torch.bool)), state
        memory, _ = pad_packed_sequence(out, batch_first=True, total_length=src.shape[1])
        mask = src != PAD_ID
        return Encoded(memory, self.attention.keys(memory), mask), state

    def _join_directions(self, h: torch.Tensor) -> torch.Tensor:
        """[layers*2, B, H/2] -> [layers, B, H]: each layer's forward and backward halves."""
        layers2, batch, half = h.shape
        return h.view(layers2 // 2, 2, batch, half).transpose(1, 2).reshape(-1, batch, 2 * half)

    # ----------------------------------------------------------------------------- decoder
    def readout(self, hidden: torch.Tensor, context: torch.Tensor | None) -> torch.Tensor:
        """Scores over the target vocabulary from decoder outputs (and attention contexts)."""
        if context is not None:
            hidden = torch.tanh(self.combine(torch.cat([context, hidden], dim=-1)))
        hidden = self.dropout(hidden)
        if hasattr(self, "project"):
            hidden = self.project(hidden)
        return self.out(hidden)

    def step(
        self, tokens: torch.Tensor, state: State, encoded: Encoded
    ) -> tuple[torch.Tensor, State]:
        """One decoder step for a batch: previous tokens [B] -> scores [B, V], new state."""
        emb = self.dropout(self.tgt_embedding(tokens)).unsqueeze(1)
        context = None
        if self.config.attention == "bahdanau":
            top = (state[0] if isinstance(state, tuple) else state)[-1].unsqueeze(1)
            context = attend(self.attention, top, encoded.keys, encoded.memory, encoded.mask)
            emb = torch.cat([emb, context], dim=-1)
        out, state = self.decoder(emb, state)
        if self.config.attention == "luong":
            context = attend(self.attention, out, encoded.keys, encoded.memory, encoded.mask)
        return self.readout(out, context).squeeze(1), state

    # ------------------------------------------------------------------------ the network
    def forward(
        self, src: torch.Tensor, lengths: torch.Tensor, tgt_in: torch.Tensor
    ) -> torch.Tensor:
        """Scores [B, T, V] for every target position, the decoder fed `tgt_in` (teacher
        forcing), or in training with a ratio below 1, sometimes its own previous choice."""
        encoded, state = self.encode(src, lengths)
        sampling = self.training and self.config.teacher_forcing < 1.0
        if self.config.attention == "bahdanau" or sampling:
            return self._stepwise(tgt_in, state, encoded, sampling)
        out, _ = self.decoder(self.dropout(self.tgt_embedding(tgt_in)), state)
        context = None
        if self.config.attention == "luong":
            context = attend(self.attention, out, encoded.keys, encoded.memory, encoded.mask)
        return self.readout(out, context)

    def _stepwise(
        self, tgt_in: torch.Tensor, state: State, encoded: Encoded, sampling: bool
    ) -> torch.Tensor:
        scores = []
        tokens = tgt_in[:, 0]
        for t in range(tgt_in.shape[1]):
            step_scores, state = self.step(tokens, state, encoded)
            scores.append(step_scores)
            if t + 1 < tgt_in.shape[1]:
                tokens = tgt_in[:, t + 1]
                if sampling:
                    teacher_forcing = self.config.teacher_forcing
                    own = torch.rand(tokens.shape, device=tokens.device) >= teacher_forcing
                    guess = step_scores.detach().argmax(-1)
                    # never replace padding: the loss ignores it, and it keeps lengths honest
                    tokens = torch.where(own & (tokens != PAD_ID), guess, tokens)
        return torch.stack(scores, dim=1)

    # -------------------------------------------------------------- what zoo asks of it
    def loss(self, batch: dict[str, Any]) -> torch.Tensor:
        """Mean cross-entropy over real target tokens (-100 marks padding)."""
        scores = self(batch["src"], batch["src_lengths"], batch["tgt_in"])
        return F.cross_entropy(scores.flatten(0, 1), batch["tgt_out"].flatten(), ignore_index=-100)

    def tally(self, batches: Iterable[dict[str, Any]]) -> Tally:
        """Per batch: the teacher-forced loss summed over target tokens; per sequence of the
        greedy outputs, exact match and token accuracy; where the data is natural language
        (the state says `bleu`), each segment's BLEU counts (`bleu.segment_counts`), which add
        up to the corpus's, so shares of a split scored apart give the same corpus BLEU.

        Token accuracy is, per sequence, the share of positions where output and reference
        agree, over the longer of the two. A reference token outside the vocabulary (<unk>)
        never counts as matched.
        """
        tally = Tally()
        want_bleu = bool(self.state.get("bleu"))
        detokenize, vocab = Tokenizer.from_state(self.state).detokenize, Vocab(self.state["target"])
        for batch in batches:
            gold = batch["tgt_out"]
            valid = gold != -100
            scores = self(batch["src"], batch["src_lengths"], batch["tgt_in"])
            tally.add("loss_sum", F.cross_entropy(scores[valid], gold[valid], reduction="sum"))
            tally.add("tokens", valid.sum())
            outputs = greedy(self, batch["src"], batch["src_lengths"])
            for row, predicted in zip(gold.tolist(), outputs):
                target = [-1 if t == UNK_ID else t for t in row if t != -100][:-1]  # drop </s>
                tally.add("exact", predicted == target)
                hits = sum(p == t for p, t in zip(predicted, target))
                tally.add("token_hits", hits / max(len(target), len(predicted), 1))
                tally.add("sequences", 1)
            if want_bleu and "references" in batch:  # other seq2seq datasets may carry no texts
                for ids, reference in zip(outputs, batch["references"]):
                    counts = segment_counts(detokenize(vocab.decode(ids)), [reference])
                    for k, count in enumerate(counts):
                        tally.add(f"bleu/{k}", count)
                    tally.add("bleu_segments", 1)
        return tally

    def score(self, tally: Tally) -> dict[str, float]:
        """Loss per target token, exact match and token accuracy averaged over sequences,
        corpus BLEU (sacrebleu's default) when every sequence had a reference text."""
        sequences = max(tally["sequences"], 1.0)
        metrics = {
            "loss": tally["loss_sum"] / max(tally["tokens"], 1.0),
            "exact_match": tally["exact"] / sequences,
            "token_accuracy": tally["token_hits"] / sequences,
        }
        if self.state.get("bleu") and tally["bleu_segments"] == tally["sequences"]:
            sums = [int(tally[f"bleu/{k}"]) for k in range(2 * MAX_ORDER + 2)]
            metrics["bleu"] = bleu_of(sums).score
        return metrics

    def predict(self, inputs: list[str], options: Any) -> list[dict[str, Any]]:
        """Each input is one source sequence; returns its translation (greedy, or beam search
        with `beam_size` > 1), decoded in batches of similar length."""
        tokenizer = Tokenizer.from_state(self.state)
        source_vocab, target_vocab = Vocab(self.state["source"]), Vocab(self.state["target"])
        encoded = []
        for i, text in enumerate(inputs):
            tokens = tokenizer(text)
            if not tokens:
                raise UsageError(f"input {i + 1} is empty: give a sequence to translate")
            encoded.append(source_vocab.encode(tokens))
        results = []
        for text, ids in zip(inputs, self.translate(encoded, options or PredictConfig())):
            output = tokenizer.detokenize(target_vocab.decode(ids))
            results.append({"input": text, "output": output, "text": output})
        return results

    def translate(self, sources: list[list[int]], options: PredictConfig) -> list[list[int]]:
        """Output ids (</s> excluded) for source ids, in the order given."""

        def run(batch: list[list[int]]) -> list[list[int]]:
            src = pad(batch, PAD_ID).to(self.device)
            if options.beam_size > 1:
                return beam_search(
                    self,
                    src,
                    lengths_of(batch),
                    options.beam_size,
                    options.length_penalty,
                    options.max_length,
                )
            return greedy(self, src, lengths_of(batch), options.max_length)

        return map_in_length_order(run, sources, options.batch_size)
