"""Gate activations over time, drawn as a heat map PNG: `zoo gates FILE INPUT --out gates.png`.

The model runs its own `predict` on the input while `zoo.cells.record_gates` collects, at
every step, each gate of each zoo.cells layer (i, f, g, o and the cell state c of an LSTM;
r, z, n of a GRU; h of an Elman cell). A model trained with torch's fused layers is first
rebuilt with `impl=cells` (same tensors), so any architecture with an `impl` setting works.

The picture has one block per layer and direction, one band of rows per gate (one row per
unit) and one column per time step, in the order the model read them (for a language model:
the prompt, then each generated character). Colours: blue -1, white 0, red +1; sigmoid gates
(0..1) are white to red, tanh values blue to red, the LSTM cell state is shown as tanh(c).
With matplotlib (the `plot` extra) the figure is zoo.plots.gates_figure: the symbol read at
each step along the time axis, gates and units labelled, a colour bar, the prompt told apart
from generated text, as PNG, SVG or PDF. Without it, the PNG is written by the few lines below
(zlib and struct): the same heat map, labelled only with gate names and layer numbers.
"""

from __future__ import annotations

import dataclasses
import struct
import zlib
from collections.abc import Sequence
from typing import Any

import torch

from zoo.core.errors import UsageError, ZooError
from zoo.toolkit.cells import Recurrent, record_gates
from zoo.training.model import Model, reconfigure

Trace = list[dict[str, Any]]  # {"name": "rnn L0 >", "gates": {"i": [time, units] tensor}}


def with_cells(model: Model) -> Model:
    """The model itself if it runs zoo.cells layers, else a copy rebuilt with impl=cells."""
    if any(isinstance(m, Recurrent) for m in model.module.modules()):
        return model
    fields = {f.name for f in dataclasses.fields(model.config)}
    if "impl" not in fields:
        raise UsageError(
            f"{model.name} has no impl setting: its recurrent layers are not zoo.cells layers, "
            "so their gates cannot be recorded"
        )
    return reconfigure(model, {"impl": "cells"})


def trace(model: Model, text: str, **options: Any) -> tuple[Trace, list[dict[str, Any]]]:
    """Run `predict` on one input, recording gates; returns (trace, predictions). Steps of
    successive forward calls (a decoder or a sampler feeding back its output) are joined."""
    model = with_cells(model)
    with record_gates(model.module) as entries:
        predictions = model.predict([text], **options)
    joined: dict[tuple[str, int, int], dict[str, list[torch.Tensor]]] = {}
    for e in entries:
        key = (e["module"], e["layer"], e["direction"])
        for gate, values in e["gates"].items():
            joined.setdefault(key, {}).setdefault(gate, []).append(values[:, 0])  # batch row 0
    if not joined:
        raise UsageError(f"{model.name}: no zoo.cells layer ran on this input")
    out = []
    for (module, layer, direction), gates in joined.items():
        name = f"{module or 'layer'} L{layer} {'<' if direction else '>'}"
        out.append({"name": name, "gates": {g: torch.cat(v) for g, v in gates.items()}})
    return out, predictions


# ------------------------------------------------------------------------------ drawing
# A 3x5 pixel font for the labels: gate names, layer numbers and arrows.
FONT = {
    "i": "010000010010010",
    "f": "011010111010010",
    "g": "111101111001111",
    "o": "000111101101111",
    "c": "000111100100111",
    "r": "000110101100100",
    "z": "000111001010111",
    "n": "000110101101101",
    "h": "100100111101101",
    "L": "100100100100111",
    ">": "100010001010100",
    "<": "001010100010001",
    **{
        str(d): g
        for d, g in enumerate(
            [
                "111101101101111",
                "010110010010111",
                "111001111100111",
                "111001111001111",
                "101101111001001",
                "111100111001111",
                "111100111101111",
                "111001001001001",
                "111101111101111",
                "111101111001111",
            ]
        )
    },
}


def colour(v: float) -> tuple[int, int, int]:
    """Blue (-1) - white (0) - red (+1)."""
    v = max(-1.0, min(1.0, v))
    if v >= 0:
        return 255, round(255 * (1 - v)), round(255 * (1 - v))
    return round(255 * (1 + v)), round(255 * (1 + v)), 255


def write_png(path: str, pixels: Sequence[Sequence[tuple[int, int, int]]]) -> bytes:
    """An 8-bit RGB PNG of rows of (r, g, b) pixels; returns the bytes written."""
    height, width = len(pixels), len(pixels[0])
    raw = b"".join(b"\x00" + bytes(c for px in row for c in px) for row in pixels)

    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    png = (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0))
        + chunk(b"IDAT", zlib.compress(raw, 9))
        + chunk(b"IEND", b"")
    )
    from zoo.core.fileio import atomic_write

    atomic_write(path, png)
    return png


