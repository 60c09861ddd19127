"""Corpus BLEU against sacrebleu 2.6.0's `corpus_bleu` (defaults: 13a, exp smoothing).

The expected values below were computed with sacrebleu 2.6.0; where sacrebleu is installed,
a property test also compares the two on random corpora.
"""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from zoo_plugins.rnn_seq2seq.bleu import corpus_bleu, tokenize_13a

KNOWN = [
    # (hypotheses, reference streams, sacrebleu score, counts, totals, sys_len, ref_len)
    (
        ["The cat sat on the mat.", "Ve."],
        [["The cat is on the mat.", "Vete."]],
        45.91497693322866, [7, 4, 2, 1], [9, 7, 5, 4], 9, 9,
    ),
    (  # Papineni et al.'s example with its three references: closest length, clipped counts
        ["It is a guide to action which ensures that the military always obeys the commands of the party."],
        [
            ["It is a guide to action that ensures that the military will forever heed Party commands."],
            ["It is the guiding principle which guarantees the military forces always being under the command of the Party."],
            ["It is the practical guide for the army always to heed the directions of the party."],
        ],
        54.017258985951415, [18, 11, 8, 5], [19, 18, 17, 16], 19, 19,
    ),
    (  # clipping, and exponential smoothing of the orders with no match
        ["the the the the the the the"],
        [["the cat is on the mat"]],
        7.809849842300637, [2, 0, 0, 0], [7, 6, 5, 4], 7, 6,
    ),
    (  # brevity penalty exp(1 - 9/6)
        ["a b c d", "e f"],
        [["a b c d e", "e f g h"]],
        60.653065971263366, [6, 4, 2, 1], [6, 4, 2, 1], 6, 9,
    ),
    (  # 13a: punctuation split, but not the period of 3.5
        ["Tom isn't here, he's at home (I think) -- 3.5 km away & happy."],
        [["Tom isn't here; he's home, 3.5 km away & happy!"]],
        29.11892337378931, [11, 6, 4, 2], [18, 17, 16, 15], 18, 13,
    ),
    (["no match at all"], [["completely different words here"]], 0.0, [0, 0, 0, 0], [4, 3, 2, 1], 4, 4),
]  # fmt: skip


@pytest.mark.parametrize(("hyps", "refs", "score", "counts", "totals", "sys_len", "ref_len"), KNOWN)
def test_matches_sacrebleu_on_known_corpora(hyps, refs, score, counts, totals, sys_len, ref_len):
    result = corpus_bleu(hyps, refs)
    assert result.score == pytest.approx(score, abs=1e-9)
    assert (result.counts, result.totals) == (counts, totals)
    assert (result.sys_len, result.ref_len) == (sys_len, ref_len)


def test_identical_text_scores_100_and_empty_output_scores_0():
    text = ["the quick brown fox jumps", "over the lazy dog again"]
    assert corpus_bleu(text, [text]).score == pytest.approx(100.0)
    assert corpus_bleu(["", ""], [text]).score == 0.0


def test_13a_tokenisation():
    assert tokenize_13a("Hello, world! (3.5 km)") == [
        "Hello",
        ",",
        "world",
        "!",
        "(",
        "3.5",
        "km",
        ")",
    ]
    assert tokenize_13a("a &amp; b &lt;c&gt;") == ["a", "&", "b", "<", "c", ">"]
    assert tokenize_13a("¿Quién es él?") == ["¿Quién", "es", "él", "?"]


def test_reference_streams_must_match_the_hypotheses():
    with pytest.raises(ValueError, match="one reference per hypothesis"):
        corpus_bleu(["a", "b"], [["a"]])


WORDS = st.sampled_from(
    [
        "the",
        "a",
        "cat",
        "sat",
        "on",
        "mat",
        ".",
        ",",
        "!",
        "?",
        "3.5",
        "1,000",
        "-",
        "x-y",
        "&",
        "&amp;",
        "(",
        ")",
        "el",
        "gato",
        "¿",
    ]
)
SENTENCE = st.lists(WORDS, max_size=12).map(" ".join)


@settings(max_examples=200, deadline=None)
@given(data=st.data())
def test_agrees_with_sacrebleu_on_random_corpora(data):
    sacrebleu = pytest.importorskip("sacrebleu")
    n = data.draw(st.integers(1, 5))
    hyps = data.draw(st.lists(SENTENCE, min_size=n, max_size=n))
    refs = data.draw(st.lists(st.lists(SENTENCE, min_size=n, max_size=n), min_size=1, max_size=3))
    assert corpus_bleu(hyps, refs).score == pytest.approx(
        sacrebleu.corpus_bleu(hyps, refs).score, abs=1e-9
    )
