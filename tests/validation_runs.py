"""Hand-made live and simulated run directories for the validation report's exact tests."""

from __future__ import annotations

import math

import pandas as pd

from analysis.load import load_run
from fastserve.rundir import RunWriter

FIELDS = ("request_id", "arrival_s", "first_token_s", "finish_s", "prompt_tokens", "output_tokens",
          "generated_tokens", "replica", "num_preemptions", "num_swaps", "num_recomputes", "status")
ITERATION_FIELDS = ("start_s", "end_s", "num_iterations", "batch_size", "num_prefills", "prefill_tokens",
                    "decode_context_tokens", "decode_max_context_tokens")


class HandCost:
    """Prefill 1 ms + 10 us per prompt token; decode 100 us per job + 1 us per token of the longest context."""

    def __init__(self) -> None:
        self.calls = []

    def iteration_s(self, prefill_tokens, decode_context_tokens):
        self.calls.append((list(prefill_tokens), list(decode_context_tokens)))
        decode = 1e-4 * len(decode_context_tokens) + 1e-6 * max(decode_context_tokens, default=0)
        return 1e-3 * len(prefill_tokens) + 1e-5 * sum(prefill_tokens) + decode


def requests(policy, swap, jcts, ttfts, unfinished=0):
    rows = [(i, float(i), i + t, i + j, 8, 4, 4, 0, 0, 0, 0, "finished")
            for i, (j, t) in enumerate(zip(jcts, ttfts, strict=True))]
    rows += [(len(jcts) + k, 0.0, math.nan, math.nan, 8, 4, 0, 0, 0, 0, 0, "unfinished") for k in range(unfinished)]
    df = pd.DataFrame(rows, columns=FIELDS)
    df.insert(0, "swap", swap)
    df.insert(0, "policy", policy)
    df["reason"] = ""
    return df


def iterations(policy, swap, rows):
    df = pd.DataFrame(rows, columns=ITERATION_FIELDS)
    df.insert(0, "replica", 0)
    df["num_queued"] = 0
    df.insert(0, "swap", swap)
    df.insert(0, "policy", policy)
    return df


# (start, end, n, batch, prefills, prefill tokens, decode context sum, longest decode context)
FCFS_ITERATIONS = [
    (0.000, 0.002, 1, 2, 2, 30, 0, 0),      # 2 prefills of 15: predicted 2e-3 + 3e-4 = 2.3 ms
    (0.002, 0.0025, 1, 2, 0, 0, 40, 25),    # decodes 25 + 15: 2e-4 + 25e-6 = 0.225 ms
    (0.0025, 0.003, 1, 3, 1, 10, 50, 30),   # 1 prefill + decodes 30, 20: 1.1e-3 + 2e-4 + 30e-6 = 1.33 ms
]


def write_hand_runs(tmp_path):
    """A live and a simulated run directory of fcfs and skip-join-mlfq, written by hand."""
    live, sim = RunWriter(tmp_path / "live", {"engine": "live"}), RunWriter(tmp_path / "sim", {"engine": "sim"})
    live.add(requests("fcfs", "recompute", [1.0, 2.0, 3.0, 10.0], [0.5, 0.5, 1.0, 1.0]),
             iterations("fcfs", "recompute", FCFS_ITERATIONS))
    live.add(requests("skip-join-mlfq", "proactive", [1.0, 1.0, 4.0], [0.2, 0.2, 0.2], unfinished=1),
             iterations("skip-join-mlfq", "proactive", [(0.0, 0.001, 1, 1, 0, 0, 100, 100)]))
    sim.add(requests("fcfs", "recompute", [1.5, 2.0, 3.0, 9.0], [0.5, 0.5, 0.5, 0.5]))
    sim.add(requests("skip-join-mlfq", "proactive", [1.0, 2.0, 3.0], [0.1, 0.2, 0.3]))
    return load_run(tmp_path / "live"), load_run(tmp_path / "sim")
