"""zoo and the runtime apply one output rule with one wording: the twin helpers agree."""

from __future__ import annotations

import os

import pytest
from zoo_runtime import files as runtime_files

from zoo.core import fileio


def _cases(tmp_path):
    model = tmp_path / "m.safetensors"
    model.write_bytes(b"x")
    link = tmp_path / "link"
    os.symlink(model, link)
    sub = tmp_path / "sub"
    sub.mkdir()
    return [
        (model, {"FILE": model}),  # the same path
        (link, {"FILE": model}),  # a symbolic link to it
        (sub / ".." / "m.safetensors", {"FILE": model}),  # another spelling
        (tmp_path / "new.txt", {"FILE": model, "--input": tmp_path / "new.txt"}),  # not yet there
        (tmp_path / "other", {"FILE": model, "--input": None}),  # no clash
    ]


def test_zoo_and_the_runtime_refuse_the_same_outputs_with_the_same_line(tmp_path):
    answers = []
    for output, inputs in _cases(tmp_path):
        zoo_line = fileio.same_file_message(output, "--out", inputs)
        runtime_line = runtime_files.same_file_message(output, "--out", inputs)
        assert zoo_line == runtime_line
        answers.append(zoo_line is not None)
    assert answers == [True, True, True, True, False]


def test_the_refusal_is_a_usage_error_naming_both_paths(tmp_path):
    model = tmp_path / "m.onnx"
    model.write_bytes(b"x")
    with pytest.raises(fileio.UsageError, match=r"--output .*m.onnx.*same file as FILE"):
        fileio.refuse_input_as_output(model, "--output", {"FILE": model})
    with pytest.raises(runtime_files.UsageError) as info:
        runtime_files.refuse_input_as_output(model, "--output", {"FILE": model})
    assert info.value.exit_code == 2


def test_zoo_and_the_runtime_count_and_word_input_limits_alike():
    from zoo_runtime import limits as runtime_limits

    from zoo.core import limits

    inputs = ["", "a b  c", "1, 2,3 4", "é" * 70, [1.0, 2.0], ("x",)]
    for unit in limits.UNITS:
        for value in inputs:
            assert limits.input_length(value, unit) == runtime_limits.input_length(value, unit)
    assert limits.input_length("1, 2,3 4", "steps") == 4
    line = limits.over_limit_message("in.txt:3", 1_000_000, "words", 2_000)
    assert line == runtime_limits.over_limit_message("in.txt:3", 1_000_000, "words", 2_000)
    assert line == (
        "in.txt:3: 1,000,000 words, over the limit of 2,000 words for one input; "
        "raise it with --set max_input_length=N"
    )
    assert limits.clip("x" * 1000) == runtime_limits.clip("x" * 1000)
    assert len(limits.clip("x" * 1_000_000)) < 100
    for text in ("", "short", "é" * 61, "x" * 1_000_000):
        assert limits.quoted(text) == runtime_limits.quoted(text)
    assert len(limits.quoted("x" * 1_000_000)) < 100


def test_zoo_and_the_runtime_refuse_numbers_beyond_float32_alike():
    from zoo_runtime.model import parse_numbers as runtime_parse

    from zoo.toolkit.data import parse_numbers

    for text in ("1e300", "0.5,-4e38", "3.5e38"):
        with pytest.raises(fileio.UsageError) as zoo_error:
            parse_numbers(text, where="input 1")
        with pytest.raises(runtime_files.UsageError) as runtime_error:
            runtime_parse(text, where="input 1")
        assert str(zoo_error.value) == str(runtime_error.value)
        assert "beyond what a 32-bit float holds" in str(zoo_error.value)
    assert parse_numbers("3.4e38 -1e-300") == runtime_parse("3.4e38 -1e-300")


def test_zoo_writes_to_dev_stdout_in_place(tmp_path):
    """Replacing /dev/stdout's name (as root: the system's link) instead of writing to it was
    the atomic write's fault; a descriptor is written in place, after what is there."""
    import subprocess
    import sys

    out = tmp_path / "out.txt"
    out.write_text("head\n")
    script = (
        "from zoo.core.fileio import atomic_write_text; atomic_write_text('/dev/stdout', 'body\\n')"
    )
    with open(out, "a") as f:
        subprocess.run([sys.executable, "-c", script], stdout=f, check=True, timeout=60)
    assert out.read_text() == "head\nbody\n"
    assert os.path.islink("/dev/stdout") or not os.path.exists("/dev/stdout")
