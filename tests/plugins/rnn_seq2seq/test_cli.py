"""The seq2seq datasets through `zoo`: run, eval (exact match, token accuracy, BLEU), predict
(arguments, --input files, beam search) and the one-line errors."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from tests.conftest import SHARED_DATA
from zoo.cli import cli

SCAN = SHARED_DATA / "scan"

PRIMITIVES = {"walk": "I_WALK", "run": "I_RUN", "jump": "I_JUMP", "look": "I_LOOK"}
DIRECTIONS = {"left": "I_TURN_LEFT", "right": "I_TURN_RIGHT"}


def scan_lines() -> list[str]:
    """A SCAN-like grammar small enough to learn in seconds: x, x twice, x left, x left twice."""
    lines = []
    for word, action in PRIMITIVES.items():
        for direction in ["", *DIRECTIONS]:
            turn = f"{DIRECTIONS[direction]} " if direction else ""
            for times, count in (("", 1), (" twice", 2), (" thrice", 3)):
                command = f"{word} {direction}".strip() + times
                lines.append(f"IN: {command} OUT: {' '.join([f'{turn}{action}'] * count)}")
    return lines


@pytest.fixture(scope="module")
def scan_model(tmp_path_factory):
    """One model for the tests of this module (trained once: a few seconds)."""
    folder = tmp_path_factory.mktemp("scan")
    train = folder / "train.txt"
    train.write_text("\n".join(scan_lines()) + "\n")
    model = folder / "scan.safetensors"
    r = CliRunner().invoke(
        cli,
        ["run", "rnn-seq2seq", "--dataset", "scan", "--data", str(train), "--epochs", "60",
         "--batch-size", "8", "-q", "--json", "--out", str(model)],
        catch_exceptions=False,
    )  # fmt: skip
    assert r.exit_code == 0, r.stderr
    return model, train, json.loads(r.stdout)


@pytest.mark.slow  # the scan_model fixture trains for a few seconds
def test_scan_run_eval_and_predict(zoo, scan_model, tmp_path):
    model, _, doc = scan_model
    assert doc["dataset"] == "scan" and doc["settings"]["model"]["attention"] == "luong"
    assert doc["metrics"]["train"]["exact_match"] == 1.0

    test = tmp_path / "test.txt"
    test.write_text(
        "IN: jump left thrice OUT: I_TURN_LEFT I_JUMP I_TURN_LEFT I_JUMP I_TURN_LEFT I_JUMP\nIN: walk OUT: I_RUN\n"
    )
    e = zoo("eval", model, "--data", test, "--json")
    assert e.code == 0, e.stderr
    metrics = e.json()["metrics"]
    assert metrics["exact_match"] == 0.5 and "bleu" not in metrics
    assert 0.5 <= metrics["token_accuracy"] < 1.0
    assert e.json()["threads"] == 1

    p = zoo("predict", model, "jump left thrice", "walk")
    assert p.code == 0, p.stderr
    assert p.stdout.splitlines() == [
        "I_TURN_LEFT I_JUMP I_TURN_LEFT I_JUMP I_TURN_LEFT I_JUMP",
        "I_WALK",
    ]
    beam = zoo("predict", model, "jump left thrice", "walk", "--set", "beam_size=4")
    assert beam.stdout == p.stdout


@pytest.mark.slow  # the scan_model fixture trains for a few seconds
def test_predict_input_file_is_one_line_out_per_line_in(zoo, scan_model, tmp_path):
    model, _, _ = scan_model
    commands = ["run twice", "", "look right", "walk thrice", "jump"] * 3
    inputs = tmp_path / "in.txt"
    inputs.write_text("\n".join(commands) + "\n")
    out = tmp_path / "out.txt"
    r = zoo("predict", model, "--input", inputs, "--output", out, "--set", "batch_size=2")
    assert r.code == 0, r.stderr
    lines = out.read_text().split("\n")[:-1]
    assert len(lines) == len(commands) and lines[1] == ""
    one_by_one = [zoo("predict", model, c).stdout.strip() if c else "" for c in commands[:5]]
    assert lines[:5] == one_by_one
    j = zoo("predict", model, "--input", inputs, "--json").json()
    assert [x["output"] for x in j["predictions"]] == [o for o, c in zip(lines, commands) if c]


def test_sentence_pairs_report_corpus_bleu(zoo, tmp_path):
    pairs = tmp_path / "spa.txt"
    rows = [
        ("Go away now.", "Vete ya."),
        ("Hi, my friend.", "Hola, amigo mío."),
        ("Run, Tom, run!", "¡Corre, Tom, corre!"),
        ("Who is he?", "¿Quién es él?"),
    ]
    pairs.write_text(
        "".join(f"{a}\t{b}\tCC-BY 2.0 (France) #{i}\n" for i, (a, b) in enumerate(rows))
    )
    model = tmp_path / "spa.safetensors"
    r = zoo(
        "run", "rnn-seq2seq", "--dataset", "sentence-pairs", "--data", pairs, "--epochs", "40",
        "--batch-size", "4", "--set", "valid_fraction=0", "--set", "test_fraction=0", "-q",
        "--out", model,
    )  # fmt: skip
    assert r.code == 0, r.stderr
    e = zoo("eval", model, "--data", pairs, "--json").json()["metrics"]
    assert e["exact_match"] == 1.0 and e["bleu"] == pytest.approx(100.0)
    assert zoo("predict", model, "Run, Tom, run!", "Who is he?").stdout.splitlines() == [
        "¡Corre, Tom, corre!",
        "¿Quién es él?",
    ]


@pytest.mark.parametrize(
    ("args", "code", "message"),
    [
        (
            ["run", "rnn-seq2seq", "--dataset", "scan"],
            1,
            "dataset 'scan' reads a file: give --data PATH",
        ),
        (
            ["run", "rnn-seq2seq", "--dataset", "scan", "--data", "missing.txt"],
            1,
            "missing.txt: no such file",
        ),
        (
            ["run", "rnn-seq2seq", "--set", "bidirectional=true", "--set", "hidden_size=7"],
            2,
            "even hidden_size",
        ),
        (["run", "rnn-seq2seq", "--set", "attention=dot"], 2, "attention"),
        (["run", "rnn-seq2seq", "--set", "teacher_forcing=1.5"], 2, "teacher_forcing"),
    ],
)
def test_mistakes_are_one_line(zoo, args, code, message):
    r = zoo(*args)
    assert r.code == code, (r.stdout, r.stderr)
    assert message in r.error_line()


@pytest.mark.slow  # the scan_model fixture trains for a few seconds
def test_predict_mistakes_are_one_line(zoo, scan_model, tmp_path):
    model, _, _ = scan_model
    r = zoo("predict", model, "--input", tmp_path / "missing.txt")
    assert r.code != 0 and "missing.txt" in r.error_line()
    r = zoo("predict", model, "jump", "--set", "beam_size=0")
    assert r.code == 2 and "beam_size" in r.error_line()
    r = zoo("predict", model, "   ")
    assert r.code == 2 and "input 1 is empty" in r.error_line()
    bad = tmp_path / "bad.txt"
    bad.write_bytes(b"jump\nwalk \xff\n")
    r = zoo("predict", model, "--input", bad)
    assert r.code != 0 and "bad.txt:2: not UTF-8 text" in r.error_line()


@pytest.mark.skipif(not SCAN.exists(), reason="../shared/data/scan is absent")
def test_real_scan_slice_trains_and_evaluates(zoo, tmp_path):
    with open(SCAN / "tasks_train_simple.txt", encoding="utf-8") as f:
        head = [next(f) for _ in range(300)]
    train, test = tmp_path / "train.txt", tmp_path / "test.txt"
    train.write_text("".join(head[:200]))
    test.write_text("".join(head[200:]))
    model = tmp_path / "m.safetensors"
    r = zoo(
        "run",
        "rnn-seq2seq",
        "--dataset",
        "scan",
        "--data",
        train,
        "--steps",
        "20",
        "-q",
        "--out",
        model,
    )
    assert r.code == 0, r.stderr
    e = zoo("eval", model, "--data", test, "--json")
    assert e.code == 0 and 0.0 <= e.json()["metrics"]["token_accuracy"] <= 1.0
