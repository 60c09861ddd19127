"""The GRU regressor: a window of numbers in, the next H values out.

    x'  = normalise(x)                         per window: none, last value, mean, RevIN
    h   = GRU(x'_1 .. x'_L)                    in patches of `patch_length` rows per GRU step
    y'  = decoder(h) [+ Linear_L->H(x'_targets) when linear_skip]
    y   = denormalise(y')

The decoder is `direct` (one linear layer producing all H values at once, the teaching
code's head), `autoregressive` (the encoder GRU keeps stepping, fed its own forecasts) or
`seq2seq` (a second GRU started from the encoder's state, fed its own forecasts).

Why the per-window normalisation: a series that drifts (ETTh1's test months sit 1.3 training
standard deviations below the training mean) puts a globally z-scored model on inputs it has
never seen. Subtracting each window's last value (NLinear) or its mean and deviation (RevIN)
and adding it back to the forecast makes every window look like the training windows. The
linear skip path is NLinear itself, learnt alongside the GRU; the GRU learns what it misses.

With `members` K > 1 the network is a deep ensemble (`GRUEnsemble`): K such networks from
different initial weights, each trained on its own loss, forecasting their mean. Seed-to-seed
scatter is a large part of a small forecaster's test error on drifting series; averaging K
members removes most of it for K times the (small) training cost.

Both share what zoo asks of a network (`Forecaster`: loss, evaluate, predict, predict_file);
they differ only in `forward` and in which networks have a loss of their own. Tensor names
are torch's own (`gru.weight_ih_l0`, `head.weight`, `skip.weight`); an ensemble's are
prefixed by the member (`members.0.gru.weight_ih_l0`).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Iterable
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

import zoo
from zoo.core import limits
from zoo.core.errors import SettingError, UsageError
from zoo.toolkit.cells import recurrent_layer
from zoo.toolkit.data import parse_numbers
from zoo.toolkit.metrics import Tally
from zoo.toolkit.series import next_timestamps, read_table
from zoo.toolkit.textfile import TextFile

LOSSES = {"mse": F.mse_loss, "mae": F.l1_loss, "huber": F.smooth_l1_loss}
Batch = dict[str, torch.Tensor]


class Forecaster(zoo.Network):
    """What zoo asks of a forecaster, written once for one network and for an ensemble:
    `forward(x)` gives the forecast, `forecasters()` the networks that each learn alone."""

    input_unit = "steps"  # only the last input_length steps are read
    max_input_length = 100_000

    def forecasters(self) -> list[nn.Module]:
        raise NotImplementedError

    def loss(self, batch: Batch) -> torch.Tensor:
        """The training loss; an ensemble's is the mean of its members' own losses, so each
        member learns to forecast alone (training the mean forecast instead would let members
        specialise and cancel out, which is not what makes ensembles robust)."""
        fn = LOSSES[self.config.loss]
        losses = [fn(net(batch["x"]), batch["y"]) for net in self.forecasters()]
        return losses[0] if len(losses) == 1 else torch.stack(losses).mean()

    def tally(self, batches: Iterable[Batch]) -> Tally:
        """Errors summed over every window and step (Errors), of the model and, on data with
        the targets among the inputs, of two naive forecasts of the same windows: repeat the
        last value, and repeat the last season (`season` rows: 24 for hourly data)."""
        targets = self.state.get("target_index")
        std = target_std(self.state)
        season = self.state.get("season")
        tally = Tally()
        model = Errors(std, tally)
        last, seasonal = Errors(std, tally, "repeat_last/"), Errors(std, tally, "seasonal/")
        lossf = LOSSES[self.config.loss]
        for batch in batches:
            x, y = batch["x"], batch["y"]
            forecast = self(x)
            model.add(forecast, y)
            tally.add("loss_sum", lossf(forecast, y, reduction="sum"))
            tally.add("windows", x.shape[0])
            if targets is None:
                continue
            own = x[:, :, targets]
            last.add(own[:, -1:].expand_as(y), y)
            if season and season <= x.shape[1]:
                steps = torch.arange(y.shape[1], device=x.device) % season + (x.shape[1] - season)
                seasonal.add(own[:, steps], y)
        return tally

    def score(self, tally: Tally) -> dict[str, float]:
        """MSE and MAE (and on the raw scale), the model's and the naive forecasts'."""
        std = target_std(self.state)
        season = self.state.get("season")
        model = Errors(std, tally)
        out = {"loss": tally["loss_sum"] / max(1.0, tally["n"]), **model.metrics()}
        if self.state.get("target_index") is not None:
            out.update(Errors(std, tally, "repeat_last/").metrics())
            if season and season <= int(self.state["input_length"]):
                seasonal = Errors(std, tally, "seasonal/").metrics(f"seasonal_naive_{season}/")
                out.update(seasonal)
        out["windows"] = int(tally["windows"])
        return out

    def predict(self, inputs: list[str], options: Any) -> list[dict[str, Any]]:
        """Numbers typed one per argument form one window; otherwise each input is a window.
        Values are raw (the model file holds the z-score statistics); the last input_length
        steps are used."""
        windows = [parse_numbers(s, where=f"input {i + 1}") for i, s in enumerate(inputs)]
        if all(len(s.split()) == 1 for s in inputs):
            limits.check_input(windows, "the inputs, read as one window")
            windows = [[step for one in windows for step in one]]
        length, features = int(self.state["input_length"]), int(self.state["input_size"])
        results = []
        for window in windows:
            if len(window) < length:
                raise UsageError(
                    f"expected a window of {length} values (the model's input length), "
                    f"got {len(window)}"
                )
            if any(len(step) != features for step in window):
                names = self.state.get("columns")
                which = f" ({','.join(names)})" if names else ""
                raise UsageError(f"each step needs {features} comma-separated value(s){which}")
            window = window[-length:]
            values = self.forecast(window)
            results.append(
                {
                    "input": [s[0] if len(s) == 1 else s for s in window],
                    "output": values,
                    "text": " ".join(fmt(v) for v in values),
                }
            )
        return results

    def predict_file(self, file: TextFile, options: Any) -> tuple[str, list[dict[str, Any]]]:
        """`zoo predict MODEL --input recent.csv`: forecast the H rows after the file's last row.

        The file has the training file's columns (others are ignored); its last input_length
        rows are the window. With a date column the forecast rows carry their timestamps, one
        training time step apart. The text is CSV: `date,target...` or `step,target...`.
        A model not trained on a CSV reads one window a line, as any network does.
        """
        if "columns" not in self.state:
            return super().predict_file(file, options)
        table = read_table(file)
        length = int(self.state["input_length"])
        if len(table) < length:
            raise file.error(
                f"{len(table)} row(s); the model reads the last {length} rows, so give at least that"
            )
        columns = [table.numbers(c, option="columns")[-length:] for c in self.state["columns"]]
        values = self.forecast([list(step) for step in zip(*columns)])
        date = self.state.get("date_column")
        stamps = None
        if date is not None and date in table.header:
            stamps = next_timestamps(table, date, len(values), self.state.get("step_seconds"))
        first = date if stamps is not None else "step"
        lines = [",".join([first, *self.state["targets"]])]
        keys = stamps if stamps is not None else [str(k) for k in range(1, len(values) + 1)]
        lines.extend(f"{key},{fmt(value)}" for key, value in zip(keys, values))
        prediction = {
            "input": file.path,
            "output": values,
            "timestamps": stamps,
            "targets": self.state["targets"],
            "text": " ".join(fmt(v) for v in values),
        }
        return "\n".join(lines) + "\n", [prediction]

    def export_spec(self) -> Any:
        """The ONNX graph and the runtime's `forecaster` recipe (export.py)."""
        from .export import export_spec

        return export_spec(self)

    def scales(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """(input mean, input std, target mean, target std) of the training data."""
        return scales(self.state)

    def forecast(self, window: list[list[float]]) -> list[Any]:
        """Raw values in (the last input_length rows), raw values out: [H] or [H][targets]."""
        mean, std, t_mean, t_std = scales(self.state)
        x = (torch.tensor([window], dtype=torch.float32) - mean) / std
        out = self(x.to(self.device))[0].cpu() * t_std + t_mean
        return [row[0] if len(row) == 1 else row for row in out.tolist()]


class GRURegressor(Forecaster):
    """One forecaster network (see the module docstring)."""

    def __init__(self, config: Any, state: dict[str, Any]):
        super().__init__(config, state)
        check_settings(config, state)
        features, outputs = int(state["input_size"]), int(state["output_size"])
        length, horizon = int(state["input_length"]), int(state["horizon"])
        targets = state.get("target_index")
        self.horizon, self.output_size = horizon, outputs
        self.patch = min(config.patch_length, length)  # a recipe's 24 still fits short windows
        self.patches = length // self.patch
        self.has_targets = targets is not None
        index = torch.tensor(list(targets) if targets is not None else [], dtype=torch.long)
        self.register_buffer("target_index", index, persistent=False)
        layers = {
            "num_layers": config.num_layers,
            "dropout": config.dropout if config.num_layers > 1 else 0.0,
            "batch_first": True,
        }
        self.gru = recurrent_layer(
            "gru", config.impl, self.patch * features, config.hidden_size, **layers
        )
        self.dropout = nn.Dropout(config.dropout)
        per_step = horizon if config.decoder == "direct" else self.patch
        self.head = nn.Linear(config.hidden_size, per_step * outputs)
        if config.decoder == "seq2seq":
            self.decoder = recurrent_layer(
                "gru", config.impl, self.patch * outputs, config.hidden_size, **layers
            )
        self.skip = nn.Linear(length, horizon) if config.linear_skip else None
        if config.window_norm == "revin":
            self.revin_weight = nn.Parameter(torch.ones(features))
            self.revin_bias = nn.Parameter(torch.zeros(features))

    def forecasters(self) -> list[nn.Module]:
        return [self]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x: [batch, window, features] -> [batch, horizon, outputs]."""
        xn, centre, scale = self.normalise(x)
        _, h = self.gru(self.to_patches(xn))
        out = self.decode(xn, h)
        if self.skip is not None:
            own = xn.index_select(2, self.target_index).transpose(1, 2)  # [B, T, L]
            out = out + self.skip(own).transpose(1, 2)
        return self.denormalise(out, centre, scale)

    def to_patches(self, x: torch.Tensor) -> torch.Tensor:
        """[B, L, F] -> [B, L // P, P * F]: the most recent whole patches, oldest first."""
        if self.patch == 1:
            return x
        used = x[:, x.shape[1] - self.patches * self.patch :]
        return used.reshape(x.shape[0], self.patches, self.patch * x.shape[2])

    def decode(self, xn: torch.Tensor, h: torch.Tensor) -> torch.Tensor:
        batch = xn.shape[0]
        if self.config.decoder == "direct":
            return self.head(self.dropout(h[-1])).view(batch, self.horizon, self.output_size)
        steps = math.ceil(self.horizon / self.patch)
        chunks = []
        if self.config.decoder == "autoregressive":
            for k in range(steps):
                y = self.head(self.dropout(h[-1]))  # the next patch, [B, P * T]
                chunks.append(y)
                if k + 1 < steps:
                    _, h = self.gru(y.unsqueeze(1), h)
        else:
            if self.has_targets:
                start = xn[:, -self.patch :].index_select(2, self.target_index)
                y = start.reshape(batch, -1)
            else:
                y = xn.new_zeros(batch, self.patch * self.output_size)
            for _ in range(steps):
                o, h = self.decoder(y.unsqueeze(1), h)
                y = self.head(self.dropout(o[:, -1]))
                chunks.append(y)
        out = torch.cat(chunks, dim=1).view(batch, steps * self.patch, self.output_size)
        return out[:, : self.horizon]

    def normalise(
        self, x: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor | None, torch.Tensor | None]:
        """The window on a per-window scale, with what `denormalise` needs to undo it."""
        norm = self.config.window_norm
        if norm == "none":
            return x, None, None
        if norm == "last":
            centre = x[:, -1:, :]
            return x - centre, centre, None
        centre = x.mean(dim=1, keepdim=True)
        if norm == "mean":
            return x - centre, centre, None
        scale = torch.sqrt(x.var(dim=1, keepdim=True, unbiased=False) + 1e-5)
        return (x - centre) / scale * self.revin_weight + self.revin_bias, centre, scale

    def denormalise(
        self, y: torch.Tensor, centre: torch.Tensor | None, scale: torch.Tensor | None
    ) -> torch.Tensor:
        if centre is None:
            return y
        centre = centre.index_select(2, self.target_index)
        if scale is None:
            return y + centre
        weight = self.revin_weight.index_select(0, self.target_index)
        bias = self.revin_bias.index_select(0, self.target_index)
        return (y - bias) / (weight + 1e-10) * scale.index_select(2, self.target_index) + centre


class GRUEnsemble(Forecaster):
    """K one-member networks (`members.K.gru...`) forecasting their mean. Built one after the
    other from the next draws of the seeded generator, so the members start differently."""

    def __init__(self, config: Any, state: dict[str, Any]):
        super().__init__(config, state)
        one = dataclasses.replace(config, members=1)
        self.members = nn.ModuleList(GRURegressor(one, state) for _ in range(config.members))

    def forecasters(self) -> list[nn.Module]:
        return list(self.members)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.stack([member(x) for member in self.members]).mean(dim=0)


def build(config: Any, state: dict[str, Any]) -> Forecaster:
    """The architecture's network: an ensemble when `members` > 1, else one network."""
    return GRUEnsemble(config, state) if config.members > 1 else GRURegressor(config, state)


def check_settings(config: Any, state: dict[str, Any]) -> None:
    """Refuse settings this data cannot serve: per-window normalisation, the linear skip and
    the autoregressive decoder all read the forecast values among the inputs."""
    needs_targets = [
        name
        for name, on in (
            (f"window_norm={config.window_norm}", config.window_norm != "none"),
            ("linear_skip=true", config.linear_skip),
            ("decoder=autoregressive", config.decoder == "autoregressive"),
        )
        if on
    ]
    if needs_targets and state.get("target_index") is None:
        raise SettingError(
            f"{needs_targets[0]}: needs the forecast values among the inputs, and "
            "this dataset's targets are not (use the csv dataset)"
        )
    features, outputs = int(state["input_size"]), int(state["output_size"])
    if config.decoder == "autoregressive" and features != outputs:
        raise SettingError(
            "decoder=autoregressive: feeds forecasts back as inputs, so every input "
            f"column must be a target ({features} inputs, {outputs} targets); use seq2seq"
        )


# ------------------------------------------------------------------------------- helpers
class Errors:
    """Squared and absolute errors, on the model's scale and on the data's raw scale, summed
    into a Tally under `key` (`se`, `ae`, `n`, ...; a prefix per forecast)."""

    def __init__(self, std: torch.Tensor | None, tally: Tally, key: str = ""):
        self.std, self.tally, self.key = std, tally, key

    def add(self, forecast: torch.Tensor, truth: torch.Tensor) -> None:
        diff, key = forecast - truth, self.key
        self.tally.add(f"{key}se", diff**2)
        self.tally.add(f"{key}ae", diff.abs())
        self.tally.add(f"{key}n", diff.numel())
        if self.std is not None:
            raw = diff * self.std.to(diff.device)
            self.tally.add(f"{key}se_raw", raw**2)
            self.tally.add(f"{key}ae_raw", raw.abs())

    def metrics(self, prefix: str | None = None) -> dict[str, float]:
        """`mse`, `mae` (and `mse_raw`, `mae_raw`), named with `prefix` (default: the key)."""
        t, key = self.tally, self.key
        prefix = key if prefix is None else prefix
        n = max(1.0, t[f"{key}n"])
        out = {f"{prefix}mse": t[f"{key}se"] / n, f"{prefix}mae": t[f"{key}ae"] / n}
        if self.std is not None:
            out[f"{prefix}mse_raw"] = t[f"{key}se_raw"] / n
            out[f"{prefix}mae_raw"] = t[f"{key}ae_raw"] / n
        return out


def target_std(state: dict[str, Any]) -> torch.Tensor | None:
    if "std" not in state or state.get("target_index") is None:
        return None
    return torch.tensor([float(state["std"][i]) for i in state["target_index"]])


def scales(state: dict[str, Any]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """(input mean, input std, target mean, target std); identity for unscaled data."""
    features, outputs = int(state["input_size"]), int(state["output_size"])
    if "mean" not in state:
        return (
            torch.zeros(features),
            torch.ones(features),
            torch.zeros(outputs),
            torch.ones(outputs),
        )
    mean = torch.tensor([float(v) for v in state["mean"]])
    std = torch.tensor([float(v) for v in state["std"]])
    index = state.get("target_index") or list(range(outputs))
    return mean, std, mean[index], std[index]


def fmt(value: float | list[float]) -> str:
    if isinstance(value, list):
        return ",".join(f"{v:.4f}" for v in value)
    return f"{value:.4f}"
