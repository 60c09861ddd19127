"""The registry: listing, lookup with suggestions, compatibility, conflicts and broken plugins."""

from __future__ import annotations

import types
from dataclasses import dataclass

import pytest

from tests.conftest import Scripted, ScriptedConfig, plugin_of, scripted_data
from zoo import Architecture, Dataset, hookimpl, param
from zoo.core.errors import PluginError, UsageError
from zoo.core.registry import Registry, get_registry


@dataclass
class Cfg:
    size: int = param(1, "size")


def arch(name, tasks=("t",), dataset="d"):
    return Architecture(
        name=name,
        description=f"{name} model",
        tasks=tasks,
        config=Cfg,
        default_dataset=dataset,
        implementation=types.SimpleNamespace(),
    )


def data(name, task="t"):
    return Dataset(
        name=name, description=f"{name} data", task=task, config=Cfg, loader=lambda c, s: None
    )


def test_builtin_plugins_are_found_through_entry_points():
    reg = get_registry()
    assert {"elman-rnn", "lstm-tagger", "gru-regressor", "rnn-seq2seq"} <= set(reg.architectures)
    for name in ("elman-rnn", "lstm-tagger", "gru-regressor", "rnn-seq2seq"):
        entry = reg.architecture(name)
        assert entry.plugin.distribution == "rnn-zoo"
        assert "register_architectures" in entry.plugin.hooks
        assert entry.spec.default_dataset in reg.datasets
        reg.check_compatible(name, entry.spec.default_dataset)
    assert not reg.failures


def test_list_filters_by_glob_and_task():
    reg = Registry.from_plugins(
        [
            (
                plugin_of([arch("lstm-a"), arch("gru-b", tasks=("u",))], [data("d")]),
                "p",
                "dist-p",
                "1.0",
            )
        ]
    )
    assert reg.list_architectures() == ["gru-b", "lstm-a"]
    assert reg.list_architectures("lstm*") == ["lstm-a"]
    assert reg.list_architectures(task="u") == ["gru-b"]
    assert reg.list_datasets(task="t") == ["d"]


def test_unknown_name_suggests_close_matches():
    reg = Registry.from_plugins(
        [(plugin_of([arch("lstm-tagger")], [data("d")]), "p", "dist-p", "1.0")]
    )
    with pytest.raises(UsageError, match="did you mean 'lstm-tagger'"):
        reg.architecture("lstm-taggr")


def test_incompatible_pair_names_both_tasks_and_the_datasets_that_fit():
    reg = Registry.from_plugins(
        [
            (
                plugin_of(
                    [arch("m", tasks=("tagging",), dataset="tags")],
                    [data("tags", "tagging"), data("waves", "regression")],
                ),
                "p",
                "dist",
                "1",
            )
        ]
    )
    with pytest.raises(UsageError) as e:
        reg.check_compatible("m", "waves")
    msg = str(e.value)
    assert (
        "'m' (task tagging)" in msg
        and "'waves' (task regression)" in msg
        and "compatible datasets: tags" in msg
    )


def test_two_plugins_registering_one_name_is_an_error_naming_both_distributions():
    reg = Registry.from_plugins(
        [
            (plugin_of([arch("same")], [data("d")]), "first", "dist-one", "1.0"),
            (plugin_of([arch("same"), arch("other")]), "second", "dist-two", "2.5"),
        ]
    )
    assert "same" not in reg.list_architectures()
    assert "other" in reg.list_architectures()  # the rest of the plugin still works
    with pytest.raises(PluginError) as e:
        reg.architecture("same")
    assert "dist-one 1.0" in str(e.value) and "dist-two 2.5" in str(e.value)
    assert any("registered by both" in p for p in reg.problems())


def test_a_plugin_raising_in_a_hook_does_not_stop_the_others():
    broken = types.SimpleNamespace()

    @hookimpl
    def register_architectures(register):
        raise RuntimeError("boom")

    broken.register_architectures = register_architectures
    reg = Registry.from_plugins(
        [
            (broken, "broken", "dist-broken", "0.1"),
            (plugin_of([arch("ok")], [data("d")]), "good", "dist-good", "1"),
        ]
    )
    assert reg.list_architectures() == ["ok"]
    (failure,) = reg.failures
    assert (
        failure.name == "broken"
        and failure.stage == "register_architectures"
        and "boom" in failure.error
    )
    with pytest.raises(PluginError, match="broken"):
        reg.architecture("broken")


