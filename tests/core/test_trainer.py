"""The training loop: best-validation weights, early stopping, divergence, schedules, steps."""

from __future__ import annotations

import math

import pytest
import torch

import zoo
from tests.conftest import ScriptedConfig, scripted_data, scripted_registry
from zoo.core.errors import PluginError
from zoo.core.settings import TrainConfig
from zoo.training import trainer
from zoo.training.guard import Checked
from zoo.training.trainer import TrainingDiverged, lr_factor


def test_keeps_the_weights_of_the_best_validation():
    reg, _ = scripted_registry([5.0, 1.0, 3.0, 4.0])
    model = zoo.create("scripted", registry=reg, epochs=4, batch_size=4, lr=0.1)
    result = zoo.train(model)
    assert result.best["loss"] == 1.0 and result.best["step"] == 4
    assert model.module.layer.weight.item() == pytest.approx(result.best["weight"])


def test_early_stopping_after_patience_validations_without_improvement():
    reg, calls = scripted_registry([1.0, 2.0, 3.0, 4.0, 5.0, 6.0])
    model = zoo.create("scripted", registry=reg, epochs=10, batch_size=4, patience=2)
    result = zoo.train(model)
    assert result.stopped_early and result.epochs == 3 and calls["evaluate"] == 3


def test_divergence_stops_with_the_step_named():
    reg, _ = scripted_registry([1.0], nan_at=3)
    model = zoo.create("scripted", registry=reg, epochs=5, batch_size=4)
    with pytest.raises(TrainingDiverged, match="diverged at step 3 .*loss is nan"):
        zoo.train(model)


def test_steps_override_epochs_and_eval_every_validates_on_steps():
    reg, calls = scripted_registry([3.0, 2.0, 1.0, 0.5])
    model = zoo.create("scripted", registry=reg, steps=5, batch_size=4, eval_every=2)
    result = zoo.train(model)
    assert result.steps == 5 and result.epochs == 3
    assert calls["evaluate"] == 3  # steps 2, 4, and the final step 5


def test_fit_and_evaluate_take_a_network_or_its_checked_methods():
    """The trainer without the API: a bare network (failures then name "the network") or a
    `guard.Checked` one (failures name the plugin), and the data it trains on."""
    reg, calls = scripted_registry([2.0, 1.0, 3.0])
    network = reg.network_class("scripted", "toy")(ScriptedConfig(), {})
    data = scripted_data(None, None)
    result = trainer.fit(network, data, TrainConfig(epochs=3, batch_size=4))
    assert result.steps == 6 and calls["evaluate"] == 3 and result.best["loss"] == 1.0
    checked = Checked(network, "architecture 'scripted' (test-dist 1)")
    scores = trainer.evaluate(checked, data, "valid", 2, torch.device("cpu"))
    assert scores["weight"] == network.layer.weight.item() == result.best["weight"]
    assert network.training  # evaluate leaves the mode as it found it
    broken, _ = scripted_registry(loss=lambda self, batch: 1.5)
    bad = broken.network_class("scripted", "toy")(ScriptedConfig(), {})
    with pytest.raises(PluginError, match="^the network: loss returned float"):
        trainer.fit(bad, data, TrainConfig(epochs=1))
    with pytest.raises(
        PluginError, match="^architecture 'scripted' \\(test-dist 1\\): loss returned"
    ):
        trainer.fit(Checked(bad, checked.what), data, TrainConfig(epochs=1))


def test_learning_rate_schedules():
    cfg = TrainConfig(lr_schedule="cosine", warmup_steps=10)
    assert lr_factor(0, 110, cfg) == pytest.approx(0.1)
    assert lr_factor(9, 110, cfg) == pytest.approx(1.0)
    assert lr_factor(60, 110, cfg) == pytest.approx(0.5)
    assert lr_factor(110, 110, cfg) == pytest.approx(0.0, abs=1e-12)
    linear = TrainConfig(lr_schedule="linear")
    assert lr_factor(25, 100, linear) == pytest.approx(0.75)
    assert lr_factor(50, 100, TrainConfig()) == 1.0
    late = TrainConfig(lr_schedule="linear", decay_fraction=0.25)
    assert [lr_factor(s, 100, late) for s in (0, 74, 75, 90, 100)] == pytest.approx(
        [1.0, 1.0, 1.0, 0.4, 0.0]
    )
    late_cosine = TrainConfig(lr_schedule="cosine", decay_fraction=0.5, warmup_steps=10)
    assert lr_factor(50, 110, late_cosine) == 1.0
    assert lr_factor(85, 110, late_cosine) == pytest.approx(0.5)
    assert not math.isnan(lr_factor(0, 0, cfg))


