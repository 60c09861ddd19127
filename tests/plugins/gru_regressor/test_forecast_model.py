"""The GRU forecaster: per-window normalisation, decoders, naive baselines, raw-scale use."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch
from zoo_plugins.gru_regressor import GRURegressorConfig
from zoo_plugins.gru_regressor.model import Forecaster, GRUEnsemble, GRURegressor, build

import zoo
from zoo.api import evaluate
from zoo.core.errors import DataError, SettingError
from zoo.toolkit.textfile import TextFile

STATE = {
    "input_size": 1,
    "output_size": 1,
    "input_length": 12,
    "horizon": 5,
    "target_index": [0],
}


def net(state=STATE, **values) -> Forecaster:
    torch.manual_seed(0)
    config = zoo.core.config.build(GRURegressorConfig, {"hidden_size": 8, **values})
    return build(config, state).eval()


def zero_(module: torch.nn.Module) -> torch.nn.Module:
    with torch.no_grad():
        for name, p in module.named_parameters():
            if not name.startswith("revin_weight"):
                p.zero_()
    return module


@pytest.mark.parametrize("decoder", ["direct", "autoregressive", "seq2seq"])
@pytest.mark.parametrize("patch", [1, 4, 5])
def test_every_decoder_gives_horizon_values(decoder, patch):
    module = net(decoder=decoder, patch_length=patch, linear_skip=True, window_norm="revin")
    out = module(torch.randn(3, 12, 1))
    assert out.shape == (3, 5, 1) and torch.isfinite(out).all()


def test_window_norms_are_undone_on_the_forecast():
    x = torch.randn(4, 12, 1)
    last = zero_(net(window_norm="last"))(x)
    assert torch.equal(last, x[:, -1:].expand(4, 5, 1))  # a zero network repeats the last value
    mean = zero_(net(window_norm="mean"))(x)
    assert torch.allclose(mean, x.mean(1, keepdim=True).expand(4, 5, 1))
    revin = zero_(net(window_norm="revin"))(x)
    assert torch.allclose(revin, x.mean(1, keepdim=True).expand(4, 5, 1), atol=1e-6)


@pytest.mark.parametrize("norm", ["last", "mean", "revin"])
def test_per_window_normalisation_follows_a_shifted_series(norm):
    """A forecaster on a per-window scale moves with the level of its input, which is what
    keeps it right when the test months sit far from the training level."""
    module = net(window_norm=norm, linear_skip=True, patch_length=4)
    x = torch.randn(2, 12, 1)
    assert torch.allclose(module(x + 3.0), module(x) + 3.0, atol=1e-5)
    plain = net(window_norm="none")
    assert not torch.allclose(plain(x + 3.0), plain(x) + 3.0, atol=1e-3)


def test_linear_skip_alone_is_nlinear():
    module = zero_(net(window_norm="last", linear_skip=True))
    with torch.no_grad():
        module.skip.weight[:, 0] = -1.0  # minus the oldest value, relative to the last
    x = torch.randn(3, 12, 1)
    expected = x[:, -1:] - (x[:, :1] - x[:, -1:])
    assert torch.allclose(module(x), expected.expand(3, 5, 1), atol=1e-6)


def test_options_that_need_the_targets_among_the_inputs():
    state = {k: v for k, v in STATE.items() if k != "target_index"}
    for setting, named in (
        ({"window_norm": "last"}, "window_norm=last: "),
        ({"linear_skip": True}, "linear_skip=true: "),
        ({"decoder": "autoregressive"}, "decoder=autoregressive: "),
        ({"members": 2, "window_norm": "mean"}, "window_norm=mean: "),
    ):
        with pytest.raises(SettingError, match="needs the forecast values among the inputs") as e:
            net(state, **setting)
        assert str(e.value).startswith(named) and "--set" not in str(e.value)
    net(state, decoder="seq2seq")(torch.randn(2, 12, 1))  # starts from zeros instead
    with pytest.raises(SettingError, match="^decoder=autoregressive: .* must be a target"):
        net({**STATE, "input_size": 3}, decoder="autoregressive")


def test_tensor_names_are_torch_own():
    names = set(net(linear_skip=True, window_norm="revin", decoder="seq2seq").state_dict())
    assert {"gru.weight_ih_l0", "head.weight", "skip.weight", "decoder.weight_hh_l0"} <= names
    assert "target_index" not in names  # not a tensor of the file: rebuilt from data_state


# --------------------------------------------------------------------------- with data
def write_series(path: Path, rows: int) -> Path:
    """An hourly series with a daily cycle and a slow drift, plus a noisy feature."""
    lines = ["date,feature,OT"]
    for i in range(rows):
        day, hour = divmod(i, 24)
        value = 10 + 0.01 * i + 3 * math.sin(2 * math.pi * hour / 24)
        lines.append(
            f"2020-{1 + day // 28:02d}-{1 + day % 28:02d} {hour:02d}:00:00,{math.cos(i):.4f},{value:.4f}"
        )
    path.write_text("\n".join(lines) + "\n")
    return path


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    folder = tmp_path_factory.mktemp("forecast")
    data = write_series(folder / "series.csv", 600)
    model = zoo.create(
        "gru-regressor",
        "csv",
        data,
        input_length=48,
        horizon=12,
        split="400,100,100",
        features="feature",
        epochs=3,
        hidden_size=16,
    )
    zoo.train(model)
    path = folder / "forecaster.safetensors"
    zoo.save(model, path)
    return model, path, data


def test_evaluate_reports_raw_scale_and_both_naive_baselines(trained):
    model, _, _ = trained
    m = evaluate(model, split="test")
    assert m["windows"] == 100 - 12 + 1
    std = model.state["std"][0]
    for prefix in ("", "repeat_last/", "seasonal_naive_24/"):
        assert m[f"{prefix}mse_raw"] == pytest.approx(m[f"{prefix}mse"] * std**2, rel=1e-4)
        assert m[f"{prefix}mae_raw"] == pytest.approx(m[f"{prefix}mae"] * std, rel=1e-4)
    # the series is a daily cycle: repeating yesterday beats repeating the last hour
    assert m["seasonal_naive_24/mse"] < m["repeat_last/mse"]


def test_naive_baselines_by_hand():
    state = {**STATE, "input_length": 4, "horizon": 3, "season": 2, "mean": [0.0], "std": [2.0]}
    module = net(state)
    x = torch.tensor([[[1.0], [2.0], [3.0], [4.0]]])
    y = torch.tensor([[[5.0], [6.0], [7.0]]])
    with torch.no_grad():
        m = module.evaluate([{"x": x, "y": y}])
    assert m["repeat_last/mse"] == pytest.approx((1 + 4 + 9) / 3)  # 4,4,4 against 5,6,7
    assert m["seasonal_naive_2/mae"] == pytest.approx((2 + 2 + 4) / 3)  # 3,4,3 against 5,6,7
    assert m["repeat_last/mae_raw"] == pytest.approx(2 * (1 + 2 + 3) / 3)
    assert m["windows"] == 1


def test_the_ensemble_and_one_network_share_one_evaluate():
    """An ensemble is scored exactly as one network whose forecast is the members' mean: the
    same errors, the same naive baselines, the same window count."""
    state = {**STATE, "season": 4, "mean": [1.0], "std": [3.0]}
    ensemble = net(state, members=2, window_norm="last", patch_length=3)
    x, y = torch.randn(6, 12, 1), torch.randn(6, 5, 1)
    batches = [{"x": x[:4], "y": y[:4]}, {"x": x[4:], "y": y[4:]}]
    with torch.no_grad():
        m = ensemble.evaluate(batches)
        one = ensemble.members[0].evaluate(batches)
        mean = torch.stack([member(x) for member in ensemble.members]).mean(0)
    assert m["mse"] == pytest.approx(float(((mean - y) ** 2).mean()), rel=1e-5)
    assert m["mae_raw"] == pytest.approx(3 * float((mean - y).abs().mean()), rel=1e-5)
    assert m["loss"] == pytest.approx(m["mse"], rel=1e-5)  # the config's loss, mse
    assert m["windows"] == one["windows"] == 6
    baselines = [k for k in m if k.startswith(("repeat_last/", "seasonal_naive_4/"))]
    assert len(baselines) == 8 and all(m[k] == one[k] for k in baselines)
    assert one["mse"] != m["mse"]  # a member alone forecasts differently


def test_ensemble_weights_are_the_members_built_one_after_the_other():
    """Member K of an ensemble starts from the weights a lone network built from the same
    seed after K others would: the generator's draws are taken in member order."""
    ensemble = net(members=3, linear_skip=True, window_norm="revin")
    torch.manual_seed(0)
    values = {"hidden_size": 8, "linear_skip": True, "window_norm": "revin"}
    config = zoo.core.config.build(GRURegressorConfig, values)
    lone = [GRURegressor(config, STATE) for _ in range(3)]
    for k, member in enumerate(ensemble.members):
        names = set(member.state_dict())
        assert names == set(lone[k].state_dict()) and "skip.weight" in names
        for name, tensor in member.state_dict().items():
            assert torch.equal(tensor, lone[k].state_dict()[name]), (k, name)


