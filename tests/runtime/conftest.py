"""Models made for the runtime's tests: small, untrained but with weights spread wide (so their
answers differ from input to input), saved and exported to ONNX."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

pytest.importorskip("onnx")
pytest.importorskip("onnxruntime")

RUNTIME = Path(__file__).resolve().parents[2] / "runtime"
try:
    import zoo_runtime  # noqa: F401
except ImportError:  # not pip-installed here: the folder itself
    sys.path.insert(0, str(RUNTIME))


def scrambled(name: str, dataset: str, **settings):
    """An untrained model whose weights are drawn wide: varied tags, forecasts, tokens."""
    import torch

    import zoo

    torch.manual_seed(0)
    model = zoo.create(name, dataset, **settings)
    with torch.no_grad():
        for p in model.module.parameters():
            p.normal_(0.0, 0.5)
    return model


@pytest.fixture
def exported(tmp_path, one_thread):
    """exported(name, dataset, **settings) -> (model file, onnx file, export document)."""
    from zoo.features.export import export_onnx

    def make(name: str, dataset: str, **settings):
        model = scrambled(name, dataset, **settings)
        path = tmp_path / f"{name}-{len(list(tmp_path.iterdir()))}.safetensors"
        model.save(path)
        import zoo

        onnx_path = path.with_suffix(".onnx")
        doc = export_onnx(zoo.load(path), onnx_path)
        return path, onnx_path, doc

    return make


# A tiny treebank whose words have varied UPOS, XPOS, FEATS and DEPREL values: a tagger
# created on it with the conllu recipe (aux_columns="xpos,feats,deprel") predicts three columns.
TREEBANK = (
    "# text = Dogs bark.\n"
    "1\tDogs\tdog\tNOUN\tNNS\tNumber=Plur\t2\tnsubj\t_\t_\n"
    "2\tbark\tbark\tVERB\tVBP\tMood=Ind|Tense=Pres|VerbForm=Fin\t0\troot\t_\t_\n"
    "3\t.\t.\tPUNCT\t.\t_\t2\tpunct\t_\t_\n"
    "\n"
    "# text = I can go to the park\n"
    "1\tI\tI\tPRON\tPRP\tCase=Nom|Number=Sing|Person=1|PronType=Prs\t3\tnsubj\t_\t_\n"
    "2\tcan\tcan\tAUX\tMD\tVerbForm=Fin\t3\taux\t_\t_\n"
    "3\tgo\tgo\tVERB\tVB\tVerbForm=Inf\t0\troot\t_\t_\n"
    "4\tto\tto\tADP\tIN\t_\t6\tcase\t_\t_\n"
    "5\tthe\tthe\tDET\tDT\tDefinite=Def|PronType=Art\t6\tdet\t_\t_\n"
    "6\tpark\tpark\tNOUN\tNN\tNumber=Sing\t3\tobl\t_\t_\n"
    "\n"
    "1\tShe\tshe\tPRON\tPRP\tCase=Nom|Gender=Fem|Number=Sing|Person=3\t2\tnsubj\t_\t_\n"
    "2\tread\tread\tVERB\tVBD\tMood=Ind|Tense=Past|VerbForm=Fin\t0\troot\t_\t_\n"
    "3\tquickly\tquickly\tADV\tRB\t_\t2\tadvmod\t_\t_\n"
    "\n"
)
# The sizes of a small tagger (the conllu recipe's are for real treebanks).
SMALL_TAGGER = {"hidden_size": 8, "embedding_dim": 8, "char_dim": 4, "char_hidden": 6}

# Every built-in runtime kind (and the forecaster trained on a CSV, which reads CSV files, and
# the tagger of a treebank, which predicts UPOS, XPOS and FEATS), as (architecture, dataset,
# settings): small, so that exporting all of them takes seconds.
KINDS = {
    "tagger": ("lstm-tagger", "toy-tags", {"hidden_size": 8}),
    "tagger-columns": ("lstm-tagger", "conllu", {**SMALL_TAGGER, "num_layers": 1}),
    "forecaster": ("gru-regressor", "sine-windows", {"hidden_size": 8}),
    "forecaster-csv": ("gru-regressor", "csv", {"hidden_size": 8}),
    "step-regression": ("elman-rnn", "sine-cosine", {"hidden_size": 8}),
    "step-classification": ("elman-rnn", "char-pairs", {"hidden_size": 8}),
    "char-lm": ("elman-rnn", "text", {"hidden_size": 8}),
    "seq2seq": ("rnn-seq2seq", "word-pairs", {"hidden_size": 8, "embedding_dim": 8}),
}


def save_kinds(folder: Path, export: bool = True) -> dict[str, tuple[Path, Path | None]]:
    """Every kind in KINDS trained a little (scrambled weights) on one thread and saved in
    `folder`, and exported beside it when `export`: kind -> (model, onnx file or None)."""
    import torch

    import zoo
    from tests.conftest import CSV_SMALL, SERIES, write
    from zoo.features.export import export_onnx

    series = write(folder, "series.csv", SERIES)
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    out: dict[str, tuple[Path, Path | None]] = {}
    try:
        for kind, (name, dataset, settings) in KINDS.items():
            if dataset == "csv":
                settings = {**settings, **CSV_SMALL, "data": str(series)}
            if dataset == "conllu":
                settings = {**settings, "data": str(write(folder, "train.conllu", TREEBANK))}
            path = folder / f"{kind}.safetensors"
            scrambled(name, dataset, **settings).save(path)
            onnx = path.with_suffix(".onnx") if export else None
            if onnx is not None:
                export_onnx(zoo.load(path), onnx)
            out[kind] = (path, onnx)
    finally:
        torch.set_num_threads(before)
    return out


@pytest.fixture(scope="session")
def kinds(tmp_path_factory) -> dict[str, tuple[Path, Path]]:
    """Every kind in KINDS saved and exported once per session: kind -> (model, onnx file)."""
    return save_kinds(tmp_path_factory.mktemp("kinds"))  # type: ignore[return-value]