def test_adam_beta2_lets_the_step_follow_shrinking_gradients():
    """After one large gradient, small ones: with beta2 0.9 the squared-gradient average
    forgets the large one within steps, so the steps grow back; with 0.999 they stay small."""

    def moved_after_the_spike(beta2: float, optimizer: str) -> float:
        weight = torch.nn.Parameter(torch.zeros(1))
        opt = trainer.make_optimizer(
            torch.nn.ParameterList([weight]), TrainConfig(optimizer=optimizer, adam_beta2=beta2)
        )
        assert opt.param_groups[0]["betas"] == (0.9, beta2)
        for step in range(100):
            weight.grad = torch.full((1,), 1.0 if step == 0 else 0.01)
            opt.step()
            if step == 49:
                halfway = weight.item()
        return abs(weight.item() - halfway)

    for optimizer in ("adam", "adamw"):
        assert moved_after_the_spike(0.9, optimizer) > 5 * moved_after_the_spike(0.999, optimizer)


@pytest.mark.parametrize("optimizer", ["adam", "adamw", "sgd"])
def test_the_optimizer_updates_all_tensors_at_once_with_the_same_weights(optimizer):
    """make_optimizer asks for torch's `foreach` step, which the CPU does not get by
    default: faster, and the weights after 15 steps equal the per-tensor loop's to the bit."""
    cfg = TrainConfig(optimizer=optimizer, lr=0.01, weight_decay=1e-3, adam_beta2=0.98)

    def trained(foreach: bool) -> list[torch.Tensor]:
        torch.manual_seed(0)
        net = torch.nn.Sequential(torch.nn.Embedding(40, 6), torch.nn.LSTM(6, 5))
        start = [p.detach().clone() for p in net.parameters()]
        opt = trainer.make_optimizer(net, cfg)
        assert opt.defaults["foreach"] is True
        if not foreach:
            opt.param_groups[0]["foreach"] = False
        tokens = torch.Generator().manual_seed(1)
        for _ in range(15):
            opt.zero_grad()
            net(torch.randint(0, 40, (7, 3), generator=tokens))[0].square().sum().backward()
            opt.step()
        assert not any(torch.equal(p, s) for p, s in zip(net.parameters(), start))  # trained
        return [p.detach().clone() for p in net.parameters()]

    at_once, one_by_one = trained(True), trained(False)
    assert all(torch.equal(a, b) for a, b in zip(at_once, one_by_one))


def test_divergence_keeps_the_last_good_checkpoint(tmp_path, zoo, use_registry):
    reg, _ = scripted_registry([1.0], nan_at=6)
    use_registry(reg)
    out = tmp_path / "m.safetensors"
    r = zoo(
        "run",
        "scripted",
        "--epochs",
        "5",
        "--batch-size",
        "4",
        "--checkpoint-every",
        "2",
        "--out",
        out,
    )
    assert r.code == 1
    line = r.error_line()
    assert "training diverged at step 6" in line and "last good checkpoint (step 4)" in line
    ckpt = tmp_path / "m.ckpt.safetensors"
    assert ckpt.exists() and not out.exists()
    from zoo.training.checkpoint import load_checkpoint

    model, state, _ = load_checkpoint(ckpt, registry=reg)
    assert state.loop.step == 4 and all(torch.isfinite(p).all() for p in model.module.parameters())


def _trained(**settings):
    model = zoo.create("lstm-tagger", epochs=4, seed=5, **settings)
    zoo.train(model)
    return model


def test_bf16_precision_trains_reproducibly_and_saves_float32(tmp_path):
    """precision=bf16 runs the forward pass in bfloat16 (so the weights differ from float32
    training), learns, gives the same weights on the same seed, and keeps float32 weights."""
    first, second = _trained(precision="bf16"), _trained(precision="bf16")
    full = _trained(precision="fp32")
    for name, tensor in first.module.state_dict().items():
        assert tensor.dtype == torch.float32, name
        assert torch.equal(tensor, second.module.state_dict()[name]), name
    differs = [
        n
        for n, t in first.module.state_dict().items()
        if not torch.equal(t, full.module.state_dict()[n])
    ]
    assert differs  # autocast was in effect
    assert zoo.evaluate(first, split="valid")["accuracy"] > 0.6  # chance is 1/8
    out = tmp_path / "m.safetensors"
    zoo.save(first, out)
    assert zoo.load(out).train_config.precision == "bf16"


