"""Serving under load: `zoo serve` (torch), `zoo-runtime serve` (ONNX float32 and int8) and the
peers a user would run instead (../shared/bench/serve-peers/: FastAPI + torch, FastAPI + the
ONNX runtime, LitServe batch 64 / 10 ms), side by side, for the EWT tagger and the ETTh1
forecaster, at 1, 16 and 64 closed-loop clients (the peers' aiohttp load generator).

    python benchmarks/serve_load.py --tagger ewt.safetensors --forecaster etth1.safetensors
        [--peers ../shared/bench/serve-peers] [--data ../shared/data] [--clients 1,16,64]
        [--warmup 2] [--duration 6] [--rounds 2] [--out serve_load.json] [--markdown FILE]

(the servers' own output goes to the --out file with the suffix .log)

The models are the recipes' (docs/results/tagging-ewt.md, docs/results/etth1.md); each is
exported here with `zoo export` and `zoo export --quantize int8`. One request is one input: an
EWT dev sentence (its `# text =` line, as the peers' README) or an ETTh1 test window of the
model's input length (OT values). Each server is started alone on 127.0.0.1 (its own process
group), run at every client count, then stopped; the order of the servers is reversed every
other round, so that the machine's noise falls on all alike, and each cell is the mean of the
rounds (their spread is kept in the JSON). The zoo servers run with their defaults, as a user
types them; the peers as their README runs them.

First, without a server, the runtime's own speed on the float32 and the int8 file (inputs/s
one at a time and in one call) and their sizes. Then per run: requests/s, p50 and p99 ms, errors (from the generator), the server's CPU-seconds
over the run (every process of its group, from /proc) and its process and thread counts. The
load generator shares the machine's cores with the server. Results: docs/results/serve.md.
"""

from __future__ import annotations

import argparse
import csv
import importlib.util
import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"
TICKS = os.sysconf("SC_CLK_TCK")
START_TIMEOUT = 180.0  # seconds for a server to answer its first request
# The servers, in the order of odd rounds: name -> (file kind it serves, how to start it).
SERVERS = ["zoo-torch", "zoo-onnx", "zoo-onnx-int8", "fastapi-torch", "fastapi-onnx", "litserve"]
# What each server (and the load generator, always) imports: checked before anything runs, so
# a missing peer is one line at the start, not a traceback minutes into the run.
NEEDS = {"litserve": ["litserve"], "fastapi-torch": ["fastapi"], "fastapi-onnx": ["fastapi"]}


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--tagger", help="the EWT tagger recipe's model (.safetensors)")
    p.add_argument("--forecaster", help="the ETTh1 recipe's model (.safetensors)")
    p.add_argument("--peers", type=Path, default=SHARED / "bench" / "serve-peers")
    p.add_argument("--data", type=Path, default=SHARED / "data")
    p.add_argument("--clients", default="1,16,64", help="client counts, comma-separated")
    p.add_argument("--servers", default=",".join(SERVERS), help="which servers, comma-separated")
    p.add_argument("--warmup", type=float, default=2.0, help="seconds before each measured span")
    p.add_argument("--duration", type=float, default=6.0, help="seconds measured per run")
    p.add_argument("--rounds", type=int, default=2, help="rounds, the order reversed in each")
    p.add_argument("--out", type=Path, default=Path("serve_load.json"))
    p.add_argument("--markdown", type=Path, help="also write the tables to this file")
    p.add_argument("--port", type=int, default=0, help="the servers' port (0: a free one each)")
    args = p.parse_args()
    if not (args.tagger or args.forecaster):
        p.error("give --tagger and/or --forecaster (the recipes' model files)")
    needed = {"aiohttp", "uvicorn"}.union(*(NEEDS.get(s, []) for s in args.servers.split(",")))
    missing = sorted(m for m in needed if importlib.util.find_spec(m) is None)
    if missing:
        p.error(
            f"missing {', '.join(missing)}: pip install {' '.join(missing)} (the peers' README)"
        )
    return args


def environment() -> dict[str, str]:
    """This checkout's runtime first on the path: an older installed copy would be measured
    otherwise (from a clone, `pip install './runtime[serve]'` gives the same)."""
    paths = [str(REPO / "runtime"), os.environ.get("PYTHONPATH", "")]
    return {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in paths if p)}