def test_predict_takes_and_returns_raw_values(trained):
    model, path, data = trained
    loaded = zoo.load(path)
    rows = data.read_text().splitlines()[1:]
    window = [r.split(",") for r in rows[-48:]]
    numbers = [f"{w[2]},{w[1]}" for w in window]  # OT first, as in state["columns"]
    out = loaded.predict(numbers)[0]["output"]
    mean, std = torch.tensor(model.state["mean"]), torch.tensor(model.state["std"])
    x = (torch.tensor([[[float(w[2]), float(w[1])] for w in window]]) - mean) / std
    with torch.no_grad():
        expected = (loaded.module(x)[0, :, 0] * std[0] + mean[0]).tolist()
    assert out == pytest.approx(expected, abs=1e-5)
    assert 5 < sum(out) / len(out) < 25  # raw scale (the series lives around 10..20)


def test_cli_predict_from_a_csv_prints_timestamped_forecasts(trained, zoo, tmp_path):
    _, path, data = trained
    recent = tmp_path / "recent.csv"
    recent.write_text(
        "\n".join(data.read_text().splitlines()[:1] + data.read_text().splitlines()[-60:])
    )
    r = zoo("predict", path, "--input", recent)
    assert r.code == 0, r.stderr
    lines = r.stdout.splitlines()
    assert lines[0] == "date,OT" and len(lines) == 13
    last = data.read_text().splitlines()[-1].split(",")[0]  # 2020-01-... 23:00:00
    assert lines[1].split(",")[0] > last and lines[1].endswith(lines[1].split(",")[1])
    j = zoo("predict", path, "--input", recent, "--json").json()["predictions"][0]
    assert len(j["timestamps"]) == 12 and j["output"] == pytest.approx(
        [float(line.split(",")[1]) for line in lines[1:]], abs=1e-4
    )
    short = tmp_path / "short.csv"
    short.write_text("\n".join(data.read_text().splitlines()[:10]))
    assert "the model reads the last 48 rows" in zoo("predict", path, "--input", short).error_line()
    assert "no such file" in zoo("predict", path, "--input", tmp_path / "x.csv").error_line()


