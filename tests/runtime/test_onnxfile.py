"""A damaged or hostile .onnx file is one clear ModelError, found with bounded work; the
runtime's command line prints it as one `Error:` line."""

from __future__ import annotations

import json
import time

import pytest
import zoo_runtime
from zoo_runtime import onnxfile
from zoo_runtime.__main__ import main as runtime_main


@pytest.fixture
def tagger_file(exported):
    _, onnx_path, _ = exported("lstm-tagger", "toy-tags", hidden_size=8)
    return onnx_path


def rewrite(source, target, **changes):
    """A copy of the exported file with metadata values replaced (None: removed)."""
    import onnx

    proto = onnx.load(source)
    values = {p.key: p.value for p in proto.metadata_props}
    for key, value in changes.items():
        if value is None:
            values.pop(key, None)
        else:
            values[key] = value if isinstance(value, str) else json.dumps(value)
    del proto.metadata_props[:]
    for key, value in values.items():
        entry = proto.metadata_props.add()
        entry.key, entry.value = key, value
    target.write_bytes(proto.SerializeToString())
    return target


def refused(path, *fragments):
    start = time.perf_counter()
    with pytest.raises(zoo_runtime.ModelError) as e:
        zoo_runtime.load(path)
    message = str(e.value)
    assert "\n" not in message and message.startswith(str(path)), message
    for fragment in fragments:
        assert fragment in message, message
    assert time.perf_counter() - start < 5
    return message


