"""Weight averaging (`ema_decay`): the trainer keeps an exponential moving average of the
weights; validation, best-weight selection and the saved model use it, the raw weights train on."""

from __future__ import annotations

import copy

import pytest
import torch
from safetensors.torch import load_file

import zoo
from zoo.training.progress import Progress
from zoo.training.trainer import update_ema

TINY = {"epochs": 6, "lr_schedule": "cosine"}  # toy tagger: 5 steps an epoch, 30 in all
DECAY = 0.8


class Recorder(Progress):
    """Copies the module's raw weights before training and after every optimizer step."""

    def __init__(self, module: torch.nn.Module):
        super().__init__(enabled=False)
        self.module, self.raw = module, []

    def start(self, total_steps, epochs, at_step=0):
        self.raw.append(copy.deepcopy(self.module.state_dict()))

    def step(self, step, epoch, loss):
        self.raw.append(copy.deepcopy(self.module.state_dict()))


def train(**settings):
    model = zoo.create("lstm-tagger", **TINY, **settings)
    recorder = Recorder(model.module)
    result = zoo.train(model, progress=recorder)
    return model, result, recorder.raw


def hand_averages(raw, decay):
    """The average after each step t, in float64: sum_i decay**(t-i) w_i / sum_i decay**(t-i)
    over the weights w_1 .. w_t after steps 1 .. t (raw[0], the initial weights, has none)."""
    out = [None]
    for t in range(1, len(raw)):
        shares = [decay ** (t - i) for i in range(1, t + 1)]
        out.append(
            {
                k: sum(s * raw[i][k].double() for i, s in enumerate(shares, start=1)) / sum(shares)
                for k in raw[0]
            }
        )
    return out


def close(a, b):
    return a.keys() == b.keys() and all(
        torch.allclose(a[k].double(), b[k].double(), rtol=0, atol=1e-6) for k in a
    )


@pytest.fixture(scope="module")
def runs():
    return {"off": train(), "on": train(ema_decay=DECAY)}


def test_ema_off_keeps_the_raw_weights_of_the_best_validation(runs):
    model, result, raw = runs["off"]
    assert model.train_config.ema_decay == 0.0
    assert len(raw) == 31
    best = raw[result.best["step"]]
    assert all(torch.equal(v, best[k]) for k, v in model.module.state_dict().items())


def test_ema_does_not_change_the_raw_training(runs):
    _, _, raw_off = runs["off"]
    _, _, raw_on = runs["on"]
    assert all(
        torch.equal(a[k], b[k]) for a, b in zip(raw_off, raw_on, strict=True) for k in a
    )  # same seed: the average is only watched, never trained


def test_ema_on_validates_and_saves_the_hand_computed_average(runs, tmp_path):
    model, result, raw = runs["on"]
    averages = hand_averages(raw, DECAY)
    best = averages[result.best["step"]]
    assert close(model.module.state_dict(), best)
    assert not close(best, raw[result.best["step"]])  # the average is not the raw weights
    zoo.save(model, tmp_path / "m.safetensors")
    assert close(load_file(tmp_path / "m.safetensors"), best)
    # every validation scored the average of its step, not the raw weights
    kept = copy.deepcopy(model.module.state_dict())
    for entry in (h for h in result.history if "valid" in h):
        model.module.load_state_dict({k: v.float() for k, v in averages[entry["step"]].items()})
        assert zoo.evaluate(model, split="valid")["loss"] == pytest.approx(entry["valid"]["loss"])
    model.module.load_state_dict(raw[result.best["step"]])
    raw_loss = zoo.evaluate(model, split="valid")["loss"]
    assert raw_loss != pytest.approx(result.best["loss"])  # so the check above can fail
    model.module.load_state_dict(kept)


def test_without_validation_the_final_average_is_kept():
    model, result, raw = train(ema_decay=DECAY, valid_fraction=0.0)
    assert not model.data.has("valid") and result.best == {}
    assert close(model.module.state_dict(), hand_averages(raw, DECAY)[-1])


def test_buffers_that_are_not_floats_are_copied_not_averaged():
    module = torch.nn.Sequential(torch.nn.Linear(2, 2), torch.nn.BatchNorm1d(2))
    ema = copy.deepcopy(module.state_dict())
    with torch.no_grad():
        for p in module.parameters():
            p.add_(1.0)
    module(torch.randn(4, 2))  # moves the running statistics, counts a batch
    update_ema(ema, module, 0.5, step=100)
    now = module.state_dict()
    assert torch.equal(ema["1.num_batches_tracked"], now["1.num_batches_tracked"])
    assert ema["1.num_batches_tracked"].item() == 1
    assert torch.allclose(ema["0.bias"], now["0.bias"] - 0.5)  # half-way to the new weights
    update_ema(ema, module, 0.5, step=1)  # the first step's weights replace the initial ones
    assert all(torch.allclose(ema[k], v.to(ema[k].dtype)) for k, v in now.items())


@pytest.mark.parametrize(
    "value, message",
    [
        ("1", "ema_decay=1.0: expected at least 0 and below 1"),
        ("1.5", "ema_decay=1.5 is above its maximum 1.0"),
        ("-0.1", "ema_decay=-0.1 is below its minimum 0.0"),
        ("fast", "ema_decay"),
    ],
)
def test_a_bad_decay_is_a_one_line_usage_error(zoo, value, message):
    r = zoo("run", "lstm-tagger", "--epochs", "1", "--set", f"ema_decay={value}")
    assert r.code == 2
    assert message in r.error_line()