def test_predict_file_uses_the_file_it_is_given(trained):
    """The CSV is parsed from the TextFile zoo read once: a file that is not on disk works,
    and its name is what errors and the prediction report."""
    _, path, data = trained
    loaded = zoo.load(path)
    lines = data.read_text().splitlines()
    recent = "\n".join(lines[:1] + lines[-60:]) + "\n"
    on_disk = data.parent / "recent.csv"
    on_disk.write_text(recent)
    expected, _ = zoo.predict_file(loaded, on_disk)
    given = TextFile("not-on-disk.csv", recent, fingerprint="-")
    with torch.no_grad():
        text, predictions = loaded.module.predict_file(given, None)
    assert text == expected and predictions[0]["input"] == "not-on-disk.csv"
    short = TextFile("short.csv", "\n".join(lines[:10]) + "\n", fingerprint="-")
    with pytest.raises(DataError, match=r"^short\.csv: 9 row\(s\); the model reads the last 48"):
        loaded.module.predict_file(short, None)
    bad = lines[:1] + lines[-50:]
    bad[3] = bad[3].rsplit(",", 1)[0] + ",warm"
    broken = TextFile("broken.csv", "\n".join(bad) + "\n", fingerprint="-")
    with pytest.raises(DataError, match=r"^broken\.csv:4: column 'OT': 'warm' is not a number"):
        loaded.module.predict_file(broken, None)


