"""What `zoo compare` computes: the settings in which runs differ and their metrics, with runs
that differ only in their seed pooled into mean ± sd (n), best first.

Plain data in, plain data out: a record is what a model file's metadata or a run-log row says
about one training (`from_model_info`, `from_run`), so comparing needs neither torch nor the
plugins that trained the models. The CLI (zoo/cli/runlog.py) reads the records and prints the
document as a table, markdown or CSV.
"""

from __future__ import annotations

import json
import math
import statistics
from typing import Any

from zoo.core.modelfile import parameter_count

SEED = "train.seed"
SPLITS = ("valid", "test")
KINDS = ("model", "data", "train")


def from_model_info(source: str, info: dict[str, Any]) -> dict[str, Any]:
    """A record from `zoo.modelfile.read_info` of a model file."""
    metrics = info.get("metrics", {})
    return {
        "source": source,
        "architecture": info.get("architecture"),
        "dataset": info.get("dataset"),
        "settings": {
            "model": info.get("config", {}),
            "data": info.get("data_config", {}),
            "train": info.get("train_config", {}),
        },
        "metrics": {k: v for k, v in metrics.items() if k != "training" and isinstance(v, dict)},
        "parameters": parameter_count(info),
        "cpu_seconds": (metrics.get("training") or {}).get("cpu_seconds"),
    }


def from_run(row: dict[str, Any]) -> dict[str, Any]:
    """A record from a run-log row (`zoo.runlog.RunLog.get`)."""
    settings = row.get("settings") if isinstance(row.get("settings"), dict) else {}
    metrics = row.get("metrics") if isinstance(row.get("metrics"), dict) else {}
    training = row.get("training") if isinstance(row.get("training"), dict) else {}
    return {
        "source": f"#{row['id']}",
        "architecture": row.get("architecture"),
        "dataset": row.get("dataset"),
        "settings": settings,
        "metrics": {k: v for k, v in metrics.items() if isinstance(v, dict)},
        "parameters": row.get("parameters"),
        "cpu_seconds": training.get("cpu_seconds"),
    }


def flat_settings(record: dict[str, Any]) -> dict[str, Any]:
    """`architecture`, `dataset` and every setting as `model.hidden_size`, `train.lr`, ..."""
    out = {"architecture": record["architecture"], "dataset": record["dataset"]}
    for kind in KINDS:
        for key, value in (record["settings"].get(kind) or {}).items():
            out[f"{kind}.{key}"] = value
    return out


def _same(value: Any) -> str:
    return json.dumps(value, sort_keys=True, default=str)


def differing(flats: list[dict[str, Any]]) -> list[str]:
    """The setting names whose values are not the same in every record: architecture and
    dataset first, then model, data and training settings, each kind by name."""
    keys: dict[str, None] = {}
    for flat in flats:
        keys.update(dict.fromkeys(flat))
    found = [k for k in keys if len({_same(f.get(k)) for f in flats}) > 1]
    order = ["architecture", "dataset", *KINDS]  # then by name, as model files store them
    return sorted(found, key=lambda key: (order.index(key.partition(".")[0]), key))


def metric_names(
    records: list[dict[str, Any]], monitor: str, wanted: list[str], headline: tuple[str, ...] = ()
) -> list[str]:
    """The metrics shown: `wanted` if given, else the architecture's `headline`, else every
    score that is a float (counts such as `characters` and per-class `x/y` scores left out),
    the monitor first."""
    if wanted or headline:
        return list(wanted or headline)
    names: dict[str, None] = {}
    for record in records:
        for scores in record["metrics"].values():
            names.update(
                (k, None)
                for k, v in scores.items()
                if isinstance(v, float) and "/" not in k and not isinstance(v, bool)
            )
    return sorted(names, key=lambda n: n != monitor)


def summary(values: list[Any]) -> dict[str, Any]:
    """{mean, sd, n} of the numbers among `values` (sd: the sample standard deviation)."""
    numbers = [
        float(v)
        for v in values
        if isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)
    ]
    n = len(numbers)
    return {
        "mean": statistics.fmean(numbers) if n else None,
        "sd": statistics.stdev(numbers) if n > 1 else None,
        "n": n,
    }


def compare(
    records: list[dict[str, Any]],
    monitor: tuple[str, str] = ("loss", "min"),
    metrics: list[str] | None = None,
    headline: tuple[str, ...] = (),
) -> dict[str, Any]:
    """The comparison document: differing settings, then one row per group of records that
    differ only in `train.seed`, sorted by the monitor metric (valid split, else test); the
    metrics shown are `metrics`, else the architecture's `headline` (`metric_names`)."""
    flats = [flat_settings(r) for r in records]
    keys = differing(flats)
    shown = [k for k in keys if k != SEED]
    groups: dict[str, list[int]] = {}
    for i, flat in enumerate(flats):
        groups.setdefault(_same([flat.get(k) for k in shown]), []).append(i)
    names = metric_names(records, monitor[0], metrics or [], headline)
    splits = [s for s in SPLITS if any(s in r["metrics"] for r in records)]
    rows = [
        _group_row(records, flats, members, shown, splits, names) for members in groups.values()
    ]
    split = splits[0] if splits else "valid"
    for row, members in zip(rows, groups.values()):  # the monitor ranks, shown or not
        row["score"] = summary(
            [records[i]["metrics"].get(split, {}).get(monitor[0]) for i in members]
        )
    rows.sort(key=lambda row: _rank(row["score"], monitor[1]))
    return {
        "monitor": {"metric": monitor[0], "mode": monitor[1], "split": split},
        "settings": shown,
        "seeds_differ": SEED in keys,
        "metrics": [[s, n] for s in splits for n in names],
        "rows": rows,
    }


