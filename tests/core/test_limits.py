"""Limits a user can see: one input over its model's limit is refused, with the limit and how
to raise it, before the network sees it; eval refuses an example over it; a request of too many
inputs is refused. Before these, one megabyte line asked the seq2seq model for gigabytes."""

from __future__ import annotations

import re

import pytest

import zoo
from zoo.core.errors import SettingError, UsageError

BUILT_INS = {  # architecture, dataset, settings, (unit, default maximum)
    "char-lm": ("elman-rnn", "text", {}, ("characters", 20_000)),
    "step-regression": ("elman-rnn", "sine-cosine", {"num_sequences": 20}, ("steps", 20_000)),
    "tagger": ("lstm-tagger", "toy-tags", {}, ("words", 2_000)),
    "forecaster": ("gru-regressor", "sine-windows", {"num_windows": 40}, ("steps", 100_000)),
    "seq2seq-char": ("rnn-seq2seq", "word-pairs", {}, ("characters", 2_000)),
    "seq2seq-word": ("rnn-seq2seq", "word-pairs", {"tokens": "word"}, ("words", 2_000)),
}


def _too_long(unit: str, n: int) -> str:
    return {"characters": "a" * n, "words": "a " * n, "steps": "0.5 " * n}[unit].strip()


@pytest.fixture(scope="module")
def models():
    return {key: zoo.create(a, d, **s) for key, (a, d, s, _) in BUILT_INS.items()}


@pytest.mark.parametrize("key", list(BUILT_INS))
def test_an_input_over_the_limit_is_refused_before_the_network_sees_it(models, key, monkeypatch):
    model = models[key]
    unit, maximum = BUILT_INS[key][3]
    assert (model.module.input_unit, model.module.max_input_length) == (unit, maximum)
    seen = []
    monkeypatch.setattr(type(model.module), "predict", lambda self, i, o: seen.append(i) or [])
    with pytest.raises(UsageError) as info:
        model.predict(["ok", _too_long(unit, maximum + 1)])
    assert str(info.value) == (
        f"input 2: {maximum + 1:,} {unit}, over the limit of {maximum:,} {unit} for one "
        "input; raise it with --set max_input_length=N"
    )
    assert seen == []
    model.predict([_too_long(unit, 5)], max_input_length=5)  # at the limit: passes on
    assert len(seen) == 1
    with pytest.raises(UsageError, match="input 1: 6 .* limit of 5 "):
        model.predict([_too_long(unit, 6)], max_input_length=5)


def test_a_file_names_the_line_over_the_limit(models, tmp_path):
    path = tmp_path / "in.txt"
    path.write_text("hello\n\n" + "a" * 2_001 + "\n")
    with pytest.raises(UsageError, match=r"in.txt:3: 2,001 characters, over the limit of 2,000"):
        models["seq2seq-char"].predict_file(path)


def test_a_conllu_sentence_over_the_limit_names_its_first_line(models, tmp_path):
    rows = [f"{i}\tw{i}\t_\t_\t_\t_\t_\t_\t_\t_" for i in range(1, 12)]
    path = tmp_path / "in.conllu"
    path.write_text("# sent_id = 1\n1\ta\t_\t_\t_\t_\t_\t_\t_\t_\n\n" + "\n".join(rows) + "\n\n")
    with pytest.raises(UsageError, match=r"in.conllu:4: 11 words, over the limit of 10 words"):
        models["tagger"].predict_file(path, max_input_length=10)
    assert len(models["tagger"].predict_file(path, max_input_length=11)[1]) == 2


def test_numbers_one_a_line_count_as_one_sequence(models, tmp_path):
    path = tmp_path / "steps.txt"
    path.write_text("0.5\n" * 30)
    with pytest.raises(UsageError, match="the inputs, read as one sequence: 30 steps"):
        models["step-regression"].predict_file(path, max_input_length=29)
    assert len(models["step-regression"].predict_file(path, max_input_length=30)[1]) == 1


def test_too_many_inputs_in_one_request(models, tmp_path):
    with pytest.raises(UsageError, match=r"the inputs: 3 inputs, over the limit of 2 .*max_inputs"):
        models["seq2seq-char"].predict(["a", "b", "c"], max_inputs=2)
    path = tmp_path / "in.txt"
    path.write_text("a\n\nb\nc\n")
    with pytest.raises(UsageError, match=r"in.txt: 3 inputs, over the limit of 2 for one request"):
        models["seq2seq-char"].predict_file(path, max_inputs=2)


@pytest.mark.parametrize("value", ["0", "-3", "x", "1.5", ""])
def test_a_bad_limit_is_a_setting_error(models, value):
    with pytest.raises(SettingError, match=re.escape(f"max_input_length={value}: expected a")):
        models["tagger"].predict(["a"], max_input_length=value)


def test_eval_refuses_an_example_over_the_limit(tmp_path):
    pairs = tmp_path / "pairs.tsv"
    pairs.write_text("hello\thola\n" * 10 + "a\t" + "b" * 3_000 + "\n")
    model = zoo.create("rnn-seq2seq", "word-pairs", pairs, test_fraction=0.0)
    with pytest.raises(UsageError, match=r"pairs.tsv: split 'train', example \d+: 3,00\d "):
        model.evaluate(pairs, split="train")
    assert "loss" in model.evaluate(pairs, split="train", max_input_length=3_100)


def test_a_megabyte_of_bad_numbers_is_a_short_error_naming_the_line(models, tmp_path):
    path = tmp_path / "window.txt"
    path.write_text("0.5 " * 10 + "\n" + "x" * 1_000_000 + "\n")
    with pytest.raises(UsageError) as info:
        models["forecaster"].predict_file(path)
    message = str(info.value)
    assert len(message) < 200 and "window.txt:2: 'xxx" in message
    assert "(1,000,000 characters) is not a number" in message


def test_the_command_line_says_the_limit_and_exits_2(zoo, tmp_path):
    model = tmp_path / "s.safetensors"
    zoo_model = __import__("zoo").create("rnn-seq2seq", "word-pairs")
    zoo_model.save(model)
    r = zoo("predict", model, "a" * 2_001)
    assert r.code == 2
    assert r.error_line() == (
        "Error: input 1: 2,001 characters, over the limit of 2,000 characters for one input; "
        "raise it with --set max_input_length=N"
    )
    assert zoo("predict", model, "a" * 2_001, "--set", "max_input_length=3000").code == 0
    r = zoo("predict", model, "hello", "--set", "max_input_length=none")
    assert r.code == 2 and "--set max_input_length=none: expected a whole number" in r.stderr


def test_a_plain_text_file_to_the_tagger_counts_its_inputs_too(models, tmp_path):
    path = tmp_path / "sentences.txt"
    path.write_text("The dog .\n\nA cat .\nIt ran .\n")
    with pytest.raises(UsageError, match=r"sentences.txt: 3 inputs, over the limit of 2"):
        models["tagger"].predict_file(path, max_inputs=2)
