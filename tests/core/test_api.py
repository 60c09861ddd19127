"""The Python API offers the CLI's verbs: list, create with overrides, train, save, load, predict."""

from __future__ import annotations

import pytest

import zoo
from zoo.core.errors import UsageError


def test_list_and_filter():
    assert {"elman-rnn", "gru-regressor", "lstm-tagger", "rnn-seq2seq"} <= set(
        zoo.list_architectures()
    )
    assert zoo.list_architectures("gru*") == ["gru-regressor"]
    assert zoo.list_datasets(task="tagging") == ["conllu", "toy-tags"]


def test_create_with_overrides_train_save_load_predict(tmp_path):
    model = zoo.create("gru-regressor", hidden_size=16, num_windows=100, epochs=1)
    assert model.module.gru.hidden_size == 16 and model.data_config.num_windows == 100
    assert (
        model.train_config.epochs == 1 and "16" not in repr(model) and "parameters" in repr(model)
    )
    result = zoo.train(model, epochs=2)
    assert result.epochs == 2 and result.steps == 2 * 3  # 80 windows, batch 32
    path = tmp_path / "g.safetensors"
    zoo.save(model, path)
    loaded = zoo.load(path)
    window = " ".join(str(i / 10) for i in range(10))
    assert loaded.predict(window) == model.predict(window)
    assert zoo.predict(path, window) == model.predict(window)
    assert zoo.evaluate(path) == pytest.approx(zoo.evaluate(model))


def test_model_methods_mirror_the_functions(tmp_path):
    model = zoo.create("rnn-seq2seq", epochs=3)
    model.fit()
    model.save(tmp_path / "s.safetensors")
    assert set(model.evaluate(split="train")) == {"loss", "exact_match", "token_accuracy"}
    assert model.predict(["hello"])[0]["input"] == "hello"


def test_run_does_everything_at_once(tmp_path):
    result = zoo.run("lstm-tagger", out=tmp_path / "t.safetensors", epochs=2)
    assert result.path.exists() and {"valid", "test", "training"} <= set(result.metrics)
    assert zoo.load(result.path).metrics["test"] == result.metrics["test"]


def test_api_mistakes_raise_usage_errors():
    with pytest.raises(UsageError, match="did you mean 'lstm-tagger'"):
        zoo.create("lstm-taggr")
    with pytest.raises(UsageError, match="unknown setting 'colour'"):
        zoo.create("lstm-tagger", colour="red")
    with pytest.raises(UsageError, match="cannot train on dataset"):
        zoo.create("lstm-tagger", dataset="word-pairs")


def test_a_loaded_model_cannot_train_without_data(tmp_path):
    zoo.run("elman-rnn", out=tmp_path / "e.safetensors", epochs=1)
    with pytest.raises(UsageError, match="no training data attached"):
        zoo.train(zoo.load(tmp_path / "e.safetensors"))