def _group_row(
    records: list[dict[str, Any]],
    flats: list[dict[str, Any]],
    members: list[int],
    shown: list[str],
    splits: list[str],
    names: list[str],
) -> dict[str, Any]:
    group = [records[i] for i in members]
    return {
        "sources": [r["source"] for r in group],
        "n": len(group),
        "seeds": [flats[i].get(SEED) for i in members],
        "architecture": group[0]["architecture"],
        "dataset": group[0]["dataset"],
        "settings": {k: flats[members[0]].get(k) for k in shown},
        "metrics": {
            split: {
                name: summary([r["metrics"].get(split, {}).get(name) for r in group])
                for name in names
            }
            for split in splits
        },
        "parameters": summary([r["parameters"] for r in group]),
        "cpu_seconds": summary([r["cpu_seconds"] for r in group]),
    }


def _rank(score: dict[str, Any], mode: str) -> tuple[bool, float]:
    mean = score["mean"]
    if mean is None:
        return (True, 0.0)  # rows without the score last
    return (False, -mean if mode == "max" else mean)


# ---------------------------------------------------------------------------- rendering
def display_names(keys: list[str]) -> dict[str, str]:
    """`model.hidden_size` shown as `hidden_size` unless two kinds share that name."""
    bare = [k.partition(".")[2] or k for k in keys]
    return {k: b if bare.count(b) == 1 else k for k, b in zip(keys, bare)}


def cell(stat: dict[str, Any], fmt: Any) -> str:
    """`0.8123`, or `0.8123 ± 0.0041 (3)` for several runs, or `-` for none."""
    if stat["n"] == 0:
        return "-"
    if stat["n"] == 1:
        return fmt(stat["mean"])
    return f"{fmt(stat['mean'])} ± {fmt(stat['sd'])} ({stat['n']})"


def headers_and_cells(doc: dict[str, Any], fmt: Any) -> tuple[list[str], list[list[str]]]:
    """The table as text: a column for the runs, the differing settings, seeds (when
    pooled), parameters, each split's metrics and the training's CPU-seconds."""
    names = display_names(doc["settings"])
    pooled = any(row["n"] > 1 for row in doc["rows"])
    headers = ["runs", *names.values()]
    headers += ["seeds"] if pooled else []
    headers += ["parameters"] + [f"{s} {m}" for s, m in doc["metrics"]] + ["CPU s"]
    body = []
    for row in doc["rows"]:
        line = [" ".join(row["sources"]), *(_setting(row["settings"][k]) for k in names)]
        line += [",".join(str(s) for s in row["seeds"])] if pooled else []
        params = row["parameters"]
        line.append("-" if params["n"] == 0 else f"{round(params['mean']):,}")
        line += [cell(row["metrics"][s][m], fmt) for s, m in doc["metrics"]]
        line.append(cell(row["cpu_seconds"], lambda v: f"{v:.1f}"))
        body.append(line)
    return headers, body


def _setting(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value)


def markdown(headers: list[str], rows: list[list[str]]) -> str:
    """A GitHub-flavoured markdown table (pipes in cells escaped)."""

    def line(cells: list[str]) -> str:
        return "| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |"

    return "\n".join([line(headers), "|" + "---|" * len(headers), *map(line, rows)])


def csv_rows(doc: dict[str, Any]) -> list[list[Any]]:
    """Rows for a CSV file: raw numbers, a mean and an sd column per metric, and n."""
    names = display_names(doc["settings"])
    header = ["runs", *names.values(), "n", "seeds", "parameters"]
    for split, metric in doc["metrics"]:
        header += [f"{split} {metric}", f"{split} {metric} sd"]
    header += ["cpu_seconds"]
    out: list[list[Any]] = [header]
    for row in doc["rows"]:
        line: list[Any] = [" ".join(row["sources"]), *(row["settings"][k] for k in names)]
        params = row["parameters"]["mean"]
        line += [row["n"], " ".join(str(s) for s in row["seeds"])]
        line.append(None if params is None else round(params))
        for split, metric in doc["metrics"]:
            stat = row["metrics"][split][metric]
            line += [stat["mean"], stat["sd"]]
        line.append(row["cpu_seconds"]["mean"])
        out.append(["" if v is None else v for v in line])
    return out
