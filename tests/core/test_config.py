"""Configs: typed fields, `--set` conversion, limits, and routing of flat setting names."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import pytest

from zoo.core import config as cfg
from zoo.core.errors import SettingError, UsageError
from zoo.core.registry import Architecture, Dataset
from zoo.core.settings import TrainConfig, resolve


@dataclass
class Example:
    size: int = cfg.param(8, "a size", min=1, max=100)
    rate: float = cfg.param(0.5, "a rate", min=0.0, max=1.0)
    kind: Literal["a", "b"] = cfg.param("a", "a kind")
    flag: bool = cfg.param(False, "a flag")
    name: str | None = cfg.param(None, "an optional name")
    widths: tuple[int, ...] = cfg.param((1, 2), "some widths")


def test_fields_report_types_defaults_and_help():
    info = {f.name: f for f in cfg.fields(Example)}
    assert info["size"].type_name == "int" and info["size"].default == 8
    assert info["kind"].type_name == "a|b"
    assert info["name"].type_name == "str | None"
    assert info["widths"].type_name == "list of int"
    assert info["rate"].help == "a rate" and info["rate"].max == 1.0


@pytest.mark.parametrize(
    ("values", "expected"),
    [
        ({"size": "12"}, {"size": 12}),
        ({"size": "1e1"}, {"size": 10}),
        ({"rate": "0.25"}, {"rate": 0.25}),
        ({"flag": "yes"}, {"flag": True}),
        ({"flag": "0"}, {"flag": False}),
        ({"kind": "b"}, {"kind": "b"}),
        ({"name": "none"}, {"name": None}),
        ({"name": "x"}, {"name": "x"}),
        ({"widths": "3,4,5"}, {"widths": (3, 4, 5)}),
    ],
)
def test_build_converts_strings(values, expected):
    built = cfg.build(Example, values)
    for key, value in expected.items():
        assert getattr(built, key) == value


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"size": "big"}, "size='big' is not valid; expected int"),
        ({"size": "0"}, "size=0 is below its minimum 1"),
        ({"rate": "2"}, "rate=2.0 is above its maximum 1.0"),
        ({"rate": "nan"}, "rate='nan' is not valid; expected float"),
        ({"kind": "c"}, "kind='c' is not valid; expected a|b"),
        ({"flag": "maybe"}, "flag='maybe' is not valid; expected bool"),
        ({"sise": "3"}, "unknown setting 'sise' (did you mean 'size'?)"),
    ],
)
def test_build_rejects_bad_values_with_a_clear_message(values, message):
    """A bad setting is a SettingError that starts with the setting (the command line adds
    that it came from --set); a bad value read from a file names the file instead."""
    with pytest.raises(SettingError) as e:
        cfg.build(Example, values)
    assert str(e.value).startswith(message)
    with pytest.raises(UsageError) as e:
        cfg.build(Example, values, where="m.safetensors: config")
    assert not isinstance(e.value, SettingError)
    assert str(e.value).startswith(f"m.safetensors: config: {message}")


def test_parse_assignments():
    assert cfg.parse_assignments(["a=1", "b = x=y"]) == {"a": "1", "b": "x=y"}
    with pytest.raises(UsageError, match="expected KEY=VALUE"):
        cfg.parse_assignments(["novalue"])


def test_roundtrip_through_dict():
    built = cfg.build(Example, {"widths": "7"})
    assert cfg.build(Example, cfg.to_dict(built)) == built


@dataclass
class ModelCfg:
    hidden: int = cfg.param(4, "h")
    seed: int = cfg.param(1, "clashes with train.seed")


@dataclass
class DataCfg:
    path: str | None = cfg.param(None, "p")
    window: int = cfg.param(3, "w")


ARCH = Architecture(
    name="a",
    description="",
    tasks=("t",),
    config=ModelCfg,
    default_dataset="d",
    implementation=None,
    train_defaults={"lr": 0.5, "epochs": 2},
    dataset_defaults={"d": {"hidden": 9, "epochs": 7, "window": 5}},
)
DATA = Dataset(
    name="d",
    description="",
    task="t",
    config=DataCfg,
    loader=None,
    train_defaults={"epochs": 3, "batch_size": 4},
)


def test_settings_resolve_in_layers():
    s = resolve(ARCH, DATA)
    assert s.train.lr == 0.5  # architecture train default
    assert s.train.batch_size == 4  # dataset train default
    assert s.train.epochs == 7  # architecture's recipe for this dataset wins over both
    assert s.model.hidden == 9 and s.data.window == 5
    s = resolve(ARCH, DATA, {"epochs": "1", "window": "8", "model.seed": "5", "train.seed": "6"})
    assert (s.train.epochs, s.data.window, s.model.seed, s.train.seed) == (1, 8, 5, 6)
    assert isinstance(s.train, TrainConfig)


def test_ambiguous_and_unknown_settings_say_what_to_write():
    with pytest.raises(
        SettingError, match=r"^'seed' is a setting of both .*model\.seed or train\.seed"
    ):
        resolve(ARCH, DATA, {"seed": "3"})
    with pytest.raises(SettingError, match="^unknown setting 'hiden' .*did you mean 'hidden'"):
        resolve(ARCH, DATA, {"hiden": "3"})
    with pytest.raises(SettingError, match="^train has no setting 'hidden'"):
        resolve(ARCH, DATA, {"train.hidden": "3"})


def test_train_config_refuses_nothing_to_do():
    with pytest.raises(SettingError, match="nothing to train"):
        cfg.build(TrainConfig, {"epochs": 0})
