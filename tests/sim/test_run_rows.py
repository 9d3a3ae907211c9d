"""Iteration rows of a run (sim/run_rows.py): a run past arrivals that wait is cut where requests
arrived, so that its rows count them queued from the iteration they arrived in, as stepping's."""

import numpy as np
import pandas as pd

from policy import SchedulerConfig
from sim import SimConfig, simulate
from sim.run_rows import Row, run_rows
from tests.sim.toy import ListTrace, ToyCost, jobs_of


def test_one_iteration_is_one_row():
    assert run_rows(1000, 1100, None, 3, 40, 30, 1, 5, [1050]) == [Row(1000, 1100, 1, 40, 30, 1, 5)]


def test_a_decode_run_is_cut_where_requests_arrived():
    # iterations end 100, 250, 400 and 560 us after 1000; arrivals at 1180 (in the second) and
    # 1400 (at the third's end: counted in it); 5 queued at the end, 3 before both arrived
    rows = run_rows(1000, 1560, [100, 250, 400, 560], 3, 0, 30, 0, 5, [1180, 1400])
    assert rows == [Row(1000, 1100, 1, 0, 30, 0, 3), Row(1100, 1250, 1, 0, 33, 0, 4),
                    Row(1250, 1560, 2, 0, 36, 0, 5)]


def test_a_plan_with_prefills_keeps_its_first_iteration_apart():
    # prefills of 40 tokens (2 jobs) beside decodes over 30; then 3 jobs decode over 73, 76...
    # An arrival before the run began (during the plan's swaps) is queued in every row.
    rows = run_rows(0, 500, [200, 300, 400, 500], 3, 40, 30, 2, 2, [0, 350])
    assert rows == [Row(0, 200, 1, 40, 30, 2, 1), Row(200, 300, 1, 0, 73, 0, 1), Row(300, 500, 2, 0, 76, 0, 2)]


def test_a_run_without_arrivals_is_one_row():
    assert run_rows(0, 400, [100, 200, 300, 400], 2, 0, 8, 0, 0, []) == [Row(0, 400, 4, 0, 8, 0, 0)]


def per_iteration(rows: pd.DataFrame) -> pd.DataFrame:
    """A table's rows repeated per iteration, each iteration's decode context worked out."""
    out = rows.loc[rows.index.repeat(rows["num_iterations"])].reset_index(drop=True)
    i = out.groupby(rows.index.repeat(rows["num_iterations"]).to_numpy()).cumcount()
    out["decode_context_tokens"] += i * out["batch_size"]
    return out


def test_queue_gauge_of_a_run_past_arrivals_equals_stepping():
    # vLLM-FCFS, 4 jobs a batch and room for few: requests arrive while the batch is full and
    # wait, and runs go past them
    rng = np.random.default_rng(7)
    n = 60
    trace = ListTrace(np.cumsum(rng.exponential(0.004, n)), rng.integers(5, 60, n), rng.integers(5, 40, n),
                      np.arange(n))
    cfg = SchedulerConfig(max_batch_size=4, device_kv_tokens=400, block_size_tokens=4)
    skip = simulate(trace, ToyCost(), "vllm-fcfs", cfg, SimConfig(record_iterations=True))
    step = simulate(trace, ToyCost(), "vllm-fcfs", cfg, SimConfig(record_iterations=True, skip=False))
    assert jobs_of(skip) == jobs_of(step)
    columns = ["batch_size", "num_prefills", "prefill_tokens", "decode_context_tokens", "num_queued"]
    a, b = per_iteration(skip.iterations), step.iterations
    assert len(a) == len(b) and len(skip.iterations) < len(b) / 2
    # an arrival at the instant an iteration ends would make the order of two SimPy events matter
    ends_us = set(np.rint(b["end_s"].to_numpy() * 1e6).astype(int))
    assert not ends_us & set(np.rint(trace.arrival_s * 1e6).astype(int))
    pd.testing.assert_frame_equal(a[columns], b[columns])
