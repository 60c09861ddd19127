"""The final evaluation at the end of `zoo run` (the valid and test splits whose metrics go
into the model file) is sharded as validation is: on several processes each scores its share
of every split and the tallies are merged, so the saved metrics are one process's."""

from __future__ import annotations

from typing import Any

import pytest

import zoo
from tests.conftest import run_zoo
from zoo.training.distributed import Processes
from zoo.training.job import final_metrics


@pytest.fixture(scope="module")
def tagger() -> Any:
    model = zoo.create("lstm-tagger", steps=2, batch_size=2)
    zoo.train(model)
    return model


def test_each_process_scores_its_share_of_every_held_out_split(tagger):
    whole = final_metrics(tagger)
    assert set(whole) == {"valid", "test"}
    # outside torchrun no tally travels: rank 0 of 2 merges its own share alone, which
    # shows that it scored batches 0, 2, ... and not the whole split
    shares = [final_metrics(tagger, Processes(rank, 2)) for rank in (0, 1)]
    for split in ("valid", "test"):
        counts = [share[split]["words"] for share in shares]
        assert 0 < counts[0] < whole[split]["words"] and sum(counts) == whole[split]["words"]


def test_a_network_scored_only_whole_is_evaluated_by_rank_0_alone(tagger, monkeypatch):
    kind = type(tagger.module)
    monkeypatch.setattr(kind, "shardable", property(lambda self: False))
    monkeypatch.setattr(kind, "evaluate", lambda self, batches: self.score(self.tally(batches)))
    assert final_metrics(tagger, Processes(1, 2)) == {}
    assert final_metrics(tagger, Processes(0, 2)) == final_metrics(tagger)


def same_metrics(sharded: dict[str, Any], whole: dict[str, Any]) -> None:
    """Counts and tables exactly; losses to the float noise of a batch scored elsewhere
    (tests/core/test_sharded_validation.py, assert_same)."""
    assert sharded.keys() == whole.keys()
    for key, value in whole.items():
        if isinstance(value, float):
            assert sharded[key] == pytest.approx(value, rel=1e-4, abs=1e-9), key
        else:
            assert sharded[key] == value, key


@pytest.mark.slow
def test_two_processes_save_the_metrics_one_process_gets(tmp_path):
    out = tmp_path / "t.safetensors"
    args = ["run", "lstm-tagger", "--steps", "2", "--batch-size", "2", "--nproc-per-node", "2"]
    r = run_zoo(*args, "-q", "--out", out, env={"ZOO_RDZV_TIMEOUT": "60"}, cwd=tmp_path)
    assert r.code == 0, r.stderr
    model = zoo.load(out)
    for split in ("valid", "test"):
        same_metrics(model.metrics[split], model.evaluate(split=split, batch_size=2))
