"""Sharded validation: each training process scores its share of a split, the tallies merge
exactly, and the metrics are those one process gets on the same weights (docs/distributed.md,
"Sharded validation")."""

from __future__ import annotations

import json
import math
import os
import random
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import torch
from zoo_plugins.rnn_seq2seq.bleu import bleu_of, corpus_bleu, segment_counts

import zoo
from tests.conftest import REPO, SHARED_DATA
from zoo.toolkit.data import Data, Part
from zoo.toolkit.metrics import Confusion, Tally
from zoo.toolkit.network import Network
from zoo.training import trainer
from zoo.training.distributed import Processes
from zoo.training.guard import Checked

EWT = SHARED_DATA / "ud-english-ewt"
ETTH1 = SHARED_DATA / "ett" / "ETTh1.csv"


# ------------------------------------------------------------------------------ in process
def test_a_tally_sums_exactly_whatever_the_order_and_the_cut():
    """Sums kept as error-free partials: any order and any cut into merged shares give the
    correctly rounded sum, bit for bit (a running float sum would not: 1e16 + 1 - 1e16)."""
    rng = random.Random(5)
    values = [rng.uniform(-1, 1) * 10 ** rng.randint(-8, 16) for _ in range(500)]
    whole = Tally()
    for v in values:
        whole.add("x", v)
    assert whole["x"] == math.fsum(values)
    shuffled = values[:]
    rng.shuffle(shuffled)
    shares = [Tally() for _ in range(3)]
    for i, v in enumerate(shuffled):
        shares[i % 3].add("x", v)
    assert Tally.merged(shares)["x"] == whole["x"]
    assert sum(values) != math.fsum(values)  # the case a plain running sum gets wrong
    assert Tally()["never added"] == 0.0 and Tally().ratio("a", "b", default=-1.0) == -1.0


def test_confusion_tables_merge_into_the_whole_splits_table():
    labels = ["A", "B", "C"]
    gold = torch.tensor([0, 1, 2, 2, 5, -100, 1, 0])
    predicted = torch.tensor([0, 2, 2, 1, 0, 1, 1, 1])
    whole = Confusion(labels)
    whole.add(predicted, gold)
    parts = [Confusion(labels), Confusion(labels)]
    parts[0].add(predicted[:3], gold[:3])
    parts[1].add(predicted[3:], gold[3:])
    merged = parts[0].merge(parts[1])
    assert merged.metrics() == whole.metrics() and merged.unlabelled == 1
    with pytest.raises(ValueError, match="different labels"):
        merged.merge(Confusion(["A", "B"]))
    tallies = [Tally(), Tally()]
    tallies[0].confusion("t", labels).add(predicted[:5], gold[:5])
    tallies[1].confusion("t", labels).add(predicted[5:], gold[5:])
    assert Tally.merged(tallies).tables["t"].metrics() == whole.metrics()


def test_summed_bleu_counts_are_the_corpus_bleu():
    """Corpus BLEU from per-segment counts summed over shares equals corpus_bleu of all."""
    hyps = ["the cat sat on the mat", "a dog", "hello there friend", "he is here now ."]
    refs = ["the cat is on the mat", "a dog barks", "hello friend", "he is here now ."]
    counts = [segment_counts(h, [r]) for h, r in zip(hyps, refs)]
    sums = [sum(column) for column in zip(*counts)]
    assert bleu_of(sums).score == corpus_bleu(hyps, [refs]).score
    assert 0 < bleu_of(sums).score < 100


def _numbers(n: int) -> Data:
    return Data(state={}, splits={"valid": list(range(n))}, collate=lambda xs: {"x": xs})


def test_the_shares_cover_every_batch_once_each_whole():
    data = _numbers(23)
    whole = [b["x"] for b in data.batches("valid", 4)]
    shares = [list(trainer.evaluation_share(data, "valid", 4, Part(r, 3))) for r in range(3)]
    assert [len(s) for s in shares] == [2, 2, 2]
    assert sorted(b["x"] for s in shares for b in s) == sorted(whole)
    assert [b["x"] for b in shares[1]] == [whole[1], whole[4]]