def heatmap(entries: Trace, max_width: int = 1200, max_height: int = 1600) -> list[list[tuple]]:
    """The picture as rows of pixels (see the module docstring for the layout)."""
    steps = max(v.shape[0] for e in entries for v in e["gates"].values())
    units = sum(v.shape[1] for e in entries for v in e["gates"].values())
    bands = sum(len(e["gates"]) for e in entries)
    scale = 2  # font pixels per glyph pixel
    margin, gap, header = 4 * scale * 3 + 4, 3, 7 * scale
    cw = max(1, min(16, (max_width - margin) // steps))
    ch = max(1, min(16, (max_height - len(entries) * header - bands * gap) // max(1, units)))
    width = margin + steps * cw + 2
    grey, white = (200, 200, 200), (255, 255, 255)
    rows: list[list[tuple]] = []

    def label(text: str, height: int) -> list[list[tuple]]:
        """`height` rows of `width` white pixels with `text` drawn at the left, centred."""
        block = [[white] * width for _ in range(max(height, 5 * scale))]
        top = (len(block) - 5 * scale) // 2
        for k, char in enumerate(text):
            for p, bit in enumerate(FONT.get(char, "")):
                if bit == "1":
                    for dy in range(scale):
                        for dx in range(scale):
                            x = 2 + scale * (4 * k + p % 3) + dx
                            if x < width:
                                block[top + scale * (p // 3) + dy][x] = (0, 0, 0)
        return block

    for e in entries:
        name = e["name"].split()
        rows.extend(label(name[-2] + name[-1], header))  # e.g. "L0>"
        for gate, values in e["gates"].items():
            shown = torch.tanh(values) if gate == "c" else values
            band = label(gate, shown.shape[1] * ch)
            for t in range(shown.shape[0]):
                for u in range(shown.shape[1]):
                    c = colour(float(shown[t, u]))
                    for y in range(u * ch, (u + 1) * ch):
                        band[y][margin + t * cw : margin + (t + 1) * cw] = [c] * cw
            rows.extend(band)
            rows.extend([[grey] * width for _ in range(gap)])
    return rows


def draw(model: Model, text: str, out: str, **options: Any) -> dict[str, Any]:
    """Trace `text` through `model` and write the heat map to `out` (with matplotlib when it
    is installed, else the built-in PNG writer); returns what was drawn."""
    from zoo.features import plots

    fancy = plots.available()
    if not fancy and plots.output_format(out) != "png":
        raise ZooError(f"zoo gates needs matplotlib for {out}: {plots.INSTALL} (or write a .png)")
    entries, predictions = trace(model, text, **options)
    prediction = predictions[0] if predictions else {}
    if fancy:
        blocks = [block_data(e, text, prediction) for e in entries]
        title = f"{model.name}: gate activations for {text!r}"
        saved = plots.save(plots.gates_figure(blocks, title=title), out)
        width, height = saved["width"], saved["height"]
    else:
        pixels = heatmap(entries)
        write_png(out, pixels)
        width, height = len(pixels[0]), len(pixels)
    return {
        "path": out,
        "width": width,
        "height": height,
        "drawn_with": "matplotlib" if fancy else "built-in PNG writer",
        "steps": max(v.shape[0] for e in entries for v in e["gates"].values()),
        "blocks": [
            {"name": e["name"], "gates": {g: int(v.shape[1]) for g, v in e["gates"].items()}}
            for e in entries
        ],
        "prediction": prediction.get("text"),
    }


def block_data(entry: dict[str, Any], text: str, prediction: dict[str, Any]) -> dict[str, Any]:
    """One traced layer as zoo.plots.gates_figure takes it: plain lists, the LSTM cell state
    as tanh(c) (as the built-in picture shows it), and the symbol of each step."""
    gates = {
        g: (torch.tanh(v) if g == "c" else v).clamp(-1, 1).tolist()
        for g, v in entry["gates"].items()
    }
    steps = max(len(v) for v in gates.values())
    symbols, prompt = step_symbols(steps, text, prediction)
    return {"name": entry["name"], "gates": gates, "symbols": symbols, "prompt": prompt}


def step_symbols(steps: int, text: str, prediction: dict[str, Any]) -> tuple[list[str], int | None]:
    """(the symbol read at each of `steps` steps, the number of prompt steps or None).

    A language model reads its prompt and then its own output, so a trace longer than the
    prompt is prompt + generated text; otherwise the steps are the input's characters, its
    words, or the output's symbols (a decoder), whichever count matches; else step numbers."""
    given, output = prediction.get("input"), prediction.get("output")
    generating = isinstance(given, str) and isinstance(output, str)
    if generating and len(given) < steps <= len(given) + len(output):
        return list((given + output)[:steps]), len(given)
    candidates: list[list[Any]] = [list(text), text.split()]
    if isinstance(output, str):
        candidates += [list(output), output.split()]
    elif isinstance(output, list) and all(isinstance(o, (str, int, float)) for o in output):
        candidates.append(output)
    for candidate in candidates:
        if len(candidate) == steps:
            return [str(s) for s in candidate], None
    return [str(t) for t in range(steps)], None