@pytest.mark.parametrize(
    ("thing", "message"),
    [
        ("not a spec", "expected a zoo.Architecture"),
        (arch("Bad Name"), "must be lower-case"),
        (
            Architecture(
                name="x",
                description="",
                tasks=(),
                config=Cfg,
                default_dataset="d",
                implementation=None,
            ),
            "tasks",
        ),
        (
            Architecture(
                name="x",
                description="",
                tasks=("t",),
                config=dict,
                default_dataset="d",
                implementation=None,
            ),
            "dataclass",
        ),
    ],
)
def test_malformed_registrations_are_recorded_not_raised(thing, message):
    reg = Registry.from_plugins(
        [(plugin_of([thing, arch("fine")], [data("d")]), "p", "dist-p", "1")]
    )
    assert reg.list_architectures() == ["fine"]
    assert len(reg.failures) == 1 and message in reg.failures[0].error


def test_implementation_is_imported_lazily_and_checked():
    lazy = Architecture(
        name="lazy",
        description="",
        tasks=("t",),
        config=Cfg,
        default_dataset="d",
        implementation="no_such_module_xyz.model:Network",
    )
    reg = Registry.from_plugins([(plugin_of([lazy], [data("d")]), "p", "dist-p", "1")])
    assert reg.list_architectures() == ["lazy"]  # listing never imports it
    with pytest.raises(PluginError, match="cannot load 'no_such_module_xyz.model:Network'"):
        reg.network_class("lazy", "t")
    incomplete = Registry.from_plugins([(plugin_of([arch("m")], [data("d")]), "p", "dist-p", "1")])
    with pytest.raises(PluginError, match="is not a class or function that builds a zoo.Network"):
        incomplete.network_class("m", "t")


def test_implementation_by_name_by_class_or_by_task():
    """ "module:Class" is imported on first use; a class or a function is used as it is; a
    mapping gives each task its own network and names the tasks it lacks."""
    by_name = Architecture(
        name="named",
        description="",
        tasks=("toy",),
        config=ScriptedConfig,
        default_dataset="d",
        implementation="tests.conftest:Scripted",
    )
    by_task = Architecture(
        name="tasks",
        description="",
        tasks=("toy", "other"),
        config=ScriptedConfig,
        default_dataset="d",
        implementation={"toy": "tests.conftest:Scripted", "other": Scripted},
    )
    missing = Architecture(
        name="missing",
        description="",
        tasks=("toy", "other"),
        config=ScriptedConfig,
        default_dataset="d",
        implementation={"toy": Scripted},
    )
    reg = Registry.from_plugins(
        [(plugin_of([by_name, by_task, missing], [data("d", "toy")]), "p", "dist-p", "1")]
    )
    assert reg.network_class("named", "toy") is Scripted
    assert reg.network_class("tasks", "toy") is reg.network_class("tasks", "other") is Scripted
    with pytest.raises(PluginError, match="names no network for task 'other' \\(it has toy\\)"):
        reg.network_class("missing", "other")
    stray = Architecture(
        name="stray",
        description="",
        tasks=("toy",),
        config=ScriptedConfig,
        default_dataset="d",
        implementation={"toy": Scripted, "nope": Scripted},
    )
    reg = Registry.from_plugins([(plugin_of([stray], [data("d", "toy")]), "p", "dist-p", "1")])
    assert "implementation names tasks it lacks: ['nope']" in reg.failures[0].error


def test_a_scripted_network_trains_through_its_class_name(use_registry):
    """The string form reaches the same class as the class itself would."""
    import zoo

    named = Architecture(
        name="named",
        description="",
        tasks=("toy",),
        config=ScriptedConfig,
        default_dataset="toy",
        implementation="tests.conftest:Scripted",
    )
    toy = Dataset(
        name="toy", description="", task="toy", config=ScriptedConfig, loader=scripted_data
    )
    reg = Registry.from_plugins([(plugin_of([named], [toy]), "p", "dist-p", "1")])
    model = zoo.create("named", registry=reg, epochs=1, batch_size=4)
    assert isinstance(model.module, Scripted) and zoo.train(model).steps == 2
