"""Conservation, capacity, determinism and skip-equivalence over random loaded traces."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from fastserve.rundir import RunWriter, requests_frame
from policy import POLICIES, SWAP_MODES, SchedulerConfig
from sim import SimConfig, simulate
from tests.sim.toy import ListTrace, ToyCost, jobs_of


def bursty_trace(n: int, seed: int) -> ListTrace:
    rng = np.random.default_rng(seed)
    gaps = rng.gamma(shape=1 / 9, scale=0.02 * 9, size=n)  # CV 3, mean gap 20 ms
    prompts = rng.integers(5, 200, n)
    outputs = np.minimum(rng.lognormal(3.5, 1.0, n).astype(np.int64) + 1, 380)
    return ListTrace(np.cumsum(gaps), prompts, outputs, np.arange(n))


TIGHT = dict(device_kv_tokens=1500, host_kv_tokens=1200, max_batch_size=8, max_seq_tokens=600)
CASES = [(p, s) for p in POLICIES for s in SWAP_MODES]


@pytest.mark.parametrize("policy,swap", CASES)
def test_every_job_finishes_once_within_capacity(policy, swap):
    trace = bursty_trace(150, seed=1)
    cfg = SchedulerConfig(swap=swap, **TIGHT)
    r = simulate(trace, ToyCost(), policy, cfg, SimConfig(record_iterations=True))
    jobs = jobs_of(r)
    assert sorted(jobs) == list(range(150))  # each request exactly once
    assert all(j["status"] == "finished" for j in jobs.values())
    assert [jobs[i]["generated_tokens"] for i in range(150)] == trace.output_tokens.tolist()
    it = r.iterations
    assert int(it.device_kv_blocks_used.max()) <= TIGHT["device_kv_tokens"]
    assert int(it.host_kv_blocks_used.max()) <= TIGHT["host_kv_tokens"]
    if policy == "fcfs":
        assert sum(j["num_preemptions"] + j["num_swaps"] + j["num_recomputes"] for j in jobs.values()) == 0


def test_memory_pressure_exercises_every_mechanism():
    """The cases above are only meaningful if the tight capacities force evictions."""
    trace = bursty_trace(150, seed=1)
    totals = {}
    for swap in SWAP_MODES:
        r = simulate(trace, ToyCost(), "skip-join-mlfq", SchedulerConfig(swap=swap, **TIGHT))
        j = jobs_of(r).values()
        totals[swap] = (sum(x["num_preemptions"] for x in j), sum(x["num_swaps"] for x in j),
                        sum(x["num_recomputes"] for x in j))
    assert totals["proactive"][1] > 0 and totals["reactive"][1] > 0
    assert totals["recompute"][1] == 0 and totals["recompute"][2] > 0
    assert all(t[0] > 0 for t in totals.values())


@pytest.mark.parametrize("policy,swap", CASES)
@pytest.mark.parametrize("replicas", [1, 2])
def test_skipping_gives_identical_results(policy, swap, replicas):
    trace = bursty_trace(120, seed=2)
    cfg = SchedulerConfig(swap=swap, **TIGHT)
    fast = simulate(trace, ToyCost(), policy, cfg, SimConfig(num_replicas=replicas, dispatcher="least-work"))
    slow = simulate(trace, ToyCost(), policy, cfg, SimConfig(num_replicas=replicas, dispatcher="least-work", skip=False))
    assert jobs_of(fast) == jobs_of(slow)
    assert fast.stats["num_skipped_iterations"] > 0
    assert fast.stats["num_decisions"] < slow.stats["num_decisions"]


def test_skipping_identical_with_paper_starvation_setting():
    """alpha = 300 ms checked every iteration: the time-deadline path of the horizon."""
    trace = bursty_trace(150, seed=3)
    cfg = SchedulerConfig(alpha_s=0.3, starvation_check_iterations=1, **TIGHT)
    fast = simulate(trace, ToyCost(), "skip-join-mlfq", cfg, SimConfig())
    slow = simulate(trace, ToyCost(), "skip-join-mlfq", cfg, SimConfig(skip=False))
    assert jobs_of(fast) == jobs_of(slow)


def test_same_inputs_write_byte_identical_requests(tmp_path):
    trace = bursty_trace(100, seed=4)
    blobs = []
    for name in ("a", "b"):
        r = simulate(trace, ToyCost(), "skip-join-mlfq", SchedulerConfig(**TIGHT))
        RunWriter(tmp_path / name, {"seed": 0}).add(requests_frame(r.log, r.policy, r.swap))
        blobs.append((tmp_path / name / "requests.parquet").read_bytes())
    assert blobs[0] == blobs[1]
    df = pd.read_parquet(tmp_path / "a" / "requests.parquet")
    assert len(df) == 100 and (df.status == "finished").all()