def test_bf16_on_a_cpu_without_bf16_keeps_recurrent_layers_in_float32(monkeypatch):
    """Where the CPU has no bfloat16 instructions, an autocast LSTM would go to oneDNN, which
    has no bf16 primitive there: the step runs with oneDNN off (the LSTM in float32, matrix
    products in bfloat16) and switches it back on afterwards."""
    monkeypatch.setattr(trainer, "_cpu_has_bf16", lambda: False)
    lstm, linear = torch.nn.LSTM(4, 6, batch_first=True), torch.nn.Linear(4, 6)
    x = torch.randn(2, 3, 4)
    with trainer.forward_precision(torch.device("cpu"), "bf16"):
        assert not torch.backends.mkldnn.enabled
        out, _ = lstm(x)
        assert out.dtype == torch.float32 and linear(x).dtype == torch.bfloat16
    assert torch.backends.mkldnn.enabled
    model = _trained(precision="bf16")  # the whole loop, on the tagger's BiLSTM
    assert zoo.evaluate(model, split="valid")["accuracy"] > 0.6


def test_precision_is_checked():
    with pytest.raises(zoo.UsageError, match="precision"):
        zoo.create("lstm-tagger", precision="fp16")


@pytest.mark.parametrize(
    "setting, named",
    [
        ("precision=fp16", "expected fp32|bf16"),
        ("decay_fraction=2", "above its maximum 1.0"),
        ("label_smoothing=0.9", "above its maximum 0.5"),
        ("adam_beta2=1", "above its maximum 0.9999"),
    ],
)
def test_cli_refuses_bad_new_settings_in_one_line(zoo, tmp_path, setting, named):
    out = tmp_path / "never.safetensors"
    r = zoo("run", "lstm-tagger", "--set", setting, "--out", out)
    assert r.code == 2, r.stderr
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and named in lines[0] and "Traceback" not in r.stderr
    assert not out.exists()


# Run in a fresh interpreter: whether torch._dynamo is imported is the process's state.
STEPS_WITHOUT_DYNAMO = """
import json, sys, torch
from zoo.core.settings import TrainConfig
from zoo.training.optimizers import make_optimizer, step

def trained(name, zoo_step):
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Embedding(40, 6), torch.nn.LSTM(6, 5))
    cfg = TrainConfig(optimizer=name, lr=0.01, weight_decay=1e-3, adam_beta2=0.98)
    opt = make_optimizer(net, cfg)
    tokens = torch.Generator().manual_seed(1)
    for _ in range(15):
        opt.zero_grad()
        net(torch.randint(0, 40, (7, 3), generator=tokens))[0].square().sum().backward()
        torch.nn.utils.clip_grad_norm_(net.parameters(), 0.5)
        step(opt) if zoo_step else opt.step()
    opt.load_state_dict(opt.state_dict())
    return [p.detach().clone() for p in net.parameters()]

names = ["adam", "adamw", "sgd"]
zoo_steps = {name: trained(name, True) for name in names}
imported = "torch._dynamo" in sys.modules
torch_steps = {name: trained(name, False) for name in names}
same = {n: all(map(torch.equal, zoo_steps[n], torch_steps[n])) for n in names}
print(json.dumps({"imported": imported, "now": "torch._dynamo" in sys.modules, "same": same}))
"""


def test_the_optimizer_steps_without_importing_torch_dynamo_to_the_same_weights():
    """torch's optimizer wrappers import torch._dynamo (0.9 s of every run) for nothing
    outside compilation; zoo's step goes under them: never imported, the same weights."""
    import json
    import subprocess
    import sys

    run = subprocess.run(
        [sys.executable, "-c", STEPS_WITHOUT_DYNAMO], capture_output=True, text=True, timeout=120
    )
    assert run.returncode == 0, run.stderr
    result = json.loads(run.stdout.strip().splitlines()[-1])
    assert result["imported"] is False
    assert result["now"] is True  # torch's own step imports it: the check can tell
    assert result["same"] == {"adam": True, "adamw": True, "sgd": True}


def test_the_optimizer_step_runs_step_hooks_as_torch_does(monkeypatch):
    """Step hooks make zoo's step take torch's own path, whose wrapper calls them; asked as
    in a process where torch._dynamo was never imported (zoo's quick path otherwise)."""
    from zoo.training import optimizers
    from zoo.training.optimizers import make_optimizer, step

    monkeypatch.setattr(optimizers, "DYNAMO", "a module no one imported")
    weight = torch.nn.Parameter(torch.zeros(1))
    opt = make_optimizer(torch.nn.ParameterList([weight]), TrainConfig(lr=0.1))
    seen = []
    opt.register_step_pre_hook(lambda o, args, kwargs: seen.append("pre"))
    opt.register_step_post_hook(lambda o, args, kwargs: seen.append("post"))
    weight.grad = torch.ones(1)
    step(opt)
    assert seen == ["pre", "post"] and weight.item() < 0
