"""`zoo predict` and `zoo-runtime` meet the same mistakes with the same answer: for every
built-in runtime kind, the same `Error:` line (the model file's name aside) and the same exit
code, or both answering. zoo runs in-process (click's CliRunner), the runtime through its
`main` in-process; the closed pipe needs real processes (one of zoo's, ~2 s, for all kinds)."""

from __future__ import annotations

import os
import subprocess
import sys
import warnings
from pathlib import Path

import pytest
from zoo_runtime.__main__ import main as runtime_main

from tests.conftest import Result
from tests.runtime.conftest import KINDS

FILES = {
    "nul.txt": b"hello\nab\x00cd\n",
    "bad.txt": b"hello\nab\xffcd\n",
    "huge.txt": b"1e300\n" * 12,
    "words.txt": b"0.5\nabc def\n\n1\n",
    "bom.txt": b"\xef\xbb\xbfhello\n",
    "long.txt": b"hello\n1 2 3 4 5 6\n",
    "longer.txt": b"hello\n" + b"1 " * 100_001 + b"\n",
    "empty.txt": b"",
    "blank.txt": b"\n  \n",
}
# Each mistake is the command line after FILE; MODEL stands for the model file.
MISTAKES = {
    "nul-byte-in-a-file": ["--input", "nul.txt"],
    "bad-utf8-in-a-file": ["--input", "bad.txt"],
    "nul-byte-in-an-argument": ["ab\x00cd"],
    "a-huge-number": ["1e300"],
    "huge-numbers-filling-a-window": ["1e300"] * 12,
    "huge-numbers-in-a-file": ["--input", "huge.txt"],
    "not-a-number": ["abc"],
    "not-a-number-among-numbers": ["0.5", "x1", "2"],
    "not-a-number-in-a-file": ["--input", "words.txt"],
    "a-byte-order-mark": ["--input", "bom.txt"],
    "an-empty-argument": [""],
    "a-blank-argument": ["  "],
    "an-empty-file": ["--input", "empty.txt"],
    "a-blank-file": ["--input", "blank.txt"],
    "a-missing-file": ["--input", "missing.txt"],
    "a-folder-for-a-file": ["--input", "."],
    "output-is-the-model": ["a", "--output", "MODEL"],
    "output-is-the-input": ["--input", "words.txt", "--output", "words.txt"],
    "output-in-a-missing-folder": ["a", "--output", "nowhere/out.txt"],
    "output-is-a-folder": ["a", "--output", "."],
    "over-the-input-limit": ["1 2 3 4 5 6", "--set", "max_input_length=3"],
    "over-the-input-limit-in-a-file": ["--input", "long.txt", "--set", "max_input_length=3"],
    "a-bad-input-limit": ["a", "--set", "max_input_length=0"],
    "a-word-for-the-input-limit": ["a", "--set", "max_input_length=many"],
    # over the limit the export wrote, whatever its unit: 100,001 steps or words, more chars
    "over-the-exported-limit": ["1 " * 100_001],
    "over-the-exported-limit-in-a-file": ["--input", "longer.txt"],
    "too-many-inputs": ["1"] * 100_001,
    "a-bad-request-limit": ["a", "--set", "max_inputs=0"],
}


def run_runtime(monkeypatch, capsys, *args: str) -> Result:
    """`zoo-runtime ARGS...` in-process, numpy's warnings made errors (so one shows)."""
    monkeypatch.setattr(sys, "argv", ["zoo-runtime", *args])
    with warnings.catch_warnings(), pytest.raises(SystemExit) as e:
        warnings.simplefilter("error")
        runtime_main()
    out = capsys.readouterr()
    return Result(e.value.code or 0, out.out, out.err)


def answer(result: Result, model: Path) -> tuple[int, str | None]:
    """(exit code, the one Error line with the model's name as MODEL, or None)."""
    if result.code == 0:
        assert "Error" not in result.stderr and "Traceback" not in result.stderr, result.stderr
        return 0, None
    line = result.error_line()
    return result.code, line.replace(str(model), "MODEL")


@pytest.mark.parametrize("mistake", MISTAKES)
@pytest.mark.parametrize("kind", KINDS)
def test_zoo_and_the_runtime_answer_a_mistake_alike(
    kind, mistake, kinds, zoo, tmp_path, monkeypatch, capsys
):
    model, onnx_file = kinds[kind]
    for name, content in FILES.items():
        (tmp_path / name).write_bytes(content)
    before = {p.name: p.read_bytes() for p in (model, onnx_file, tmp_path / "words.txt")}

    def argv(path: Path) -> list[str]:
        return [str(path) if a == "MODEL" else a for a in MISTAKES[mistake]]

    want = zoo("predict", model, *argv(model))
    got = run_runtime(monkeypatch, capsys, str(onnx_file), *argv(onnx_file))
    assert answer(got, onnx_file) == answer(want, model), (want.stderr, got.stderr)
    # The language model samples with its own generator; and numbers beyond float32 (1e300)
    # become infinite in both, whose forecast torch and onnxruntime spoil differently.
    garbage = any(word in want.stdout.split() for word in ("nan", "inf", "-inf"))
    if want.code == 0 and kind != "char-lm" and not garbage:
        assert got.stdout == want.stdout
    after = {p.name: p.read_bytes() for p in (model, onnx_file, tmp_path / "words.txt")}
    assert after == before  # no input was written over


# ------------------------------------------------------------------------ a closed pipe
def closed_pipe(command: list[str], cwd: Path) -> tuple[int, str]:
    """Run `command` with its standard output's reader gone before it writes a byte."""
    p = subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=cwd, env=dict(os.environ)
    )
    assert p.stdout is not None and p.stderr is not None
    p.stdout.close()  # the reader leaves at once: `zoo-runtime ... | true`
    try:
        _, err = p.communicate(timeout=120)
    finally:
        p.kill()
    return p.returncode, err.decode("utf-8", "replace")


@pytest.fixture(scope="module")
def zoo_closed_pipe(kinds, tmp_path_factory) -> tuple[int, str]:
    """What `zoo predict` does with a closed pipe (once: the handling is not a model's)."""
    model, _ = kinds["tagger"]
    exe = Path(sys.executable).parent / "zoo"
    command = [str(exe)] if exe.exists() else [sys.executable, "-m", "zoo"]
    words = ["The dog ate the apple ."] * 2000
    return closed_pipe([*command, "predict", str(model), *words], tmp_path_factory.mktemp("p"))


INPUTS = {  # an input each kind answers, many times over: more than a pipe holds
    "tagger": "The dog ate the apple .",
    "tagger-columns": "Dogs bark in the park .",
    "forecaster": "0.1 0.2 0.3 0.4 0.5 0.6 0.7 0.8 0.9 1.0",
    "forecaster-csv": "0.1 0.2 0.3 0.4",
    "step-regression": "0.1 0.2 0.3",
    "step-classification": "hello",
    "char-lm": "To be",
    "seq2seq": "hello",
}


@pytest.mark.parametrize("kind", KINDS)
def test_a_closed_pipe_ends_both_quietly_with_141(kind, kinds, zoo_closed_pipe, tmp_path):
    _, onnx_file = kinds[kind]
    count = 50 if kind == "char-lm" else 2000
    command = [sys.executable, "-m", "zoo_runtime", str(onnx_file), *[INPUTS[kind]] * count]
    if kind == "char-lm":
        command += ["--set", "length=200"]
    got = closed_pipe(command, tmp_path)
    assert zoo_closed_pipe == (141, "")
    assert got == zoo_closed_pipe
