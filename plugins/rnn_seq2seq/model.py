"""What zoo asks of the seq2seq architecture: build, loss, evaluate, predict, predict_file.

The network is in `network.py`, decoding in `decode.py`, the data in `data.py`.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import torch
import torch.nn.functional as F

from zoo.data import Vocab
from zoo.errors import UsageError, reading_input

from .bleu import corpus_bleu
from .data import PAD_ID, UNK_ID, read_bytes, state_detokenizer, state_tokenizer, text_lines
from .decode import beam_search, decode_limit, greedy
from .network import Seq2Seq, sequence_loss

__all__ = ["build", "evaluate", "loss", "predict", "predict_file"]


def build(config: Any, state: dict[str, Any], task: str) -> Seq2Seq:
    if config.tie_embeddings == "all" and state["source"] != state["target"]:
        raise UsageError(
            "tie_embeddings=all needs one vocabulary for source and target: "
            "train with --set shared_vocab=true"
        )
    return Seq2Seq(config, len(state["source"]), len(state["target"]), decode_limit(config, state))


def loss(module: Seq2Seq, batch: dict[str, Any]) -> torch.Tensor:
    return sequence_loss(
        module(batch["src"], batch["src_lengths"], batch["tgt_in"]), batch["tgt_out"]
    )


def evaluate(
    module: Seq2Seq, batches: Iterable[dict[str, Any]], state: dict[str, Any], task: str
) -> dict[str, float]:
    """Teacher-forced loss; exact match and token accuracy of greedy outputs; corpus BLEU of
    the detokenised outputs against the reference texts where the data is natural language.

    Token accuracy is, per sequence, the share of positions where output and reference agree,
    over the longer of the two; averaged over sequences. A reference token outside the
    vocabulary (<unk>) never counts as matched.
    """
    loss_sum = tokens = exact = token_hits = 0.0
    sequences = 0
    hypotheses: list[str] = []
    references: list[str] = []
    want_bleu = bool(state.get("bleu"))
    detok, vocab = state_detokenizer(state), Vocab(state["target"])
    for batch in batches:
        gold = batch["tgt_out"]
        valid = gold != -100
        scores = module(batch["src"], batch["src_lengths"], batch["tgt_in"])
        loss_sum += float(F.cross_entropy(scores[valid], gold[valid], reduction="sum"))
        tokens += float(valid.sum())
        outputs = greedy(module, batch["src"], batch["src_lengths"])
        for row, predicted in zip(gold.tolist(), outputs):
            target = [-1 if t == UNK_ID else t for t in row if t != -100][:-1]  # drop </s>
            exact += predicted == target
            hits = sum(p == t for p, t in zip(predicted, target))
            token_hits += hits / max(len(target), len(predicted), 1)
            sequences += 1
        if want_bleu and "references" in batch:  # other seq2seq datasets may not carry texts
            hypotheses.extend(detok(vocab.decode(ids)) for ids in outputs)
            references.extend(batch["references"])
    metrics = {
        "loss": loss_sum / max(tokens, 1.0),
        "exact_match": exact / max(sequences, 1),
        "token_accuracy": token_hits / max(sequences, 1),
    }
    if want_bleu and len(references) == sequences:
        metrics["bleu"] = corpus_bleu(hypotheses, [references]).score
    return metrics


def _decode(module: Seq2Seq, encoded: list[list[int]], options: Any) -> list[list[int]]:
    """Outputs for encoded sources, decoded in batches of similar length, in input order."""
    beam = getattr(options, "beam_size", 1) if options is not None else 1
    alpha = getattr(options, "length_penalty", 0.6) if options is not None else 0.6
    limit = getattr(options, "max_length", 0) if options is not None else 0
    size = getattr(options, "batch_size", 256) if options is not None else 256
    device = next(module.parameters()).device
    order = sorted(range(len(encoded)), key=lambda i: len(encoded[i]))
    results: list[list[int]] = [[] for _ in encoded]
    for start in range(0, len(order), size):
        chunk = order[start : start + size]
        lengths = torch.tensor([len(encoded[i]) for i in chunk])
        src = torch.full((len(chunk), int(lengths.max())), PAD_ID, dtype=torch.long)
        for row, i in enumerate(chunk):
            src[row, : len(encoded[i])] = torch.tensor(encoded[i])
        src = src.to(device)
        if beam > 1:
            outputs = beam_search(module, src, lengths, beam, alpha, limit)
        else:
            outputs = greedy(module, src, lengths, limit)
        for i, ids in zip(chunk, outputs):
            results[i] = ids
    return results


def predict(
    module: Seq2Seq, inputs: list[str], state: dict[str, Any], task: str, options: Any
) -> list[dict[str, Any]]:
    """Each input is one source sequence; returns its translation (greedy, or beam search)."""
    tokenizer, detok = state_tokenizer(state), state_detokenizer(state)
    src_vocab, tgt_vocab = Vocab(state["source"]), Vocab(state["target"])
    encoded = []
    for i, text in enumerate(inputs):
        tokens = tokenizer(text)
        if not tokens:
            raise UsageError(f"input {i + 1} is empty: give a sequence to translate")
        encoded.append(src_vocab.encode(tokens))
    results = []
    for text, ids in zip(inputs, _decode(module, encoded, options)):
        output = detok(tgt_vocab.decode(ids))
        results.append({"input": text, "output": output, "text": output})
    return results


def predict_file(
    module: Seq2Seq, path: str, state: dict[str, Any], task: str, options: Any
) -> tuple[str, list[dict[str, Any]]]:
    """`zoo predict FILE --input PATH`: one output line per input line, in order; all lines
    decoded together in length-sorted batches (an empty line gives an empty line)."""
    with reading_input(path):
        raw = read_bytes(path)
    lines = [text for _, text in text_lines(raw, path)]
    if lines and lines[-1] == "":
        lines.pop()  # the newline that ends the last line
    tokenizer, detok = state_tokenizer(state), state_detokenizer(state)
    src_vocab, tgt_vocab = Vocab(state["source"]), Vocab(state["target"])
    tokenized = [tokenizer(line) for line in lines]
    todo = [i for i, t in enumerate(tokenized) if t]
    outputs = _decode(module, [src_vocab.encode(tokenized[i]) for i in todo], options)
    texts = [""] * len(lines)
    for i, ids in zip(todo, outputs):
        texts[i] = detok(tgt_vocab.decode(ids))
    predictions = [{"input": s, "output": o, "text": o} for s, o in zip(lines, texts)]
    return "".join(t + "\n" for t in texts), predictions
