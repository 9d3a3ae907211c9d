"""Chunked prefill in the simulator: chunks are priced with the KV they attend to, and event
skipping gives exactly the results of stepping, for every policy and swap mode."""

from __future__ import annotations

import pytest

from policy import POLICIES, SWAP_MODES, SchedulerConfig
from sim import SimConfig, simulate
from tests.sim.test_properties import TIGHT, bursty_trace
from tests.sim.toy import ListTrace, ToyCost, jobs_of


def test_a_prompt_runs_in_chunks_priced_with_their_context():
    # One 100-token prompt, budget 40: chunks of 40, 40, 20 after 0, 40, 80 tokens of KV, each
    # iteration 1000 + 10 per chunk token + 1 per earlier token + 100 us; then 2 decodes.
    cfg = SchedulerConfig(chunked_prefill_tokens=40)
    r = simulate(ListTrace.of([(0.0, 100, 3)]), ToyCost(), "sarathi", cfg, SimConfig(record_iterations=True))
    it = r.iterations
    durations_us = ((it.end_s - it.start_s) * 1e6).round().astype(int).tolist()
    assert durations_us == [1500, 1540, 1380, 1201 + 1202]  # the last row: 2 decodes skipped at once
    assert it.prefill_tokens.tolist() == [40, 40, 20, 0] and it.num_iterations.tolist() == [1, 1, 1, 2]
    assert jobs_of(r)[0]["first_token_s"] == pytest.approx((1500 + 1540 + 1380) / 1e6)


def test_without_chunking_the_same_prompt_is_one_iteration():
    r = simulate(ListTrace.of([(0.0, 100, 1)]), ToyCost(), "vllm-fcfs", SchedulerConfig(), SimConfig())
    assert jobs_of(r)[0]["first_token_s"] == pytest.approx(2100 / 1e6)


@pytest.mark.parametrize("policy,swap", [(p, s) for p in POLICIES for s in SWAP_MODES])
def test_skipping_gives_identical_results_when_chunking(policy, swap):
    trace = bursty_trace(120, seed=2)
    cfg = SchedulerConfig(swap=swap, chunked_prefill_tokens=48, **TIGHT)
    fast = simulate(trace, ToyCost(), policy, cfg, SimConfig())
    slow = simulate(trace, ToyCost(), policy, cfg, SimConfig(skip=False))
    jobs = jobs_of(fast)
    assert jobs == jobs_of(slow)
    assert all(j["status"] == "finished" for j in jobs.values())
    assert fast.stats["num_skipped_iterations"] > 0
