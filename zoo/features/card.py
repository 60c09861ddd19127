"""A model card for a model file, in the Hugging Face style (`zoo card`): YAML front matter
(library, tags, datasets, metrics, model-index) and then, in Markdown, what the model does, its
data and split, its settings, its training, its test metrics beside the baselines the file
holds, its known limits, and how to load it with safetensors + torch, with zoo, and with the
torch-free runtime.

Everything comes from the file's metadata (zoo.modelfile), read and verified without torch;
the registry is asked only for the architecture's one-line description, if it is installed.
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import Any

from zoo.core.modelfile import parameter_count, read_info

EXAMPLES = {
    "tagging": '"The dog ate the apple ."',
    "window-regression": "0.1 0.2 0.3 0.4 0.5 0.6 0.7 0.8 0.9 1.0",
    "seq2seq": '"jump twice"',
    "char-lm": '"To be" --set length=40 --set temperature=0',
    "step-classification": "hello",
    "step-regression": "0.0 0.3 0.6 0.9",
}
LIMITS = {
    "tagging": [
        "Words are split on white space only: tokenise text as the training data was.",
        "Words never seen in training are tagged from their characters and context; "
        "`unknown_accuracy` below says how well that goes.",
    ],
    "window-regression": [
        "It reads exactly `input_length` past steps and forecasts `horizon` steps; its "
        "normalisation statistics come from the training rows.",
        "A series that drifts far from its training range is outside what it has seen.",
    ],
    "seq2seq": [
        "Tokens outside the source vocabulary become `<unk>`; outputs are cut at the decoding "
        "limit.",
    ],
    "char-lm": [
        "It continues text character by character; characters not seen in training are "
        "`<unk>`. Sampling (temperature > 0) differs between zoo and the ONNX runtime.",
    ],
}


def card(path: str | os.PathLike[str]) -> str:
    """The Markdown model card of a model file."""
    info = read_info(path)
    info["headline"] = _headline_names(info["architecture"])
    info["onnx_beside"] = Path(path).with_suffix(".onnx").is_file()  # an `onnx` tag claims it
    name = Path(path).name
    return "\n".join([*_front_matter(info), "", *_body(info, name), ""])


# ------------------------------------------------------------------------ front matter
def _headline(scores: dict[str, Any], names: tuple[str, ...]) -> dict[str, float]:
    """The architecture's headline metrics of a split (`Architecture.headline`), or without
    them its numbers that are not per-class or baseline entries."""
    picked = {k: scores[k] for k in names if k in scores} if names else scores
    return {
        k: v
        for k, v in picked.items()
        if (names or "/" not in k) and isinstance(v, (int, float)) and not isinstance(v, bool)
    }


def _headline_names(architecture: str) -> tuple[str, ...]:
    try:
        from zoo.core.registry import get_registry

        return get_registry().headline(architecture)
    except Exception:  # not installed here: every plain number of the file's metrics
        return ()


def _test_split(metrics: dict[str, Any]) -> str | None:
    return next((s for s in ("test", "valid", "train") if isinstance(metrics.get(s), dict)), None)


def _front_matter(info: dict[str, Any]) -> list[str]:
    q = json.dumps  # a JSON string is a valid YAML double-quoted scalar
    split = _test_split(info["metrics"])
    scores = _headline(info["metrics"].get(split, {}), info["headline"]) if split else {}
    formats = ["pytorch", "safetensors", *(["onnx"] if info.get("onnx_beside") else [])]
    tags = ["rnn-zoo", info["architecture"], info["task"], *formats, "rnn"]
    lines = ["---", "library_name: rnn-zoo", "tags:"]
    lines += [f"- {q(t)}" for t in dict.fromkeys(tags)]
    lines += ["datasets:", f"- {q(info['dataset'])}"]
    lines += ["metrics:"] + [f"- {q(k)}" for k in scores]
    lines += [
        "model-index:",
        f"- name: {q(info['architecture'] + '-' + info['dataset'])}",
        "  results:",
        f"  - task: {{type: {q(info['task'])}}}",
        f"    dataset: {{name: {q(info['dataset'])}, type: {q(info['dataset'])}, "
        f"split: {q(split or 'none')}}}",
        "    metrics:",
    ]
    lines += [
        f"    - {{type: {q(k)}, value: {_number(v)}}}" for k, v in scores.items() if _finite(v)
    ]
    return [*lines, "---"]


def _finite(value: Any) -> bool:
    return isinstance(value, (int, float)) and math.isfinite(value)


def _number(value: float) -> str:
    return str(value) if isinstance(value, int) else f"{value:.6g}"


# --------------------------------------------------------------------------------- body
def _body(info: dict[str, Any], name: str) -> list[str]:
    arch, task, dataset = info["architecture"], info["task"], info["dataset"]
    values = parameter_count(info)
    lines = [
        f"# {arch} on {dataset}",
        "",
        f"{_description(arch)}Task `{task}`; {values:,} weights in {len(info['tensors'])} "
        f"tensors; written by zoo {info['zoo_version']} with the plugin "
        f"{info['plugin'].get('distribution', '?')} {info['plugin'].get('version', '?')}.",
        "",
        "## Data",
        "",
        f"Dataset `{dataset}`, read with these settings (the split is part of them):",
        "",
        *_settings_table(info["data_config"]),
        "",
        "What the data left in the model (vocabularies, normalisation): "
        + _state_summary(info["data_state"])
        + ".",
        "",
        "## Settings",
        "",
        *_settings_table(info["config"]),
        "",
        "Training: " + ", ".join(f"`{k}={v}`" for k, v in sorted(info["train_config"].items())),
        "",
        *_training(info["metrics"].get("training")),
        *_evaluation(info["metrics"], info["headline"]),
        "## Known limits",
        "",
        *[f"- {line}" for line in LIMITS.get(task, [])],
        "- Trained on one dataset; its scores say nothing about other kinds of input.",
        "",
        *_usage(info, name),
    ]
    return lines


def _description(architecture: str) -> str:
    try:
        from zoo.core.registry import get_registry

        return get_registry().architecture(architecture).spec.description + ". "
    except Exception:  # not installed here: the card still says what the file says
        return ""


def _settings_table(settings: dict[str, Any]) -> list[str]:
    if not settings:
        return ["(none)"]
    rows = ["| setting | value |", "|---|---|"]
    rows += [f"| {k} | `{json.dumps(v)}` |" for k, v in sorted(settings.items())]
    return rows


def _state_summary(state: dict[str, Any]) -> str:
    parts = []
    for key, value in state.items():
        if isinstance(value, list):
            parts.append(f"`{key}` ({len(value)} entries)")
        elif isinstance(value, dict):
            parts.append(f"`{key}` ({len(value)} keys)")
        else:
            parts.append(f"`{key}` = {json.dumps(value)[:60]}")
    return ", ".join(parts) or "nothing"


def _training(training: Any) -> list[str]:
    if not isinstance(training, dict):
        return ["## Training", "", "This file records no training run (untrained weights?).", ""]
    facts = [
        ("time", f"{training.get('seconds', '?')} s"),
        ("epochs", training.get("epochs")),
        ("steps", training.get("steps")),
        ("examples per second", training.get("examples_per_second")),
        ("device", training.get("device")),
        ("threads", training.get("threads")),
        ("stopped early", training.get("stopped_early")),
    ]
    return [
        "## Training",
        "",
        *[f"- {k}: {v}" for k, v in facts if v is not None],
        "",
    ]


def _evaluation(metrics: dict[str, Any], names: tuple[str, ...]) -> list[str]:
    """Each held-out split's headline metrics, with the baselines (`repeat_last/mse`) the
    file holds as rows beside the model's."""
    splits = [s for s in ("valid", "test") if isinstance(metrics.get(s), dict)]
    if not splits:
        return []
    lines = ["## Evaluation", ""]
    for split in splits:
        scores = metrics[split]
        headline = _headline(scores, names)
        baselines: dict[str, dict[str, float]] = {}
        for key, value in scores.items():
            prefix, _, metric = key.rpartition("/")
            if prefix and metric in headline:
                baselines.setdefault(prefix, {})[metric] = value
        columns = [k for k in headline if any(k in b for b in baselines.values())] or list(headline)
        lines += [f"Split `{split}`:", "", "| | " + " | ".join(columns) + " |"]
        lines.append("|---" * (len(columns) + 1) + "|")
        for label, row in [("this model", headline), *baselines.items()]:
            cells = [_cell(row.get(c)) for c in columns]
            lines.append(f"| {label} | " + " | ".join(cells) + " |")
        lines.append("")
    return lines