def test_predict_file_of_a_model_not_trained_on_a_csv_reads_a_window_a_line(tmp_path):
    model = zoo.create("gru-regressor", num_windows=20, hidden_size=4)
    windows = ["0.1 0.2 0.3 0.4 0.5 0.6 0.7 0.8 0.9 1.0", "", "1 2 3 4 5 6 7 8 9 10"]
    path = tmp_path / "windows.txt"
    path.write_text("\n".join(windows) + "\n")
    text, predictions = zoo.predict_file(model, path)
    each = [zoo.predict(model, w)[0]["text"] for w in (windows[0], windows[2])]
    assert text.splitlines() == [each[0], "", each[1]] and len(predictions) == 2


def test_cli_eval_prints_raw_and_baseline_metrics(trained, zoo):
    _, path, _ = trained
    r = zoo("eval", path)
    assert r.code == 0, r.stderr
    for key in ("mse", "mae", "mse_raw", "mae_raw", "repeat_last/mse", "seasonal_naive_24/mae_raw"):
        assert f"  {key} " in r.stdout, r.stdout
    doc = zoo("eval", path, "--json").json()
    assert doc["metrics"]["windows"] == 89


def test_saved_state_is_json_ready(trained):
    model, _, _ = trained
    json.dumps(model.state, allow_nan=False)
    assert model.state["columns"] == ["OT", "feature"]


# --------------------------------------------------------------------------- ensembles
def test_members_forecast_their_mean_and_each_learns_alone():
    module = net(members=3, window_norm="last", patch_length=4)
    assert isinstance(module, GRUEnsemble) and isinstance(net(), GRURegressor)
    names = set(module.state_dict())
    assert {f"members.{k}.gru.weight_ih_l0" for k in range(3)} <= names
    assert "gru.weight_ih_l0" not in names  # one member keeps torch's plain names (above)
    w = [m.gru.weight_ih_l0 for m in module.members]
    assert not torch.equal(w[0], w[1]) and not torch.equal(w[1], w[2])  # different inits
    x, y = torch.randn(4, 12, 1), torch.randn(4, 5, 1)
    each = [m(x) for m in module.members]
    assert torch.allclose(module(x), torch.stack(each).mean(0))
    own = torch.stack([torch.nn.functional.mse_loss(f, y) for f in each]).mean()
    batch = {"x": x, "y": y}
    assert torch.allclose(module.loss(batch), own)
    assert not torch.allclose(module.loss(batch), torch.nn.functional.mse_loss(module(x), y))


def test_an_ensemble_trains_saves_and_loads(tmp_path):
    data = write_series(tmp_path / "series.csv", 400)
    settings = dict(input_length=24, horizon=6, split="250,75,75", epochs=2, hidden_size=8)
    model = zoo.create("gru-regressor", "csv", data, members=2, window_norm="last", **settings)
    zoo.train(model)
    zoo.save(model, tmp_path / "ens.safetensors")
    again = zoo.load(tmp_path / "ens.safetensors")
    assert again.config.members == 2
    values = [f"{10 + 0.1 * i:.2f}" for i in range(24)]
    assert again.predict(" ".join(values)) == model.predict(" ".join(values))
    assert evaluate(again, split="test")["mse"] == pytest.approx(
        evaluate(model, split="test")["mse"]
    )


@pytest.mark.parametrize("value", ["0", "65", "two"])
def test_cli_refuses_a_bad_member_count_in_one_line(zoo, value, tmp_path):
    out = tmp_path / "never.safetensors"
    r = zoo("run", "gru-regressor", "--set", f"members={value}", "--out", out)
    assert r.code == 2, r.stderr
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and "members" in lines[0] and "Traceback" not in r.stderr
    assert not out.exists()
