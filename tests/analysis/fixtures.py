"""Builders of tiny hand-written run and sweep directories; the expected values in the tests are worked
out by hand from these numbers (see each test)."""

from __future__ import annotations

import math

import pandas as pd

from analysis.metrics import add_derived
from fastserve.rundir import RunWriter

NAN = math.nan
REQUEST_FIELDS = (
    "request_id", "arrival_s", "first_token_s", "finish_s", "prompt_tokens", "output_tokens",
    "generated_tokens", "replica", "num_preemptions", "num_swaps", "num_recomputes", "status",
)
# fcfs (Orca, recompute): r3 rejected, r4 unfinished.
FCFS_ROWS = [
    (0, 0.0, 1.0, 5.0, 10, 5, 5, 0, 0, 0, 0, "finished"),
    (1, 1.0, 2.0, 4.0, 20, 3, 3, 1, 0, 0, 0, "finished"),
    (2, 2.0, 4.0, 10.0, 30, 4, 4, 0, 0, 0, 0, "finished"),
    (3, 3.0, NAN, NAN, 40, 1, 0, -1, 0, 0, 0, "rejected"),
    (4, 4.0, 8.0, NAN, 50, 6, 2, 1, 0, 0, 0, "unfinished"),
]
# skip-join-mlfq (proactive): r3 has a one-token output (no TPOT), r4 unfinished.
SJ_ROWS = [
    (0, 0.0, 0.5, 2.0, 10, 5, 5, 0, 1, 2, 0, "finished"),
    (1, 1.0, 1.5, 2.5, 20, 3, 3, 1, 0, 0, 0, "finished"),
    (2, 2.0, 2.5, 6.0, 30, 4, 4, 0, 2, 2, 0, "finished"),
    (3, 3.0, 3.5, 3.5, 40, 1, 1, 1, 0, 0, 0, "finished"),
    (4, 4.0, 4.5, NAN, 50, 6, 3, 0, 1, 1, 1, "unfinished"),
]


def requests_frame(policy: str, swap: str, rows) -> pd.DataFrame:
    df = pd.DataFrame(rows, columns=REQUEST_FIELDS)
    df.insert(0, "swap", swap)
    df.insert(0, "policy", policy)
    df["reason"] = ["" if s == "finished" else s for s in df["status"]]
    return add_derived(df)


def iterations_frame(policy: str, swap: str, rows, columns) -> pd.DataFrame:
    df = pd.DataFrame(rows, columns=columns)
    df.insert(0, "swap", swap)
    df.insert(0, "policy", policy)
    return df


FCFS_ITER_COLUMNS = ("replica", "start_s", "end_s", "num_iterations", "batch_size", "num_queued", "device_kv_blocks_used")
FCFS_ITERATIONS = [(0, 0.0, 5.0, 5, 1, 1, 10), (1, 1.0, 4.0, 3, 1, 0, 20)]
SJ_ITER_COLUMNS = (
    "replica", "start_s", "end_s", "num_iterations", "batch_size", "num_queued",
    "device_kv_blocks_used", "host_kv_blocks_used", "swap_out_tokens", "swap_in_tokens",
    "queue_level_0", "queue_level_1", "queue_level_2",
)
SJ_ITERATIONS = [
    (0, 0.0, 0.5, 1, 1, 0, 10, 0, 0, 0, 0, 0, 0),
    (0, 0.5, 1.0, 1, 1, 1, 10, 0, 12, 0, 1, 0, 0),
    (0, 1.0, 2.0, 4, 1, 1, 12, 12, 0, 0, 0, 1, 0),
    (0, 2.0, 3.0, 1, 2, 1, 30, 0, 0, 12, 1, 0, 0),
    (1, 1.0, 1.5, 1, 1, 0, 20, 0, 8, 8, 0, 0, 0),
]
SPAN_COLUMNS = ("replica", "request_id", "kind", "start_s", "end_s")
FCFS_SPANS = [
    (0, 0, "running", 0.5, 5.0), (1, 1, "running", 1.0, 4.0), (0, 2, "running", 3.0, 10.0),
    (1, 4, "running", 7.0, 8.0),
]
SJ_SPANS = [
    (0, 0, "running", 0.0, 0.5), (0, 0, "running", 0.5, 1.0), (0, 0, "swap_out", 1.0, 1.2),
    (0, 0, "swap_in", 1.4, 1.5), (0, 0, "running", 1.5, 2.0),
    (1, 1, "running", 1.2, 2.5),
    (0, 2, "running", 2.0, 3.0), (0, 2, "running", 4.0, 6.0),
    (1, 3, "running", 3.0, 3.5),
    (0, 4, "running", 4.0, 4.5),
]
CONFIG = {"seed": 0, "replicas": 2, "model": {"name": "tiny", "kv_bytes_per_token": 1000}}


