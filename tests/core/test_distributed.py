"""Training on several processes under torchrun: the same weights as one process, one writer,
every process stopping together."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from tests.conftest import run_zoo
from zoo.toolkit.data import Data, Part


def torchrun(*args: str, cwd: Path, nproc: int = 2) -> subprocess.CompletedProcess:
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone"]
    command += [f"--nproc-per-node={nproc}", "-m", "zoo", *args]
    return subprocess.run(command, capture_output=True, text=True, cwd=cwd, timeout=240)


def test_a_part_is_a_contiguous_share_and_shards_cover_every_example():
    assert [list(Part(r, 3).of(range(7))) for r in range(3)] == [[0, 1], [2, 3], [4, 5, 6]]
    data = Data(
        state={},
        splits={"train": list(range(11))},
        collate=lambda xs: {"x": torch.tensor(xs)},
    )
    gen = [torch.Generator().manual_seed(3) for _ in range(2)]
    shards = [
        list(data.shards("train", 4, Part(r, 2), shuffle=True, generator=gen[r])) for r in (0, 1)
    ]
    whole = list(data.batches("train", 4, shuffle=True, generator=torch.Generator().manual_seed(3)))
    for batch, (a, b) in zip(whole, zip(*shards)):
        assert torch.cat([a.batch["x"], b.batch["x"]]).tolist() == batch["x"].tolist()
        assert a.examples + b.examples == a.total == len(batch["x"])


def test_a_process_left_without_examples_runs_one_with_no_weight():
    data = Data(state={}, splits={"train": [7]}, collate=lambda xs: {"x": torch.tensor(xs)})
    (empty,) = data.shards("train", 4, Part(0, 2))
    (full,) = data.shards("train", 4, Part(1, 2))
    assert empty.batch["x"].tolist() == [7] and empty.examples == 0 and empty.total == 1
    assert full.batch["x"].tolist() == [7] and full.examples == 1


@pytest.mark.slow
def test_two_processes_train_the_weights_of_one_and_only_rank_0_writes(tmp_path):
    """gru-regressor (no dropout, a loss averaged over examples): two processes
    (`--nproc-per-node 2`), each with half of every batch, end where one process ends, to
    float tolerance."""
    args = ["run", "gru-regressor", "--epochs", "2", "--json", "-q"]
    one = run_zoo(*args, "--out", tmp_path / "one.safetensors", cwd=tmp_path)
    assert one.code == 0, one.stderr
    (tmp_path / "two").mkdir()
    two = run_zoo(*args, "--nproc-per-node", "2", "--out", "two.safetensors", cwd=tmp_path / "two")
    assert two.code == 0, two.stderr
    assert "Traceback" not in two.stderr
    assert two.stdout.count('"architecture"') == 1  # one JSON document, from rank 0
    assert sorted(p.name for p in (tmp_path / "two").iterdir()) == ["two.safetensors"]
    a, b = load_file(tmp_path / "one.safetensors"), load_file(tmp_path / "two" / "two.safetensors")
    assert a.keys() == b.keys()
    assert max(float((a[k] - b[k]).abs().max()) for k in a) < 1e-5
    assert two.json()["training"]["steps"] == one.json()["training"]["steps"] == 100
    rss = two.json()["training"]["peak_rss_mib"]  # each process's own, by rank
    assert len(rss) == 2 and all(50 < mib < 4096 for mib in rss)
    assert len(one.json()["training"]["peak_rss_mib"]) == 1


@pytest.mark.slow
def test_a_nan_on_any_rank_stops_every_rank_with_one_message(tmp_path):
    """Started by plain torchrun (zoo reads RANK and WORLD_SIZE): a divergence stops both
    processes at the same step, one `Error:` line, no model file."""
    two = torchrun(
        "run", "gru-regressor", "--lr", "1e30", "--set", "grad_clip=0", "--set", "optimizer=sgd",
        "--out", "m.safetensors", "-q", cwd=tmp_path,
    )  # fmt: skip
    assert two.returncode != 0
    errors = [line for line in two.stderr.splitlines() if line.startswith("Error:")]
    assert len(errors) == 1 and "training diverged at step" in errors[0], two.stderr
    assert not (tmp_path / "m.safetensors").exists()


@pytest.mark.slow
def test_more_processes_than_examples_is_one_error(tmp_path):
    one_sentence = tmp_path / "one.conllu"
    words = ["1\tThe\tthe\tDET", "2\tdog\tdog\tNOUN"]
    one_sentence.write_text("".join(w + "\t_" * 6 + "\n" for w in words) + "\n")
    r = run_zoo(
        "run", "lstm-tagger", "--dataset", "conllu", "--data", one_sentence, "--dev",
        one_sentence, "--nproc-per-node", "2", cwd=tmp_path,
    )  # fmt: skip
    assert r.code == 2
    assert r.error_line() == (
        "Error: 2 processes but 1 training example(s): use at most one process per example "
        "(--nproc-per-node)"
    )
