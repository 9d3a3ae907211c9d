"""`fastserve export-timeline`: both engines' run directories as Chrome trace-event JSON, checked
for validity (the Trace Event Format's fields, complete events nesting per thread) and exact
event counts against the run directory's own files."""

from __future__ import annotations

import json
import math
from collections import Counter

import pandas as pd
from click.testing import CliRunner

from fastserve.cli import main

TRACE = "synth:num_requests=16,rate=200,cv=2,lengths=uniform:prompt=8-48,output=4-24,seed=2"


def invoke(args):
    result = CliRunner().invoke(main, [str(a) for a in args])
    assert result.exit_code == 0, result.output
    return result


def assert_valid(doc: dict) -> None:
    """What Perfetto's and chrome://tracing's JSON importers rely on."""
    assert isinstance(doc["traceEvents"], list) and doc["displayTimeUnit"] in ("ms", "ns")
    open_by_thread: dict[tuple[int, int], list[tuple[float, float]]] = {}
    for e in doc["traceEvents"]:
        assert e["ph"] in ("X", "i", "C", "M") and isinstance(e["name"], str)
        assert isinstance(e["pid"], int) and isinstance(e["tid"], int)
        if e["ph"] == "M":
            assert e["name"] in ("process_name", "thread_name") and isinstance(e["args"]["name"], str)
            continue
        assert isinstance(e["ts"], float) and math.isfinite(e["ts"]) and e["ts"] >= 0
        if e["ph"] == "X":
            assert math.isfinite(e["dur"]) and e["dur"] >= 0
            open_by_thread.setdefault((e["pid"], e["tid"]), []).append((e["ts"], e["ts"] + e["dur"]))
        elif e["ph"] == "i":
            assert e["s"] in ("g", "p", "t")
        else:
            assert all(isinstance(v, int) for v in e["args"].values())
    for spans in open_by_thread.values():  # complete events on one thread nest or are disjoint
        stack: list[float] = []
        for start, end in sorted(spans, key=lambda s: (s[0], -s[1])):
            while stack and stack[-1] <= start + 1e-3:
                stack.pop()
            # microsecond times with 3 decimals: ends that agree to the nanosecond are equal
            assert not stack or end <= stack[-1] + 1e-3, "overlapping complete events on one thread"
            stack.append(end)


def assert_counts(run_dir, doc: dict) -> None:
    requests = pd.read_parquet(run_dir / "requests.parquet")
    iterations = pd.read_parquet(run_dir / "iterations.parquet")
    spans = pd.read_parquet(run_dir / "spans.parquet")
    events = doc["traceEvents"]
    kinds = Counter((e["ph"], e.get("cat", e["name"])) for e in events)
    finished = int((requests["status"] == "finished").sum())
    assert kinds[("X", "iteration")] == len(iterations)
    assert kinds[("C", "kv blocks")] == kinds[("C", "queued")] == len(iterations)
    assert kinds[("X", "request")] == finished and kinds[("i", "request")] == len(requests) - finished
    assert kinds[("X", "running")] == int((spans["kind"] == "running").sum())
    assert kinds[("X", "swap")] == int((spans["kind"] != "running").sum())
    processes = requests.groupby(["policy", "swap", "replica"]).ngroups
    assert kinds[("M", "process_name")] == processes
    assert kinds[("M", "thread_name")] == processes + requests.groupby(["policy", "swap", "replica", "request_id"]).ngroups
    iterations_total = sum(e["args"]["num_iterations"] for e in events if e.get("cat") == "iteration")
    assert iterations_total == int(iterations["num_iterations"].sum())


def test_a_simulated_run_with_swaps(tmp_path):
    run = tmp_path / "sim"
    invoke(["simulate", "--trace", TRACE, "--profile", "tiny-llama_cpu_tp1", "--policy", "skip-join-mlfq",
            "--policy", "fcfs", "--device-kv-tokens", "128", "--host-kv-tokens", "2048", "--max-seq-tokens", "96",
            "--block-size", "16", "--spans", "-o", run])
    result = invoke(["export-timeline", run])
    doc = json.loads((run / "trace_events.json").read_text())
    assert_valid(doc)
    assert_counts(run, doc)
    spans = pd.read_parquet(run / "spans.parquet")
    assert (spans["kind"] == "swap_out").sum() > 0  # the run swapped, so swap events are checked
    num_swaps = int((spans["kind"] != "running").sum())
    assert f"{len(pd.read_parquet(run / 'iterations.parquet'))} iteration, 32 request," in result.output
    assert result.output.rstrip().endswith(f", {num_swaps} swap events)")
    names = {e["args"]["name"] for e in doc["traceEvents"] if e["name"] == "process_name"}
    assert names == {"skip-join-mlfq (proactive) replica 0", "fcfs (recompute) replica 0"}
    before = (run / "trace_events.json").read_bytes()
    invoke(["export-timeline", run, "-o", tmp_path / "again.json"])
    assert (tmp_path / "again.json").read_bytes() == before  # deterministic


def test_a_live_run(tmp_path):
    run = tmp_path / "live"
    invoke(["serve", "--trace", TRACE, "--model", "tiny-llama", "--policy", "skip-join-mlfq", "--time-scale", "0.2",
            "--device-kv-tokens", "128", "--host-kv-tokens", "2048", "--max-seq-tokens", "96", "--block-size", "16",
            "--spans", "-o", run])
    invoke(["export-timeline", run, "-o", tmp_path / "t.json"])
    doc = json.loads((tmp_path / "t.json").read_text())
    assert_valid(doc)
    assert_counts(run, doc)
    assert doc["otherData"]["engine"] == "live"


def test_a_missing_run_is_one_line(tmp_path):
    result = CliRunner().invoke(main, ["export-timeline", str(tmp_path / "none")])
    assert result.exit_code == 1 and "Traceback" not in result.output and str(tmp_path / "none") in result.output
    assert len(result.output.strip().splitlines()) == 1


def test_without_spans_requests_still_have_their_spans(tmp_path):
    run = tmp_path / "sim"
    invoke(["simulate", "--trace", TRACE, "--profile", "tiny-llama_cpu_tp1", "--policy", "fcfs", "--no-spans",
            "-o", run])
    invoke(["export-timeline", run])
    doc = json.loads((run / "trace_events.json").read_text())
    assert_valid(doc)
    cats = Counter(e.get("cat") for e in doc["traceEvents"] if e["ph"] == "X")
    assert cats["request"] == 16 and cats["running"] == cats["swap"] == 0
