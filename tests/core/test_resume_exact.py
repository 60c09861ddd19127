"""A run interrupted halfway and resumed ends at exactly the weights of a run that never
stopped, for each kind of state a network carries: the char LM's hidden state carried from
window to window (in the checkpoint, not in the model file), the tagger's auxiliary heads
(rebuilt from a file whose JSON sorts the state's keys), the seq2seq's attention decoder.
The toy tagger without auxiliary heads is covered in test_resume.py."""

from __future__ import annotations

import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

import zoo
from tests.conftest import SHARED_DATA, InterruptAt, run_zoo
from zoo.core.errors import ModelFileError
from zoo.training.checkpoint import default_path
from zoo.training.trainer import TrainingInterrupted, by_name, by_position

EWT = SHARED_DATA / "ud-english-ewt"
TEXT = "To be, or not to be: that is the question.\nWhether 'tis nobler in the mind\n" * 30


def straight_and_resumed(tmp_path: Path, name: str, stop_at: int, **settings) -> tuple:
    """(weights of the uninterrupted run, of the run stopped after `stop_at` steps and
    resumed, the checkpoint's tensors as they were at the stop)."""
    whole = tmp_path / "whole.safetensors"
    zoo.run(name, out=whole, threads=1, **settings)
    out = tmp_path / "halves.safetensors"
    with pytest.raises(TrainingInterrupted, match=f"at step {stop_at} of"):
        zoo.run(name, out=out, progress=InterruptAt(stop_at), threads=1, **settings)
    saved = load_file(default_path(out))
    zoo.resume(default_path(out))
    return load_file(whole), load_file(out), saved


def assert_identical(a: dict, b: dict) -> None:
    assert a.keys() == b.keys()
    assert [k for k in a if not torch.equal(a[k], b[k])] == []


@pytest.mark.parametrize("cell", ["elman", "lstm"])
def test_a_char_lm_resumed_mid_epoch_carries_its_hidden_state(tmp_path, cell):
    text = tmp_path / "t.txt"
    text.write_text(TEXT, encoding="utf-8")
    # 2 epochs of 17 windows; the stop falls mid-epoch, the carried state non-zero
    settings = dict(dataset="text", data=text, bptt=8, hidden_size=16, cell=cell, steps=24)
    whole, resumed, saved = straight_and_resumed(tmp_path, "elman-rnn", 12, **settings)
    assert_identical(whole, resumed)
    carried = sorted(k for k in saved if k.startswith("carry/"))
    assert carried == (["carry/0/c", "carry/0/h"] if cell == "lstm" else ["carry/0/h"])
    assert saved["carry/0/h"].abs().sum() > 0
    assert not any(k.startswith("carry") for k in whole)  # never in the model file


def test_without_the_carried_state_the_char_lm_would_not_resume_exactly(tmp_path, monkeypatch):
    """The test above fails when the hidden state is left out of the checkpoint."""
    from zoo_plugins.elman_rnn.model import CharLM

    monkeypatch.setattr(CharLM, "carried_state", lambda self: {})
    text = tmp_path / "t.txt"
    text.write_text(TEXT, encoding="utf-8")
    settings = dict(dataset="text", data=text, bptt=8, hidden_size=16, steps=24)
    whole, resumed, _ = straight_and_resumed(tmp_path, "elman-rnn", 12, **settings)
    assert any(not torch.equal(whole[k], resumed[k]) for k in whole)


@pytest.mark.skipif(not EWT.is_dir(), reason="../shared/data/ud-english-ewt is absent")
def test_the_tagger_with_auxiliary_heads_resumes_exactly(tmp_path):
    folder = tmp_path / "ewt"
    folder.mkdir()
    for split, lines in (("train", 500), ("dev", 150), ("test", 150)):
        name = f"en_ewt-ud-{split}.conllu"
        with open(EWT / name, encoding="utf-8") as f:
            (folder / name).write_text("".join(next(f) for _ in range(lines)), encoding="utf-8")
    # deprel before xpos: the heads are built in file order whatever the order named
    settings = dict(dataset="conllu", data=folder, batch_size=8, epochs=2)
    settings.update(aux_columns="deprel,xpos,feats", hidden_size=16, embedding_dim=16)
    whole, resumed, saved = straight_and_resumed(tmp_path, "lstm-tagger", 5, **settings)
    assert_identical(whole, resumed)
    heads = [k for k in whole if k.startswith("aux_out.") and k.endswith(".weight")]
    assert sorted(heads) == ["aux_out.deprel.weight", "aux_out.feats.weight", "aux_out.xpos.weight"]
    # the optimizer's state is by parameter name: each head's moments have its own shape
    for head in heads:
        assert saved[f"optimizer/{head}/exp_avg"].shape == whole[head].shape


