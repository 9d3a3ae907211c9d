"""A run directory as Chrome trace-event JSON, which Perfetto (ui.perfetto.dev) and
chrome://tracing open: the Trace Event Format's JSON object form, times in microseconds.

One process per (policy, swap, replica), named so in a metadata event. In each:
- thread 0, "iterations": one complete event (`ph: X`, cat `iteration`) per row of
  iterations.parquet (a row of skipped identical iterations is one event; `args` carry its
  counts), plus counter events (`ph: C`) for KV blocks held and jobs queued at its start;
- one thread per request, "request <id>": a complete event (cat `request`) from arrival to
  finish for a finished request, an instant event (`ph: i`, cat `request`) at arrival for a
  rejected or unfinished one, and, when the run recorded spans.parquet, its running spans
  (cat `running`) and swaps (cat `swap`, named swap_out / swap_in).
Works the same on both engines' run directories; reads only, runs nothing. Events are in the
files' row order, so the same run directory gives byte-identical JSON.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

from analysis.load import RunData, load_run

REQUEST_TID_BASE = 1  # request r is thread REQUEST_TID_BASE + r; thread 0 holds the iterations
_ITERATION_ARGS = ("num_iterations", "batch_size", "num_prefills", "prefill_tokens", "decode_context_tokens",
                   "swap_out_tokens", "swap_in_tokens", "num_queued")


def _us(seconds: float) -> float:
    return round(float(seconds) * 1e6, 3)


def _key(row) -> tuple:
    return (row["policy"], row["swap"] if isinstance(row["swap"], str) else "", int(row["replica"]))


def trace_events(run: RunData) -> dict:
    """The trace-event JSON object of one run directory."""
    pids: dict[tuple, int] = {}
    events: list[dict] = []

    def pid_of(row) -> int:
        key = _key(row)
        if key not in pids:
            pids[key] = pid = len(pids) + 1
            policy, swap, replica = key
            events.append({"name": "process_name", "ph": "M", "pid": pid, "tid": 0,
                           "args": {"name": f"{policy} ({swap}) replica {replica}"}})
            events.append({"name": "thread_name", "ph": "M", "pid": pid, "tid": 0, "args": {"name": "iterations"}})
        return pids[key]

    named_threads: set[tuple[int, int]] = set()

    def request_tid(pid: int, request_id: int) -> int:
        tid = REQUEST_TID_BASE + int(request_id)
        if (pid, tid) not in named_threads:
            named_threads.add((pid, tid))
            events.append({"name": "thread_name", "ph": "M", "pid": pid, "tid": tid,
                           "args": {"name": f"request {int(request_id)}"}})
        return tid

    if run.iterations is not None:
        for row in run.iterations.to_dict("records"):
            pid, ts = pid_of(row), _us(row["start_s"])
            args = {k: int(row[k]) for k in _ITERATION_ARGS if k in row}
            prefill = args.get("num_prefills", 0) > 0
            events.append({"name": "prefill+decode" if prefill else "decode", "cat": "iteration", "ph": "X",
                           "pid": pid, "tid": 0, "ts": ts, "dur": max(0.0, round(_us(row["end_s"]) - ts, 3)), "args": args})
            kv = {k.replace("_kv_blocks_used", ""): int(row[k])
                  for k in ("device_kv_blocks_used", "host_kv_blocks_used") if k in row}
            if kv:
                events.append({"name": "kv blocks", "ph": "C", "pid": pid, "tid": 0, "ts": ts, "args": kv})
            if "num_queued" in row:
                events.append({"name": "queued", "ph": "C", "pid": pid, "tid": 0, "ts": ts,
                               "args": {"jobs": int(row["num_queued"])}})
    for row in run.requests.to_dict("records"):
        pid = pid_of(row)
        tid = request_tid(pid, row["request_id"])
        name = f"request {int(row['request_id'])}"
        args = {k: int(row[k]) for k in ("prompt_tokens", "output_tokens", "num_preemptions", "num_swaps") if k in row}
        args["status"] = row["status"]
        ts = _us(row["arrival_s"])
        if row["status"] == "finished" and not math.isnan(row["finish_s"]):
            events.append({"name": name, "cat": "request", "ph": "X", "pid": pid, "tid": tid, "ts": ts,
                           "dur": max(0.0, round(_us(row["finish_s"]) - ts, 3)), "args": args})
        else:
            events.append({"name": f"{name} {row['status']}", "cat": "request", "ph": "i", "s": "t", "pid": pid,
                           "tid": tid, "ts": ts, "args": args})
    if run.spans is not None:
        for row in run.spans.to_dict("records"):
            pid = pid_of(row)
            tid = request_tid(pid, row["request_id"])
            ts = _us(row["start_s"])
            kind = row["kind"]
            events.append({"name": kind, "cat": "running" if kind == "running" else "swap", "ph": "X", "pid": pid,
                           "tid": tid, "ts": ts, "dur": max(0.0, round(_us(row["end_s"]) - ts, 3))})
    return {"traceEvents": events, "displayTimeUnit": "ms",
            "otherData": {"run_dir": str(run.path), "engine": run.config.get("engine")}}


def write_trace_events(run_dir: str | Path, out: str | Path) -> dict:
    """Write `run_dir`'s trace-event JSON to `out` (InputError on a bad run directory); returns
    event counts by category."""
    trace = trace_events(load_run(run_dir))
    out = Path(out)
    tmp = out.with_name(out.name + ".tmp")
    tmp.write_text(json.dumps(trace, separators=(",", ":")))
    tmp.replace(out)
    counts: dict[str, int] = {}
    for event in trace["traceEvents"]:
        if event["ph"] != "M":
            key = event.get("cat", "counter")
            counts[key] = counts.get(key, 0) + 1
    return counts