# ------------------------------------------------------------------------ the inputs
def ewt_sentences(data: Path, out: Path) -> Path:
    """The EWT dev sentences, one a line (their `# text =` lines, as the peers' README)."""
    conllu = data / "ud-english-ewt" / "en_ewt-ud-dev.conllu"
    lines = conllu.read_text(encoding="utf-8").splitlines()
    texts = [line[len("# text = ") :] for line in lines if line.startswith("# text = ")]
    out.write_text("".join(t.strip() + "\n" for t in texts if t.strip()), encoding="utf-8")
    return out


def etth1_windows(model: str, data: Path, out: Path, count: int = 200) -> Path:
    """Windows of the model's input length from the ETTh1 test rows (the last 2,880 of the
    published split), one a line as numbers separated by spaces."""
    from zoo.core.modelfile import read_info

    state = read_info(model)["data_state"]
    length, column = int(state["input_length"]), state["targets"][0]
    with open(data / "ett" / "ETTh1.csv", newline="", encoding="utf-8") as f:
        values = [row[column] for row in csv.DictReader(f)]
    test = values[8640 + 2880 - length : 8640 + 2880 + 2880]
    starts = range(0, len(test) - length, max(1, (len(test) - length) // count))
    out.write_text("".join(" ".join(test[s : s + length]) + "\n" for s in starts))
    return out


def export(model: str, folder: Path) -> dict[str, Path]:
    """The model's float32 and int8 ONNX files, written by `zoo export` as a user would."""
    stem = folder / Path(model).stem
    files = {"float32": stem.with_suffix(".onnx"), "int8": stem.with_suffix(".int8.onnx")}
    zoo = [sys.executable, "-m", "zoo", "export", model]
    subprocess.run([*zoo, "--out", str(files["float32"])], check=True, env=environment())
    subprocess.run(
        [*zoo, "--quantize", "int8", "--out", str(files["int8"])], check=True, env=environment()
    )
    return files


# ------------------------------------------------------------------------ the servers
def command(server: str, files: dict[str, Any], port: int, peers: Path) -> tuple[list, dict]:
    """(argv, extra environment) starting `server` on 127.0.0.1:port; zoo's with defaults."""
    py, model, onnx = sys.executable, str(files["model"]), files["onnx"]
    if server == "zoo-torch":
        return [py, "-m", "zoo", "serve", model, "--port", str(port)], {}
    if server in ("zoo-onnx", "zoo-onnx-int8"):
        file = onnx["int8" if server.endswith("int8") else "float32"]
        return [py, "-m", "zoo_runtime", "serve", str(file), "--port", str(port)], {}
    uvicorn = [py, "-m", "uvicorn", "--app-dir", str(peers), "--host", "127.0.0.1"]
    if server == "fastapi-torch":
        return [*uvicorn, "--port", str(port), "serve_fastapi_torch:app"], {"SRV_MODEL": model}
    if server == "fastapi-onnx":
        peer = {"SRV_MODEL": str(onnx["float32"])}
        return [*uvicorn, "--port", str(port), "serve_fastapi_onnx:app"], peer
    if server == "litserve":
        return [py, str(peers / "serve_litserve.py")], {"SRV_MODEL": model, "SRV_PORT": str(port)}
    raise ValueError(server)


def predict_url(server: str, files: dict[str, Any], port: int) -> str:
    """Where one request goes: zoo's /v1/models/NAME/predict (NAME the file's stem), the
    peers' /predict."""
    if not server.startswith("zoo"):
        return f"http://127.0.0.1:{port}/predict"
    file = {"zoo-torch": files["model"], "zoo-onnx": files["onnx"]["float32"]}.get(
        server, files["onnx"]["int8"]
    )
    name = Path(file).name.removesuffix(".safetensors").removesuffix(".onnx")
    return f"http://127.0.0.1:{port}/v1/models/{name}/predict"


def free_port() -> int:
    """A port nothing listens on now, on 127.0.0.1."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start(argv: list, extra: dict, url: str, example: str, log: Path) -> subprocess.Popen:
    """The server in a process group of its own, once it has answered one request."""
    with open(log, "ab") as sink:
        process = subprocess.Popen(
            argv,
            stdout=sink,
            stderr=subprocess.STDOUT,
            env={**environment(), **extra},
            start_new_session=True,
        )
    body = json.dumps({"inputs": [example]}).encode()
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{argv[:4]} ended ({process.returncode}); see {log}")
        try:
            request = urllib.request.Request(url, body, {"Content-Type": "application/json"})
            with urllib.request.urlopen(request, timeout=5) as r:
                if r.status == 200:
                    return process
        except (OSError, urllib.error.HTTPError):
            pass
        time.sleep(0.25)
    stop(process)
    raise RuntimeError(f"{argv[:4]} did not answer within {START_TIMEOUT:g} s; see {log}")


def stop(process: subprocess.Popen) -> None:
    """SIGTERM to the server's group (LitServe's workers outlive their parent otherwise),
    SIGKILL after 15 s."""
    for sig, wait in ((signal.SIGTERM, 15), (signal.SIGKILL, 5)):
        try:
            os.killpg(process.pid, sig)
        except ProcessLookupError:
            return
        try:
            process.wait(wait)
            time.sleep(0.5)  # the group's other processes
        except subprocess.TimeoutExpired:
            continue
        if not group(process.pid):
            return


def group(pgid: int) -> list[int]:
    """The processes of a process group (from /proc)."""
    pids = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                fields = Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[2]) == pgid and fields[0] != "Z":
                pids.append(int(entry))
    return pids


def usage(pgid: int) -> dict[str, float]:
    """CPU-seconds (user + system), processes and threads of a process group now."""
    cpu, threads, pids = 0.0, 0, group(pgid)
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        cpu += (int(fields[11]) + int(fields[12])) / TICKS
        threads += int(fields[17])
    return {"cpu_s": cpu, "processes": len(pids), "threads": threads}


# ------------------------------------------------------------------- int8 offline
def offline_speed(files: dict[str, Any], repeats: int = 3, count: int = 300) -> dict:
    """The runtime's own speed on the float32 and the int8 file, no server: inputs/s one at a
    time and in one call (groups of 8 by length where the model batches, as the server),
    one thread, the two files taking turns; medians of `repeats`."""
    sys.path.insert(0, str(REPO / "runtime"))
    import zoo_runtime

    texts = files["inputs"].read_text(encoding="utf-8").splitlines()[:count]
    models = {p: zoo_runtime.load(f, threads=1) for p, f in files["onnx"].items()}
    times: dict[str, dict[str, list[float]]] = {p: {"one": [], "batch": []} for p in models}
    for r in range(repeats):
        for precision in list(models)[:: 1 if r % 2 == 0 else -1]:
            model = models[precision]
            options = {"batch_size": 8} if "batch_size" in model.options else {}
            t0 = time.perf_counter()
            for text in texts:
                model.predict([text])
            t1 = time.perf_counter()
            model.predict(texts, **options)
            t2 = time.perf_counter()
            times[precision]["one"].append(len(texts) / (t1 - t0))
            times[precision]["batch"].append(len(texts) / (t2 - t1))
    return {
        p: {
            "bytes": files["onnx"][p].stat().st_size,
            "inputs_per_s_one_at_a_time": statistics.median(t["one"]),
            "inputs_per_s_in_one_call": statistics.median(t["batch"]),
        }
        for p, t in times.items()
    }


# ----------------------------------------------------------------------- the load
def load(args: argparse.Namespace, url: str, inputs: Path, clients: int, pgid: int) -> dict:
    """One closed-loop run of the peers' generator, with the server's CPU over it."""
    with tempfile.NamedTemporaryFile(suffix=".json") as out:
        argv = [sys.executable, str(args.peers / "loadgen.py"), url, "-c", str(clients)]
        argv += ["--warmup", str(args.warmup), "--duration", str(args.duration)]
        argv += ["--sentences", str(inputs), "--json", out.name]
        before, load_before = usage(pgid), os.getloadavg()[0]
        subprocess.run(argv, check=True, timeout=args.warmup + args.duration + 120)
        after = usage(pgid)
        result = json.loads(Path(out.name).read_text())
    keep = ("rps", "p50_ms", "p99_ms", "errors", "error_kinds", "requests", "client_cpu_s")
    return {
        **{k: result[k] for k in keep},
        "server_cpu_s": after["cpu_s"] - before["cpu_s"],
        "server_processes": after["processes"],
        "server_threads": after["threads"],
        "load_average_1min_before": load_before,  # other work on the machine, for the record
    }


def measure(args: argparse.Namespace, models: dict[str, dict[str, Any]], log: Path) -> list:
    """Every (round, model, server, clients) run; the servers' order reversed each round."""
    servers = args.servers.split(",")
    clients = [int(c) for c in args.clients.split(",")]
    runs = []
    for round_ in range(args.rounds):
        order = servers if round_ % 2 == 0 else servers[::-1]
        for task, files in models.items():
            example = files["inputs"].read_text(encoding="utf-8").splitlines()[0]
            for server in order:
                port = args.port or free_port()
                argv, extra = command(server, files, port, args.peers)
                url = predict_url(server, files, port)
                process = start(argv, extra, url, example, log)
                try:
                    for c in clients:
                        result = load(args, url, files["inputs"], c, process.pid)
                        runs.append(
                            {"round": round_, "model": task, "server": server, "clients": c}
                            | result
                        )
                        print(json.dumps(runs[-1]), file=sys.stderr, flush=True)
                finally:
                    stop(process)
    return runs


# ---------------------------------------------------------------------- the tables
def summary(runs: list[dict]) -> list[dict]:
    """One row per (model, server, clients): the mean over rounds, and each round's req/s."""
    cells: dict[tuple, list[dict]] = {}
    for run in runs:
        cells.setdefault((run["model"], run["server"], run["clients"]), []).append(run)
    rows = []
    for (model, server, clients), same in cells.items():
        row = {"model": model, "server": server, "clients": clients, "rounds": len(same)}
        for key in ("rps", "p50_ms", "p99_ms", "server_cpu_s"):
            row[key] = statistics.fmean(r[key] for r in same)
        row["rps_each"] = [r["rps"] for r in same]
        row["errors"] = sum(r["errors"] for r in same)
        row["processes"] = max(r["server_processes"] for r in same)
        row["threads"] = max(r["server_threads"] for r in same)
        rows.append(row)
    return rows


def markdown(rows: list[dict], clients: list[int]) -> str:
    """A table per model: req/s; p99 ms at each client count, then CPU and threads."""
    lines = []
    for model in dict.fromkeys(r["model"] for r in rows):
        head = " | ".join(f"{c} client{'s' if c > 1 else ''}" for c in clients)
        lines += [f"\n{model} (req/s; p99 ms)\n", f"| server | {head} | errors | server CPU-s, "
                  f"{clients[-1]} clients | processes / threads |",
                  "|---|" + "---|" * (len(clients) + 3)]  # fmt: skip
        for server in dict.fromkeys(r["server"] for r in rows if r["model"] == model):
            cells = {r["clients"]: r for r in rows if r["model"] == model and r["server"] == server}
            figures = " | ".join(
                f"{cells[c]['rps']:.0f}; {cells[c]['p99_ms']:.0f}" if c in cells else "-"
                for c in clients
            )
            last = cells[max(cells)]
            errors = sum(r["errors"] for r in cells.values())
            lines.append(
                f"| {server} | {figures} | {errors} | {last['server_cpu_s']:.1f} | "
                f"{last['processes']} / {last['threads']} |"
            )
    return "\n".join(lines) + "\n"


def offline_table(offline: dict[str, dict]) -> str:
    """File size and the runtime's speed, float32 against int8, per model."""
    lines = ["\nruntime alone, one thread (inputs/s)\n",
             "| model | file | bytes | one at a time | in one call |", "|---|---|---|---|---|"]  # fmt: skip
    for task, precisions in offline.items():
        for p, f in precisions.items():
            lines.append(
                f"| {task} | {p} | {f['bytes']:,} | {f['inputs_per_s_one_at_a_time']:.0f} | "
                f"{f['inputs_per_s_in_one_call']:.0f} |"
            )
    return "\n".join(lines) + "\n"


def main() -> None:
    args = parse_args()
    with tempfile.TemporaryDirectory() as scratch:
        folder = Path(scratch)
        models: dict[str, dict[str, Any]] = {}
        if args.tagger:
            inputs = ewt_sentences(args.data, folder / "sentences.txt")
            models["tagger"] = {"model": args.tagger, "inputs": inputs}
        if args.forecaster:
            inputs = etth1_windows(args.forecaster, args.data, folder / "windows.txt")
            models["forecaster"] = {"model": args.forecaster, "inputs": inputs}
        offline = {}
        for task, files in models.items():
            files["onnx"] = export(files["model"], folder)
            offline[task] = offline_speed(files)
            print(task, json.dumps(offline[task]), file=sys.stderr, flush=True)
        started = time.time()
        runs = measure(args, models, args.out.with_suffix(".log"))
        elapsed = time.time() - started
    rows = summary(runs)
    doc = {
        "machine": {"cpus": os.cpu_count(), "note": "the load generator shares these cores"},
        "settings": {k: str(v) for k, v in vars(args).items()},
        "seconds": elapsed,
        "int8_offline": offline,
        "rows": rows,
        "runs": runs,
    }
    args.out.write_text(json.dumps(doc, indent=1) + "\n")
    table = markdown(rows, [int(c) for c in args.clients.split(",")]) + offline_table(offline)
    if args.markdown:
        args.markdown.write_text(table)
    print(table)


if __name__ == "__main__":
    main()