class Counting(Network):
    """Scores the sum of `x`: by tally and score, or (Plain) by evaluate alone."""

    def __init__(self) -> None:
        super().__init__(None, {})
        self.w = torch.nn.Parameter(torch.zeros(1))

    def tally(self, batches: Any) -> Tally:
        tally = Tally()
        for batch in batches:
            tally.add("sum", sum(batch["x"]))
            tally.add("n", len(batch["x"]))
        return tally

    def score(self, tally: Tally) -> dict[str, Any]:
        return {"loss": tally.ratio("sum", "n"), "n": int(tally["n"])}


class Plain(Network):
    def evaluate(self, batches: Any) -> dict[str, Any]:
        xs = [x for b in batches for x in b["x"]]
        return {"loss": sum(xs) / len(xs), "n": len(xs)}


def test_a_network_with_only_evaluate_is_scored_whole_on_every_process():
    """The fallback: a plugin written before sharding existed still gets the whole split's
    metrics on each process; a tally-and-score network gets only its share here, where no
    process group merges the shares (the two-process test below merges them)."""
    data, cpu, procs = _numbers(10), torch.device("cpu"), Processes(1, 2)
    plain = Plain(None, {})
    assert not plain.shardable and Counting().shardable
    whole = trainer.evaluate(Checked(plain, "plain"), data, "valid", 3, cpu, procs)
    assert whole == {"loss": 4.5, "n": 10}
    counting = Checked(Counting(), "counting")
    assert trainer.evaluate(counting, data, "valid", 3, cpu) == whole  # one process
    share = trainer.evaluate(counting, data, "valid", 3, cpu, procs)
    assert share == {"loss": 5.25, "n": 4}  # batches 1 and 3 of [0-2] [3-5] [6-8] [9]
    assert Counting().evaluate([{"x": [1, 2]}]) == {"loss": 1.5, "n": 2}


def test_a_tally_that_is_not_a_tally_names_the_plugin():
    class Wrong(Counting):
        def tally(self, batches: Any) -> Any:
            return {"sum": 1}

    checked = Checked(Wrong(), "architecture 'wrong' (test 0.1)")
    with pytest.raises(zoo.PluginError, match="architecture 'wrong'.*not a zoo.metrics.Tally"):
        trainer.evaluate(checked, _numbers(4), "valid", 2, torch.device("cpu"), Processes(0, 2))


