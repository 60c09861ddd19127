"""Batched decoding: greedy and beam search, stopping at </s> or a length limit.

Both work on any network with `encode(src, lengths)`, `step(tokens, state, encoded)` and
`max_length` (model.Seq2Seq; a scripted fake in the tests). Both decode a whole batch of
sources at once and stop as soon as every output has ended, so a batch costs as many decoder
steps as its longest output, not the limit. The limit is a safety net against a model that
never says </s>; `decode_limit` sets it generously (twice the longest training output plus
10, and never below 100) so that no real output is cut: SCAN's length split asks for outputs
up to 48 actions after training on at most 22.
"""

from __future__ import annotations

from typing import Any, Protocol

import torch

from .data import BOS_ID, EOS_ID

MIN_LIMIT = 100

# An RNN state: h [layers, batch, hidden], or (h, c) for an LSTM.
State = torch.Tensor | tuple[torch.Tensor, torch.Tensor]


class Encoded:
    """What the decoder needs from the encoder, expandable for beam search."""

    def __init__(self, memory: torch.Tensor, keys: torch.Tensor | None, mask: torch.Tensor):
        self.memory, self.keys, self.mask = memory, keys, mask

    def repeat(self, times: int) -> Encoded:
        """Each source `times` times in a row (beam search's batch x beam layout)."""

        def rep(t: torch.Tensor | None) -> torch.Tensor | None:
            return None if t is None else t.repeat_interleave(times, dim=0)

        return Encoded(rep(self.memory), rep(self.keys), rep(self.mask))  # type: ignore[arg-type]


class Seq2Seq(Protocol):
    """What decoding needs of a network (model.Seq2Seq has it)."""

    def encode(self, src: torch.Tensor, lengths: torch.Tensor) -> tuple[Encoded, State]: ...

    def step(
        self, tokens: torch.Tensor, state: State, encoded: Encoded | None
    ) -> tuple[torch.Tensor, State]: ...


def map_state(state: State, fn: Any) -> State:
    """`fn` applied to h (and c): reordering beams, joining directions."""
    return tuple(fn(s) for s in state) if isinstance(state, tuple) else fn(state)  # type: ignore[return-value]


def decode_limit(config: Any, state: dict[str, Any]) -> int:
    """The most tokens a decoder may write for one output (config `max_length`, 0: automatic)."""
    return config.max_length or max(MIN_LIMIT, 2 * int(state["max_target_length"]) + 10)


def _strip(rows: list[list[int]]) -> list[list[int]]:
    return [row[: row.index(EOS_ID)] if EOS_ID in row else row for row in rows]


@torch.no_grad()
def greedy(
    module: Seq2Seq, src: torch.Tensor, lengths: torch.Tensor, max_length: int = 0
) -> list[list[int]]:
    """Token ids of the most likely next token at each step, per source, </s> excluded."""
    limit = max_length or module.max_length
    encoded, state = module.encode(src, lengths)
    batch = src.shape[0]
    tokens = torch.full((batch,), BOS_ID, dtype=torch.long, device=src.device)
    finished = torch.zeros(batch, dtype=torch.bool, device=src.device)
    steps = []
    for _ in range(limit):
        scores, state = module.step(tokens, state, encoded)
        tokens = scores.argmax(-1)
        steps.append(tokens)
        finished |= tokens == EOS_ID
        if bool(finished.all()):
            break
    if not steps:
        return [[] for _ in range(batch)]
    return _strip(torch.stack(steps, 1).tolist())


def length_penalty(length: torch.Tensor, alpha: float) -> torch.Tensor:
    """GNMT's ((5 + |y|) / 6) ** alpha (Wu et al. 2016); alpha 0 ranks by total log-probability."""
    return ((5.0 + length.float()) / 6.0) ** alpha


@torch.no_grad()
def beam_search(
    module: Seq2Seq,
    src: torch.Tensor,
    lengths: torch.Tensor,
    beam_size: int = 5,
    alpha: float = 0.6,
    max_length: int = 0,
) -> list[list[int]]:
    """The best of `beam_size` hypotheses per source by length-normalised log-probability.

    All sources and beams decode as one batch of B*K rows. A hypothesis that has written </s>
    stays in its beam with a frozen score and length, so finished and open hypotheses compete
    on the same normalised score; the search stops when every beam has finished.
    """
    if beam_size <= 1:
        return greedy(module, src, lengths, max_length)
    limit = max_length or module.max_length
    batch, k = src.shape[0], beam_size
    encoded, state = module.encode(src, lengths)
    encoded = encoded.repeat(k)
    state = map_state(state, lambda h: h.repeat_interleave(k, dim=1))
    device = src.device
    tokens = torch.full((batch * k,), BOS_ID, dtype=torch.long, device=device)
    # Only the first beam is live at the start, so the K beams do not all pick the same token.
    score = torch.full((batch, k), float("-inf"), device=device)
    score[:, 0] = 0.0
    length = torch.zeros(batch, k, dtype=torch.long, device=device)
    finished = torch.zeros(batch, k, dtype=torch.bool, device=device)
    history = torch.empty(batch, k, 0, dtype=torch.long, device=device)
    offsets = (torch.arange(batch, device=device) * k).unsqueeze(1)
    for _ in range(limit):
        scores, state = module.step(tokens, state, encoded)
        logp = torch.log_softmax(scores.float(), dim=-1).view(batch, k, -1)
        vocab = logp.shape[-1]
        # A finished beam has one continuation, </s> again, at no cost.
        done = finished.unsqueeze(-1)
        frozen = torch.full_like(logp, float("-inf"))
        frozen[..., EOS_ID] = 0.0
        logp = torch.where(done, frozen, logp)
        total = score.unsqueeze(-1) + logp  # [B, K, V]
        new_length = length + (~finished).long()
        normalised = total / length_penalty(new_length, alpha).unsqueeze(-1)
        _, index = normalised.view(batch, -1).topk(k, dim=-1)
        beam, token = index // vocab, index % vocab
        score = total.view(batch, -1).gather(1, index)
        length = new_length.gather(1, beam)
        finished = finished.gather(1, beam) | (token == EOS_ID)
        history = torch.cat(
            [history.gather(1, beam.unsqueeze(-1).expand_as(history)), token.unsqueeze(-1)], dim=-1
        )
        rows = (beam + offsets).view(-1)
        state = map_state(state, lambda h, rows=rows: h.index_select(1, rows))
        tokens = token.view(-1)
        if bool(finished.all()):
            break
    final = score / length_penalty(length.clamp(min=1), alpha)
    choice = final.argmax(dim=1)
    best_rows = history[torch.arange(batch, device=device), choice]
    return _strip(best_rows.tolist())
