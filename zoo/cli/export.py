"""`zoo export` and `zoo card`: a trained model for use without zoo (docs/export.md).

Imported by zoo/cli/ when the command line starts, so nothing heavy here: torch, onnx and
onnxruntime are imported inside `zoo export` when it runs; `zoo card` reads the model file's
metadata only (zoo.modelfile) and never imports torch.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import click

from zoo.cli.base import json_option, load_model, option, show, threads_option
from zoo.core.fileio import refuse_input_as_output


def _render_export(doc: dict[str, Any]) -> Iterable[str]:
    graphs = ", ".join(
        f"{role} ({', '.join(g['inputs'])} -> {', '.join(g['outputs'])})"
        for role, g in doc["graphs"].items()
    )
    yield f"wrote {doc['out']} ({doc['bytes']:,} bytes, ONNX opset {doc['opset']})"
    yield f"  runtime kind: {doc['kind']}"
    yield f"  graphs:       {graphs}"
    yield f"  parity:       largest difference from torch {doc['max_difference']:.2g}"
    if doc.get("quantization"):
        yield (
            f"  {doc['quantization']}:         {doc['float_bytes']:,} bytes as float32; largest "
            f"difference from torch {doc['int8_difference']:.2g} of an output's scale"
        )


@click.command("export")
@click.argument("model_file", metavar="FILE", type=click.Path())
@option(
    "--format",
    "format_",
    type=click.Choice(["onnx"]),
    default="onnx",
    show_default=True,
    help="What to write.",
)
@option(
    "--out",
    type=click.Path(dir_okay=False),
    help="File to write (default: FILE.onnx; FILE.int8.onnx with --quantize int8).",
)
@option(
    "--quantize",
    type=click.Choice(["int8"]),
    help="Quantize the graph with onnxruntime's dynamic quantization: int8 weights, a smaller "
    "and often faster file (docs/export.md).",
)
@option(
    "--example",
    "examples",
    multiple=True,
    metavar="INPUT",
    help="An input predict takes, to trace an architecture that has no export_spec() (repeatable).",
)
@threads_option
@json_option
def export_command(
    model_file: str,
    format_: str,
    out: str | None,
    quantize: str | None,
    examples: tuple[str, ...],
    threads: int | None,
    as_json: bool,
) -> None:
    """Write a saved model FILE as one ONNX file that the torch-free runtime (zoo_runtime)
    runs alone: the graph, plus vocabularies, normalisation and configs in its metadata."""
    from zoo.features.export import default_out, needs_onnx

    target = out if out is not None else str(default_out(model_file, quantize))
    refuse_input_as_output(target, "--out", {"FILE": model_file})
    needs_onnx()
    from zoo.features.export import export_onnx

    model, _ = load_model(model_file, threads)
    doc = export_onnx(model, target, examples=list(examples) or None, quantize=quantize)
    show({"model": model_file, **doc}, as_json, _render_export)


@click.command("card")
@click.argument("model_file", metavar="FILE", type=click.Path())
@option(
    "--out",
    type=click.Path(dir_okay=False),
    help="Write the card to this file (e.g. README.md) instead of stdout.",
)
def card_command(model_file: str, out: str | None) -> None:
    """A Hugging Face style model card (Markdown with YAML front matter) for a model FILE:
    what it does, its data and split, settings, training, metrics beside its baselines,
    limits, and how to load it with safetensors, zoo and the torch-free runtime."""
    from zoo.core.fileio import atomic_write_text, check_writable
    from zoo.features.card import card

    if out is not None:
        check_writable(out, inputs={"FILE": model_file})
    text = card(model_file)
    if out is None:
        click.echo(text, nl=False)
        return
    atomic_write_text(out, text)
    click.echo(f"wrote {out}", err=True)
