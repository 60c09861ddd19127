"""The seq2seq network and decoders: every cell and attention, masks, the two training paths,
tied embeddings, greedy and beam search, length limits, and the model file."""

from __future__ import annotations

import dataclasses
import itertools

import pytest
import torch
from zoo_plugins.rnn_seq2seq import Seq2SeqConfig
from zoo_plugins.rnn_seq2seq.data import BOS_ID, EOS_ID, PAD_ID, SPECIALS
from zoo_plugins.rnn_seq2seq.decode import beam_search, decode_limit, greedy, length_penalty
from zoo_plugins.rnn_seq2seq.model import Encoded, Seq2Seq

import zoo

SOURCE_VOCAB, TARGET_VOCAB = 12, 9


def state(sources: int = SOURCE_VOCAB, targets: int = TARGET_VOCAB) -> dict:
    """A data state with vocabularies of the given sizes (specials included)."""
    return {
        "source": [*SPECIALS, *(f"s{i}" for i in range(sources - 4))],
        "target": [*SPECIALS, *(f"t{i}" for i in range(targets - 4))],
        "tokens": "word",
        "max_target_length": 5,
    }


def net(**settings) -> Seq2Seq:
    torch.manual_seed(0)
    config = Seq2SeqConfig(embedding_dim=8, hidden_size=16, max_length=30)
    return Seq2Seq(dataclasses.replace(config, **settings), state()).eval()


def batch(seed: int = 0, size: int = 5):
    g = torch.Generator().manual_seed(seed)
    lengths = torch.randint(1, 7, (size,), generator=g)
    lengths[0] = 6
    src = torch.randint(4, SOURCE_VOCAB, (size, 6), generator=g)
    src[torch.arange(6) >= lengths.unsqueeze(1)] = PAD_ID
    tgt = torch.randint(4, TARGET_VOCAB, (size, 5), generator=g)
    tgt_in = torch.cat([torch.full((size, 1), BOS_ID), tgt[:, :-1]], 1)
    return src, lengths, tgt_in, tgt


VARIANTS = list(
    itertools.product(["rnn", "gru", "lstm"], ["none", "luong", "bahdanau"], [False, True])
)


@pytest.mark.parametrize(("cell", "attention", "bidirectional"), VARIANTS)
def test_every_variant_trains_and_decodes(cell, attention, bidirectional):
    module = net(cell=cell, attention=attention, bidirectional=bidirectional, num_layers=2)
    src, lengths, tgt_in, tgt = batch()
    module.train()
    scores = module(src, lengths, tgt_in)
    assert scores.shape == (5, 5, TARGET_VOCAB)
    loss = module.loss({"src": src, "src_lengths": lengths, "tgt_in": tgt_in, "tgt_out": tgt})
    loss.backward()
    assert all(p.grad is not None for p in module.parameters() if p.requires_grad)
    module.eval()
    outputs = greedy(module, src, lengths)
    assert len(outputs) == 5 and all(max(o, default=4) < TARGET_VOCAB for o in outputs)
    assert len(beam_search(module, src, lengths, beam_size=3)) == 5