def write_run(path, iterations: bool = True, spans: bool = True, config: dict | None = None):
    writer = RunWriter(path, CONFIG if config is None else config)
    for policy, swap, rows, its, its_cols, sp in (
        ("fcfs", "recompute", FCFS_ROWS, FCFS_ITERATIONS, FCFS_ITER_COLUMNS, FCFS_SPANS),
        ("skip-join-mlfq", "proactive", SJ_ROWS, SJ_ITERATIONS, SJ_ITER_COLUMNS, SJ_SPANS),
    ):
        writer.add(
            requests_frame(policy, swap, rows),
            iterations_frame(policy, swap, its, its_cols) if iterations else None,
            iterations_frame(policy, swap, sp, SPAN_COLUMNS) if spans else None,
        )
    return path


# Sweep: mean over the two seeds of norm_latency_p95_s, per (policy, cv, rate). The seeds sit
# at mean -+ 0.05, so their spread is 0.1 everywhere.
SWEEP_P95 = {
    ("fcfs", 1.0): {1.0: 0.3, 2.0: 0.5, 4.0: 0.9},
    ("skip-join-mlfq", 1.0): {1.0: 0.1, 2.0: 0.2, 4.0: 0.6},
    ("fcfs", 2.0): {1.0: 0.5, 2.0: 0.7, 4.0: 1.1},
    ("skip-join-mlfq", 2.0): {1.0: 0.1, 2.0: 0.2, 4.0: 0.3},
}
SWAP_OF = {"fcfs": "recompute", "skip-join-mlfq": "proactive"}


def sweep_summary() -> pd.DataFrame:
    rows = []
    cell = 0
    for (policy, cv), by_rate in SWEEP_P95.items():
        for rate, p95 in by_rate.items():
            for seed, delta in ((0, -0.05), (1, 0.05)):
                value = p95 + delta
                rows.append({
                    "policy": policy, "swap": SWAP_OF[policy], "num_finished": 100,
                    "jct_mean_s": 10 * value, "jct_p99_s": 30 * value,
                    "norm_latency_mean_s": value / 2, "norm_latency_p95_s": value,
                    "throughput_rps": rate, "rate": rate, "cv": cv, "lengths": "sharegpt",
                    "profile": "tiny", "replicas": 1, "tp": 1, "pp": 1, "max_batch": 16,
                    "seed": seed, "cell_id": f"c{cell:03d}",
                })
                cell += 1
    return pd.DataFrame(rows)


def write_sweep(path, num_failed: int = 1):
    path.mkdir(parents=True, exist_ok=True)
    summary = sweep_summary()
    summary.to_csv(path / "summary.csv", index=False)
    cells = summary[["cell_id", "policy", "swap", "rate", "cv", "seed"]].assign(status="done", error="")
    failed = pd.DataFrame([
        {"cell_id": f"f{i}", "policy": "srpt", "swap": "proactive", "rate": 8.0, "cv": 1.0, "seed": 0,
         "status": "failed", "error": "ValueError: boom"}
        for i in range(num_failed)
    ])
    pd.concat([cells, failed], ignore_index=True).to_csv(path / "cells.csv", index=False)
    return path
