"""The Elman RNN's networks: one body, a network class per task, and what each gives zoo."""

from __future__ import annotations

import pytest
import torch
from zoo_plugins.elman_rnn.model import CharLM, ElmanRNN, StepClassifier, StepRegressor

import zoo
from zoo.core.errors import SettingError, UsageError
from zoo.core.registry import get_registry

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.mark.parametrize(
    ("dataset", "network"),
    [("sine-cosine", StepRegressor), ("char-pairs", StepClassifier), ("text", CharLM)],
)
def test_each_task_gets_its_network_on_the_shared_body(dataset, network):
    model = zoo.create("elman-rnn", dataset, hidden_size=4, epochs=1)
    assert type(model.module) is network and isinstance(model.module, ElmanRNN)
    assert get_registry().network_class("elman-rnn", model.task) is network


def test_tensor_names_are_the_body_layers_in_creation_order():
    """Model files saved before the networks were split by task must still load."""
    model = zoo.create("elman-rnn", "char-pairs", embedding_dim=3, num_layers=2, hidden_size=4)
    layer = ["weight_ih", "weight_hh", "bias_ih", "bias_hh"]
    assert list(model.module.state_dict()) == [
        "embedding.weight",
        *(f"rnn.{name}_l{k}" for k in (0, 1) for name in layer),
        "readout.weight",
        "readout.bias",
    ]
    one_hot = zoo.create("elman-rnn", "text", hidden_size=4)
    assert one_hot.module.embedding is None
    assert one_hot.module.rnn.weight_ih_l0.shape[1] == len(one_hot.state["vocab"])


def test_the_same_seed_gives_the_same_weights():
    a, b = (zoo.create("elman-rnn", "text", hidden_size=6, seed=3) for _ in range(2))
    c = zoo.create("elman-rnn", "text", hidden_size=6, seed=4)
    for name, value in a.module.state_dict().items():
        assert torch.equal(value, b.module.state_dict()[name])
    assert not torch.equal(a.module.readout.weight, c.module.readout.weight)


def test_a_bidirectional_language_model_is_refused_as_a_setting():
    with pytest.raises(SettingError, match=r"bidirectional=True: .*reads left to right"):
        zoo.create("elman-rnn", "text", bidirectional=True)
    zoo.create("elman-rnn", "char-pairs", bidirectional=True)  # a tagger-like task may


def test_padding_does_not_reach_the_real_steps():
    model = zoo.create("elman-rnn", "char-pairs", hidden_size=5, cell="gru").module.eval()
    ids = torch.tensor([[2, 3, 4, 5], [3, 2, 0, 0]])
    padded = model(ids, torch.tensor([4, 2]))
    alone = model(ids[1:, :2])
    torch.testing.assert_close(padded[1, :2], alone[0])


# ------------------------------------------------------------------------ step regression
@pytest.fixture(scope="module")
def regressor():
    model = zoo.create("elman-rnn", num_sequences=20, hidden_size=6, epochs=1)
    zoo.train(model)
    return model


def test_numbers_typed_one_per_argument_form_one_sequence(regressor):
    one = zoo.predict(regressor, ["0.1", "0.5", "0.9"])
    assert len(one) == 1 and one[0]["input"] == [0.1, 0.5, 0.9]
    assert one[0] == zoo.predict(regressor, "0.1 0.5 0.9")[0]
    assert len(one[0]["output"]) == 3
    assert one[0]["text"] == " ".join(f"{v:.4f}" for v in one[0]["output"])
    two = zoo.predict(regressor, ["0.1 0.5", "0.9 0.2 0.3"])
    assert [len(p["output"]) for p in two] == [2, 3]
    # the prediction at a step depends only on the steps so far
    assert two[0]["output"] == one[0]["output"][:2]


def test_a_file_of_numbers_one_a_line_is_one_sequence(regressor, tmp_path):
    path = tmp_path / "numbers.txt"
    path.write_text("0.1\n0.5\n\n0.9\n")
    text, predictions = zoo.predict_file(regressor, path)
    assert len(predictions) == 1 and predictions[0]["input"] == [0.1, 0.5, 0.9]
    assert text == predictions[0]["text"] + "\n"


def test_regression_refuses_unusable_input(regressor):
    with pytest.raises(UsageError, match="not a number"):
        zoo.predict(regressor, ["0.1", "x"])
    with pytest.raises(UsageError, match="1 comma-separated value"):
        zoo.predict(regressor, "0.1,0.2 0.3")


def test_regression_metrics_are_mean_errors_over_real_steps(regressor):
    metrics = zoo.evaluate(regressor, split="valid")
    assert metrics["loss"] == metrics["mse"] and metrics["mse"] > 0
    assert metrics["mae"] ** 2 <= metrics["mse"] + 1e-12  # Jensen: mean |e| <= sqrt(mean e^2)


# -------------------------------------------------------------------- step classification
def test_classification_metrics_count_symbols_and_whole_sequences(tmp_path):
    path = tmp_path / "pairs.tsv"
    path.write_text("hello\tohlol\nab\tba\nabc\tcba\nlo\tol\n")
    model = zoo.create("elman-rnn", "char-pairs", path, hidden_size=4, epochs=2)
    zoo.train(model)
    metrics = zoo.evaluate(model, split="train")
    gold = [t for _, t in [line.split("\t") for line in path.read_text().splitlines()]]
    sources = [line.split("\t")[0] for line in path.read_text().splitlines()]
    predicted = [p["output"] for p in zoo.predict(model, sources)]
    pairs = [(g, p) for gs, ps in zip(gold, predicted) for g, p in zip(gs, ps)]
    assert metrics["accuracy"] == sum(g == p for g, p in pairs) / len(pairs)
    assert metrics["sequence_accuracy"] == sum(g == p for g, p in zip(gold, predicted)) / 4
    counts = metrics["confusion"]["counts"]
    assert sum(map(sum, counts)) == len(pairs)
    assert 0.0 <= metrics["macro_f1"] <= 1.0 and metrics["loss"] > 0


def test_classification_predict_refuses_an_empty_input():
    model = zoo.create("elman-rnn", "char-pairs", hidden_size=4)
    with pytest.raises(UsageError, match="empty input"):
        zoo.predict(model, "")
    assert zoo.predict(model, "hxz")[0]["input"] == "hxz"  # unseen symbols read as <unk>