# ----------------------------------------------------------------------------- two processes
WORKER = """
import json, sys, torch
import zoo
from zoo.training import distributed, trainer

model = zoo.load(sys.argv[1])
data = model.evaluation_data()
size, cpu = int(sys.argv[2]), torch.device("cpu")
whole = trainer.evaluate(model.checked, data, "valid", size, cpu)
procs = distributed.start("cpu")
sharded = trainer.evaluate(model.checked, data, "valid", size, cpu, procs)
print(json.dumps({"whole": whole, "sharded": sharded}))
distributed.finish()
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def two_processes(model: Path, batch_size: int, cwd: Path) -> list[dict[str, Any]]:
    """Both ranks' (whole, sharded) validation metrics of the model file, by gloo on
    127.0.0.1, as torchrun would start them."""
    port, procs = free_port(), []
    for rank in range(2):
        env = dict(os.environ, RANK=str(rank), WORLD_SIZE="2", LOCAL_RANK=str(rank))
        env.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), ZOO_DIST_TIMEOUT="60")
        env["PYTHONPATH"] = str(REPO)
        command = [sys.executable, "-c", WORKER, str(model), str(batch_size)]
        procs.append(subprocess.Popen(command, cwd=cwd, env=env, stdout=subprocess.PIPE, text=True))
    outs = []
    for p in procs:
        stdout, _ = p.communicate(timeout=180)
        assert p.returncode == 0
        outs.append(json.loads(stdout.strip().splitlines()[-1]))
    return outs


def trained(tmp_path: Path, name: str, steps: int = 3, **settings: Any) -> Path:
    """A briefly trained model file, so that the metrics are not those of random weights."""
    model = zoo.create(name, steps=steps, **settings)
    zoo.train(model)
    path = tmp_path / f"{name}.safetensors"
    zoo.save(model, path)
    return path


def assert_same(outs: list[dict[str, Any]], keys: list[str]) -> dict[str, Any]:
    """Every rank's sharded metrics are one process's: counts, tables and what is made of
    them alone (accuracy, BLEU's counts) exactly; sums of losses to float noise, because the
    BLAS library does not promise the same last bits for one batch scored twice (seen once
    in this test: 1e-5 relative on a seq2seq loss near 0). Both ranks agree bit for bit, so
    all take the same best-weight and early-stopping decisions."""
    assert outs[0]["sharded"] == outs[1]["sharded"]
    for out in outs:
        sharded, whole = out["sharded"], out["whole"]
        assert set(keys) <= set(whole) and sharded.keys() == whole.keys(), sorted(whole)
        for key, value in whole.items():
            if isinstance(value, float):
                assert sharded[key] == pytest.approx(value, rel=1e-4, abs=1e-9), key
            else:
                assert sharded[key] == value, key
    return outs[0]["whole"]


@pytest.mark.slow
@pytest.mark.skipif(not EWT.is_dir(), reason="../shared/data/ud-english-ewt is absent")
def test_two_processes_score_the_tagger_as_one(tmp_path):
    """EWT slice with the recipe's auxiliary columns: accuracy, known/unknown, XPOS, UFeats,
    AllTags, per-tag and the confusion matrix, as one process scores them."""
    path = trained(
        tmp_path, "lstm-tagger", dataset="conllu", data=EWT, limit=120, batch_size=16,
        hidden_size=32, embedding_dim=32, char_hidden=16,
    )  # fmt: skip
    keys = ["accuracy", "xpos_accuracy", "feats_accuracy", "alltags_accuracy", "confusion"]
    metrics = assert_same(two_processes(path, 16, tmp_path), keys)
    assert metrics["words"] > 1000 and 0 < metrics["accuracy"] < 1


@pytest.mark.slow
def test_two_processes_score_the_char_lm_regressor_and_seq2seq_as_one(tmp_path):
    """Char LM (loss, bits per character, weighted by character: each process its own rows
    of every window), GRU forecaster (MSE, MAE, raw and naive), seq2seq with BLEU."""
    text = tmp_path / "text.txt"
    text.write_text("To be, or not to be, that is the question.\n" * 80)
    lm = trained(tmp_path, "elman-rnn", dataset="text", data=text, hidden_size=16, bptt=20)
    out = assert_same(two_processes(lm, 5, tmp_path), ["loss", "bpc", "characters"])
    assert out["characters"] == round(len(text.read_text()) * 0.1) - 1
    forecast = ETTH1 if ETTH1.exists() else None
    extra = {"dataset": "csv", "data": forecast, "preset": "ett-h1-ot"} if forecast else {}
    gru = trained(tmp_path, "gru-regressor", hidden_size=16, **extra)
    keys = ["mse", "mae"] + (["mse_raw", "repeat_last/mse", "seasonal_naive_24/mae"] * bool(extra))
    assert assert_same(two_processes(gru, 32, tmp_path), keys)["windows"] > 64
    pairs = tmp_path / "pairs.txt"
    rows = [f"w{i} x{i % 7} y{i % 3}\tthe cat sat on the mat y{i % 3} .\n" for i in range(120)]
    pairs.write_text("".join(rows))
    s2s = trained(tmp_path, "rnn-seq2seq", dataset="sentence-pairs", data=pairs, steps=40, lr=0.01)
    out = assert_same(two_processes(s2s, 4, tmp_path), ["exact_match", "token_accuracy", "bleu"])
    assert out["bleu"] > 0