def test_truncated_and_foreign_files(tagger_file, tmp_path):
    data = tagger_file.read_bytes()
    for cut in (1, 100, len(data) // 2, len(data) - 3):
        refused((tmp_path / f"cut{cut}.onnx"), "no such")  # before writing: missing
        (tmp_path / f"cut{cut}.onnx").write_bytes(data[:cut])
        refused(tmp_path / f"cut{cut}.onnx")
    (tmp_path / "empty.onnx").write_bytes(b"")
    refused(tmp_path / "empty.onnx", "empty")
    (tmp_path / "text.onnx").write_bytes(b"not a model at all\n" * 50)
    refused(tmp_path / "text.onnx")
    refused(tmp_path, "folder")


def test_onnx_without_zoo_metadata(tagger_file, tmp_path):
    refused(
        rewrite(tagger_file, tmp_path / "a.onnx", format=None), "not one written by `zoo export`"
    )
    refused(rewrite(tagger_file, tmp_path / "b.onnx", format="other"), "format")
    refused(rewrite(tagger_file, tmp_path / "c.onnx", format_version="99"), "upgrade")
    refused(rewrite(tagger_file, tmp_path / "d.onnx", data_state=None), "lacks 'data_state'")


def columns_changed(source, target, settings=None, state=None):
    """A copy of the tagger of several columns with its runtime.settings and data_state
    changed by the functions given (each edits the parsed JSON in place)."""
    import onnx

    values = {p.key: p.value for p in onnx.load(source).metadata_props}
    runtime, data_state = json.loads(values["runtime"]), json.loads(values["data_state"])
    for change, value in ((settings, runtime["settings"]), (state, data_state)):
        if change is not None:
            change(value)
    return rewrite(source, target, runtime=runtime, data_state=data_state)


def _set(key, value):
    return lambda values: values.__setitem__(key, value)


def _pop(key):
    return lambda values: values.pop(key)


ENTRIES = [
    {"column": "upos", "output": "scores"},
    {"column": "xpos", "output": "xpos_scores"},
    {"column": "feats", "output": "feats_scores"},
]


@pytest.mark.parametrize(
    "settings, state, fragment",
    [
        (_set("columns", "upos,xpos"), None, "runtime.settings.columns must be [{"),
        (_set("columns", []), None, "runtime.settings.columns must be [{"),
        (_set("columns", [ENTRIES[0], ENTRIES[0]]), None, "of distinct columns"),
        (_set("columns", [ENTRIES[0], {"column": "xpos"}]), None, "settings.columns must be"),
        (_set("columns", [ENTRIES[0], [1]]), None, "settings.columns must be"),
        (_pop("column"), None, "runtime.settings.column must be a string"),
        (_set("column", "deprel"), None, "columns lacks the tag column 'deprel'"),
        (
            _set("columns", [ENTRIES[0], {"column": "xpos", "output": "deprel_scores"}]),
            None,
            "output 'deprel_scores' for column 'xpos', not among the graph's outputs",
        ),
        (  # XPOS read from FEATS' scores: the graph scores another number of values
            _set("columns", [ENTRIES[0], {"column": "xpos", "output": "feats_scores"}]),
            None,
            "tags of column 'xpos' (output 'feats_scores'), the metadata names",
        ),
        (None, _pop("aux_tags"), "data_state.aux_tags must be a JSON object"),
        (None, lambda s: s["aux_tags"].pop("feats"), "data_state.aux_tags.feats must be a list"),
        (
            None,
            lambda s: s["aux_tags"]["xpos"].pop(),
            "tags of column 'xpos' (output 'xpos_scores')",
        ),
        (None, lambda s: s["aux_tags"].__setitem__("xpos", ["A", "A"]), "distinct strings"),
        (
            None,
            _set("tags", ["NOUN"]),
            "tags of column 'upos' (output 'scores'), the metadata names 1",
        ),
    ],
    ids=[
        "columns-a-string",
        "columns-empty",
        "a-column-twice",
        "an-entry-without-output",
        "an-entry-not-an-object",
        "no-tag-column",
        "tag-column-not-among-columns",
        "an-output-the-graph-lacks",
        "an-output-of-another-size",
        "no-aux-tags",
        "no-feats-tags",
        "xpos-tags-one-short",
        "xpos-tags-not-distinct",
        "upos-tags-too-few",
    ],
)
def test_a_tagger_with_bad_columns_is_refused(kinds, tmp_path, settings, state, fragment):
    _, onnx_file = kinds["tagger-columns"]
    zoo_runtime.load(onnx_file)  # the file as exported loads
    refused(columns_changed(onnx_file, tmp_path / "bad.onnx", settings, state), fragment)


def test_a_tagger_without_columns_reads_its_first_output(kinds, tmp_path):
    """A file without the `columns` setting (a plain tagger's, an older export's) is tagged
    by its first output with data_state.tags: the tag column alone, as before."""
    _, onnx_file = kinds["tagger-columns"]
    plain = columns_changed(onnx_file, tmp_path / "plain.onnx", _pop("columns"))
    got = zoo_runtime.load(plain).predict(["Dogs bark in the park ."])
    want = zoo_runtime.load(onnx_file).predict(["Dogs bark in the park ."])
    assert "columns" not in got[0] and got[0]["output"] == want[0]["output"]
    assert got[0]["text"] == " ".join(f"{w}/{t}" for w, t in want[0]["output"])


@pytest.mark.parametrize(
    "change, fragment",
    [
        ({"data_state": "{not json"}, "not valid JSON"),
        ({"data_state": "[1, 2]"}, "must be a JSON object"),
        ({"data_state": {"words": "the dog", "tags": ["A"], "lowercase": True}}, "words"),
        ({"data_state": {"words": ["<pad>", "<unk>"], "tags": [1, 2], "lowercase": True}}, "tags"),
        ({"data_state": {"words": ["a", "a"], "tags": ["A"], "lowercase": True}}, "distinct"),
        ({"data_state": {"words": ["a"], "tags": ["A"], "lowercase": "yes"}}, "lowercase"),
        ({"data_state": {"words": ["<unk>"], "tags": ["A"], "chars": ["a"]}}, "lacks ['<w>'"),
        ({"data_state": {"words": ["<unk>"], "tags": ["A"], "chars": ["<w>", "</w>"]}}, "8 tags"),
        ({"runtime": {"kind": 3}}, "runtime.kind"),
        ({"runtime": {"kind": "tagger", "graphs": []}}, "runtime.graphs"),
        ({"data_state": '{"a": ' * 5000 + "1" + "}" * 5000}, "deeper"),
        ({"data_state": '{"a": ' + "[" * 100 + "]" * 100 + "}"}, "deeper"),
    ],
)
def test_metadata_of_the_wrong_type(tagger_file, tmp_path, change, fragment):
    refused(rewrite(tagger_file, tmp_path / "bad.onnx", **change), fragment)


def test_graph_inputs_must_match_the_metadata(tagger_file, tmp_path):
    import onnx

    runtime = json.loads({p.key: p.value for p in onnx.load(tagger_file).metadata_props}["runtime"])
    runtime["graphs"]["model"]["inputs"] = ["words", "lengths"]  # the graph also reads chars
    refused(rewrite(tagger_file, tmp_path / "bad.onnx", runtime=runtime), "do not match")
    other = tmp_path / "fc.onnx"
    kind = {**runtime, "kind": "forecaster"}  # a tagger's graph under a forecaster's recipe
    refused(
        rewrite(
            tagger_file,
            other,
            runtime=kind,
            data_state={"input_length": 3, "input_size": 1, "horizon": 1},
        )
    )


def test_huge_metadata_is_refused_before_parsing(tagger_file, tmp_path, monkeypatch):
    monkeypatch.setattr(onnxfile, "MAX_VALUE_BYTES", 3000)  # the data state has 1,575
    big = rewrite(tagger_file, tmp_path / "big.onnx", metrics={"x": "y" * 5000})
    refused(big, "metadata 'metrics' is 5,009 bytes, over the 3,000-byte limit for one value")
    monkeypatch.setattr(onnxfile, "MAX_ENTRIES", 5)
    refused(tagger_file, "metadata entries")


def read_without_parsing(path):
    """onnxfile.read(path) -> its ModelError, with json parsing forbidden and the memory
    Python allocated meanwhile measured: (message, peak bytes)."""
    import tracemalloc

    tracemalloc.start()
    try:
        with pytest.raises(zoo_runtime.ModelError) as e:
            onnxfile.read(path)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    return str(e.value), peak


def test_metadata_over_its_real_limits_is_refused_unparsed(tagger_file, tmp_path, monkeypatch):
    """16 MiB a value, 32 MiB in all: far above what a real export writes (the data state of
    a tagger trained on UD English EWT is 0.2 MB), low enough that parsing is bounded."""
    assert onnxfile.MAX_VALUE_BYTES == 16 * 2**20 and onnxfile.MAX_METADATA_BYTES == 32 * 2**20
    one = onnxfile.MAX_VALUE_BYTES
    big = rewrite(tagger_file, tmp_path / "big.onnx", metrics="[" + "0," * (one // 2) + "0]")
    many = {k: "[" + "0," * (one // 2 - 8) + "0]" for k in ("metrics", "config", "train_config")}
    all_big = rewrite(tagger_file, tmp_path / "all.onnx", **many)
    monkeypatch.setattr(onnxfile.json, "loads", lambda *a, **k: pytest.fail("json parsed"))
    for path, fragment in (
        (big, f"metadata 'metrics' is 16,777,219 bytes, over the {one:,}-byte limit for one value"),
        (all_big, "bytes, over the 33,554,432-byte limit for all metadata together"),
    ):
        message, peak = read_without_parsing(path)
        assert message.startswith(f"{path}: ") and fragment in message, message
        assert "\n" not in message
        assert peak < path.stat().st_size + 2**20  # the file's bytes, no copy of a value
    assert refused(all_big).split(": ")[1].split(" brings the metadata to ")[0] in {
        f"metadata {key!r}" for key in many
    }


def test_real_exports_are_far_below_the_metadata_limits(tagger_file):
    import onnx

    values = [len(p.value.encode()) for p in onnx.load(tagger_file).metadata_props]
    assert max(values) < onnxfile.MAX_VALUE_BYTES // 100
    assert sum(values) < onnxfile.MAX_METADATA_BYTES // 100


def test_the_command_line_says_one_line(tagger_file, tmp_path, capsys, monkeypatch):
    (tmp_path / "cut.onnx").write_bytes(tagger_file.read_bytes()[:500])
    for argv, code in (
        ([str(tmp_path / "cut.onnx"), "a b"], 1),
        ([str(tagger_file)], 2),
        ([str(tagger_file), "a", "--set", "beam_size=3"], 2),
        ([str(tagger_file), "a", "--set", "batch_size=0"], 2),
    ):
        monkeypatch.setattr("sys.argv", ["zoo-runtime", *argv])
        with pytest.raises(SystemExit) as e:
            runtime_main()
        err = capsys.readouterr().err
        assert e.value.code == code and err.startswith("Error: ") and err.count("\n") == 1, err
    monkeypatch.setattr("sys.argv", ["zoo-runtime", str(tagger_file), "The dog", "--json"])
    with pytest.raises(SystemExit) as e:
        runtime_main()
    doc = json.loads(capsys.readouterr().out)
    assert e.value.code == 0 and doc["predictions"][0]["input"] == "The dog"