@pytest.mark.parametrize("attention", ["none", "luong"])
@pytest.mark.parametrize("cell", ["gru", "lstm"])
def test_fused_teacher_forcing_equals_step_by_step_decoding(cell, attention):
    """Training runs the decoder over the whole target at once; `step` (used by decoding and
    by Bahdanau attention) must compute exactly the same scores."""
    module = net(cell=cell, attention=attention, num_layers=2, bidirectional=True)
    src, lengths, tgt_in, _ = batch()
    fused = module(src, lengths, tgt_in)
    encoded, state = module.encode(src, lengths)
    stepped = module._stepwise(tgt_in, state, encoded, sampling=False)
    torch.testing.assert_close(fused, stepped, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("attention", ["none", "luong", "bahdanau"])
def test_padding_changes_nothing(attention):
    """Extra padding on the sources (masked in attention, packed in the encoder) leaves the
    scores and the outputs as they were."""
    module = net(attention=attention, bidirectional=True)
    src, lengths, tgt_in, _ = batch()
    padded = torch.cat([src, torch.full((5, 4), PAD_ID)], 1)
    torch.testing.assert_close(module(src, lengths, tgt_in), module(padded, lengths, tgt_in))
    assert greedy(module, src, lengths) == greedy(module, padded, lengths)


def test_a_sequence_decodes_the_same_alone_or_in_a_batch():
    module = net(attention="bahdanau", cell="gru")
    src, lengths, _, _ = batch(size=6)
    together = greedy(module, src, lengths)
    alone = [greedy(module, src[i : i + 1, : lengths[i]], lengths[i : i + 1])[0] for i in range(6)]
    assert together == alone


def test_bidirectional_state_joins_both_directions_of_each_layer():
    module = net(cell="gru", bidirectional=True, num_layers=2, attention="none")
    h = torch.arange(4 * 3 * 8, dtype=torch.float).view(4, 3, 8)  # (l0 fwd, l0 bwd, l1 fwd, l1 bwd)
    joined = module._join_directions(h)
    assert joined.shape == (2, 3, 16)
    assert torch.equal(joined[1, 2], torch.cat([h[2, 2], h[3, 2]]))


def test_tied_embeddings_share_one_matrix_and_survive_the_model_file(tmp_path):
    out = net(tie_embeddings="output")
    assert out.out.weight is out.tgt_embedding.weight and hasattr(out, "project")
    torch.manual_seed(0)
    config = Seq2SeqConfig(embedding_dim=8, hidden_size=16, tie_embeddings="all")
    shared = state(10, 10)
    both = Seq2Seq(config, {**shared, "target": shared["source"]})
    assert both.src_embedding.weight is both.tgt_embedding.weight is both.out.weight
    untied = sum(p.numel() for p in net().parameters())
    assert sum(p.numel() for p in out.parameters()) < untied

    pairs = tmp_path / "p.tsv"
    pairs.write_text("a b\tb a\nb c\tc b\nc a\ta c\n")
    model = zoo.create(
        "rnn-seq2seq",
        dataset="sentence-pairs",
        data=pairs,
        tie_embeddings="all",
        shared_vocab=True,
        valid_fraction=0,
        test_fraction=0,
        epochs=1,
        hidden_size=16,
    )
    zoo.train(model)
    model.save(tmp_path / "tied.safetensors")
    again = zoo.load(tmp_path / "tied.safetensors")
    assert again.module.out.weight is again.module.src_embedding.weight
    assert torch.equal(again.module.out.weight, model.module.out.weight)
    assert again.predict("a b")[0]["output"] == model.predict("a b")[0]["output"]


def test_tying_all_embeddings_needs_a_shared_vocabulary(tmp_path):
    pairs = tmp_path / "p.tsv"
    pairs.write_text("a b\tx y\n")
    with pytest.raises(zoo.SettingError, match=r"^tie_embeddings=all: .*shared_vocab=true"):
        zoo.create(
            "rnn-seq2seq",
            dataset="sentence-pairs",
            data=pairs,
            tie_embeddings="all",
            valid_fraction=0,
            test_fraction=0,
        )


def test_teacher_forcing_ratio_feeds_the_models_own_guesses():
    module = net(teacher_forcing=0.0).train()
    src, lengths, tgt_in, _ = batch()
    torch.manual_seed(1)
    own = module(src, lengths, tgt_in)
    module.config = dataclasses.replace(module.config, teacher_forcing=1.0)
    torch.manual_seed(1)
    forced = module(src, lengths, tgt_in)
    assert torch.allclose(own[:, 0], forced[:, 0])  # the first step always gets <s>
    assert not torch.allclose(own[:, 1:], forced[:, 1:])
    module.eval()  # evaluation always teacher-forces
    assert torch.allclose(module(src, lengths, tgt_in), forced)


class Scripted(torch.nn.Module):
    """A fake decoder with fixed next-token distributions, to check the searches exactly:
    greedy takes token 5 (p .6) then must end in a poor state; beam finds 6 (p .4) then a
    certain </s>."""

    max_length = 10

    def encode(self, src, lengths):
        batch = src.shape[0]
        return Encoded(torch.zeros(batch, 1, 1), None, torch.ones(batch, 1, dtype=torch.bool)), (
            torch.zeros(1, batch, 1)
        )

    def step(self, tokens, state, encoded):
        table = {
            BOS_ID: {5: 0.6, 6: 0.4},
            5: {7: 0.5, 8: 0.5},
            6: {EOS_ID: 1.0},
            7: {EOS_ID: 1.0},
            8: {EOS_ID: 1.0},
        }
        scores = torch.full((tokens.shape[0], 9), -1e9)
        for row, token in enumerate(tokens.tolist()):
            for nxt, p in table.get(token, {EOS_ID: 1.0}).items():
                scores[row, nxt] = torch.log(torch.tensor(p))
        return scores, state


def test_beam_search_finds_the_more_likely_output_greedy_misses():
    fake = Scripted()
    src, lengths = torch.ones(2, 1, dtype=torch.long), torch.ones(2, dtype=torch.long)
    assert greedy(fake, src, lengths) == [[5, 7], [5, 7]]  # p = .3
    assert beam_search(fake, src, lengths, beam_size=2, alpha=0.0) == [[6], [6]]  # p = .4
    assert beam_search(fake, src, lengths, beam_size=1) == greedy(fake, src, lengths)


def test_length_penalty_is_gnmts():
    assert length_penalty(torch.tensor(1), 0.0) == 1.0
    assert length_penalty(torch.tensor(7), 1.0) == pytest.approx(2.0)
    assert length_penalty(torch.tensor(7), 0.5) == pytest.approx(2**0.5)


@pytest.mark.slow
def test_beam_search_agrees_with_greedy_on_a_trained_model():
    model = zoo.create("rnn-seq2seq", epochs=60)
    zoo.train(model)
    words = ["hello", "cat", "good", "water", "house"]
    greedy_out = [p["output"] for p in model.predict(words)]
    beam_out = [p["output"] for p in model.predict(words, beam_size=4)]
    assert beam_out == greedy_out


def test_decoding_stops_at_the_length_limit_or_end_symbol():
    module = net()
    src, lengths, _, _ = batch()
    limited = greedy(module, src, lengths, max_length=3)
    assert all(len(o) <= 3 for o in limited)
    with torch.no_grad():
        module.out.bias.fill_(-100.0)
        module.out.bias[EOS_ID] = 100.0  # says </s> at once
    assert greedy(module, src, lengths) == [[]] * 5
    assert beam_search(module, src, lengths, beam_size=3) == [[]] * 5


def test_the_default_limit_never_cuts_scan_outputs():
    """SCAN's length split trains on outputs of at most 22 actions and tests on up to 48."""
    config = Seq2SeqConfig()
    assert decode_limit(config, {"max_target_length": 22}) >= 48 + 1
    assert decode_limit(config, {"max_target_length": 48}) >= 2 * 48
    assert decode_limit(dataclasses.replace(config, max_length=7), {"max_target_length": 48}) == 7


# ------------------------------------------------------------------ predicting a file
@pytest.fixture(scope="module")
def word_model():
    """The word-pairs translator after a short training (outputs differ from word to word)."""
    model = zoo.create("rnn-seq2seq", epochs=10, threads=1)
    zoo.train(model)
    return model


def test_predicting_a_file_keeps_blank_lines_aligned(word_model, tmp_path):
    """zoo's default predict_file: one output line per input line, blank (or white-space)
    lines staying blank, every input decoded as it is alone, whatever the batch size."""
    lines = ["hello", "", "cat", "   ", "good", "water", ""]
    path = tmp_path / "in.txt"
    path.write_text("\n".join(lines) + "\n")
    text, predictions = zoo.predict_file(word_model, path, tmp_path / "out.txt", batch_size=2)
    alone = {w: word_model.predict(w)[0]["text"] for w in lines if w.strip()}
    assert text.split("\n")[:-1] == [alone.get(w, "") for w in lines]
    assert (tmp_path / "out.txt").read_text() == text
    assert [p["input"] for p in predictions] == ["hello", "cat", "good", "water"]
    beam, _ = zoo.predict_file(word_model, path, beam_size=3)
    assert len(beam.split("\n")) == len(text.split("\n"))


def test_predicting_a_file_with_a_bad_byte_names_line_and_column(word_model, tmp_path):
    path = tmp_path / "in.txt"
    path.write_bytes(b"hello\ncat \xff\n")
    with pytest.raises(zoo.DataError) as e:
        zoo.predict_file(word_model, path)
    assert str(e.value) == f"{path}:2: not UTF-8 text (byte 0xff at column 5)"


def test_an_empty_input_is_a_usage_error(word_model):
    with pytest.raises(zoo.UsageError, match="input 2 is empty"):
        word_model.predict(["hello", "  "])


def test_predictions_come_back_in_input_order_whatever_the_batches(word_model):
    """Inputs are decoded shortest first, in batches of `batch_size`; the outputs follow the
    inputs' order."""
    words = ["water", "cat", "hello", "a", "good", "house", "dog"]
    together = [p["text"] for p in word_model.predict(words, batch_size=3)]
    assert together == [word_model.predict(w)[0]["text"] for w in words]