def _cell(value: Any) -> str:
    if not _finite(value):
        return "" if value is None else str(value)
    return str(value) if isinstance(value, int) else f"{value:.4f}"


def _usage(info: dict[str, Any], name: str) -> list[str]:
    example = EXAMPLES.get(info["task"], '"INPUT"')
    return [
        "## How to use",
        "",
        "With safetensors and torch alone (tensors under torch's own names; the metadata holds "
        "the configs and vocabularies as JSON):",
        "",
        "```python",
        "from safetensors import safe_open",
        "from safetensors.torch import load_file",
        "",
        f'weights = load_file("{name}")',
        f'with safe_open("{name}", "pt") as f:',
        "    metadata = f.metadata()  # config, data_state, metrics: JSON strings",
        "```",
        "",
        f"With zoo (`{_install(info)}`):",
        "",
        "```bash",
        f"zoo predict {name} {example}",
        "```",
        "",
        *_runtime_usage(info, name, example),
    ]


def _install(info: dict[str, Any]) -> str:
    """The pip command that gives zoo and the plugin the file names (`rnn-zoo` alone for the
    built-in architectures)."""
    plugin = info.get("plugin") or {}
    dist, version = plugin.get("distribution"), plugin.get("version")
    if not dist or dist == "rnn-zoo":
        return "pip install rnn-zoo"
    return f"pip install rnn-zoo '{dist}=={version}'" if version else f"pip install rnn-zoo {dist}"


def _runtime_usage(info: dict[str, Any], name: str, example: str) -> list[str]:
    """How to run the model without torch. The runtime has recipes (raw input in, answers
    out) for the built-in tasks; a model of another task exports as a graph of raw arrays,
    unless its plugin ships a recipe of its own."""
    onnx = Path(name).with_suffix(".onnx").name
    lines = ["Without torch, with the ONNX runtime (numpy and onnxruntime only):", "", "```bash"]
    if info["task"] in EXAMPLES:
        return [
            *lines,
            f"zoo export {name} --out {onnx}      # once, where zoo is installed",
            "pip install ./runtime                 # rnn-zoo-runtime, from zoo's source tree",
            f"zoo-runtime {onnx} {example}",
            "```",
        ]
    return [
        *lines,
        f"zoo export {name} --example {example} --out {onnx}   # where zoo is installed",
        "pip install ./runtime                 # rnn-zoo-runtime, from zoo's source tree",
        "```",
        "",
        f"The runtime has no recipe for the task `{info['task']}` (unless the plugin registers "
        "one, docs/export.md): the graph takes and gives raw arrays.",
        "",
        "```python",
        "import zoo_runtime",
        "",
        f'outputs = zoo_runtime.load("{onnx}").run_arrays(inputs)  # the network\'s forward',
        "```",
    ]