def test_the_seq2seq_resumes_exactly(tmp_path):
    pairs = tmp_path / "p.tsv"
    pairs.write_text("I am here.\tEstoy aquí.\nThe cat.\tEl gato.\nA dog ran.\tUn perro.\n" * 6)
    settings = dict(dataset="sentence-pairs", data=pairs, batch_size=4, steps=10)
    whole, resumed, _ = straight_and_resumed(tmp_path, "rnn-seq2seq", 5, **settings)
    assert_identical(whole, resumed)


def test_optimizer_state_by_name_survives_another_parameter_order():
    a = torch.nn.ModuleDict({"x": torch.nn.Linear(2, 3), "y": torch.nn.Linear(3, 5)})
    b = torch.nn.ModuleDict({"y": torch.nn.Linear(3, 5), "x": torch.nn.Linear(2, 3)})
    b.load_state_dict(a.state_dict())
    opt_a = torch.optim.Adam(a.parameters())
    sum(p.sum() for p in a.parameters()).backward()
    opt_a.step()
    names_a = [n for n, _ in a.named_parameters()]
    names_b = [n for n, _ in b.named_parameters()]
    opt_b = torch.optim.Adam(b.parameters())
    opt_b.load_state_dict(by_position(by_name(opt_a.state_dict(), names_a), names_b))
    params_b = dict(b.named_parameters())
    for name, p in a.named_parameters():
        assert torch.equal(opt_b.state[params_b[name]]["exp_avg"], opt_a.state[p]["exp_avg"])
    with pytest.raises(ModelFileError, match="names 'y.weight', which the network does not have"):
        by_position(by_name(opt_a.state_dict(), names_a), ["z.weight", *names_b[1:]])


@pytest.mark.slow
@pytest.mark.skipif(not Path("/proc/self/environ").exists(), reason="torchrun workers: Linux")
def test_a_char_lm_on_two_processes_resumes_with_each_ones_carried_state(tmp_path):
    text = tmp_path / "t.txt"
    text.write_text(TEXT * 4, encoding="utf-8")  # 8 rows of 8 characters: 36 windows an epoch
    args = ["run", "elman-rnn", "--dataset", "text", "--data", text, "--epochs", "6"]
    args += ["--batch-size", "8", "--set", "bptt=8", "--set", "hidden_size=16"]
    args += ["--nproc-per-node", "2"]
    whole = tmp_path / "whole.safetensors"
    r = run_zoo(*args, "--out", whole, "-q", cwd=tmp_path)
    assert r.code == 0, r.stderr
    out = tmp_path / "cut.safetensors"
    zoo_exe = Path(sys.executable).parent / "zoo"
    command = [str(zoo_exe), *map(str, args), "--out", str(out)]
    proc = subprocess.Popen(command, cwd=tmp_path, stderr=subprocess.PIPE, text=True)
    for line in proc.stderr:  # training is under way: stop it early in epoch 3
        if line.startswith("epoch 2/"):
            break
    proc.send_signal(signal.SIGINT)
    _, rest = proc.communicate(timeout=120)
    assert proc.returncode == 130, rest
    saved = load_file(default_path(out))
    assert {"carry/0/h", "carry/1/h"} <= saved.keys()  # each process's own streams' state
    r = run_zoo("run", "--resume", default_path(out), "--nproc-per-node", "2", "-q", cwd=tmp_path)
    assert r.code == 0, r.stderr
    assert_identical(load_file(whole), load_file(out))
