"""`sim.skip_run.cut_run`, the lazy pricing of a skip, cuts where the numpy path's searchsorted
bounds do: iterations ending strictly before the next arrival, up to and including the first
that ends at or after the policy's deadline."""

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from policy import SchedulerConfig
from sim import SimConfig, simulate, skip_run
from sim.clock import durations_us
from sim.skip_run import cut_run
from tests.sim.toy import ListTrace, ToyCost, jobs_of


def numpy_cut(seconds, gap_us, deadline_us):
    """The numpy path of `SkipRuns.length`, from its durations on."""
    ends = np.cumsum(durations_us(np.array(seconds)))
    limit = len(seconds)
    n = int(np.searchsorted(ends, gap_us, side="left")) if gap_us < math.inf else limit
    if deadline_us < math.inf:
        n = min(n, int(np.searchsorted(ends, deadline_us, side="left")) + 1)
    n = min(n, limit)
    return (1, int(ends[0]), None) if n < 2 else (n, int(ends[n - 1]), ends[:n].tolist())


bound = st.one_of(st.just(math.inf), st.integers(0, 2_000))


@settings(max_examples=500, deadline=None)
@given(seconds=st.lists(st.floats(1e-7, 3e-4), min_size=1, max_size=25), gap_us=bound, deadline_us=bound)
def test_cut_run_matches_the_numpy_bounds(seconds, gap_us, deadline_us):
    step_us = int(durations_us(np.array(seconds[:1]))[0])
    assert cut_run(iter(seconds), step_us, gap_us, deadline_us) == numpy_cut(seconds, gap_us, deadline_us)


@settings(max_examples=300, deadline=None)
@given(seconds=st.lists(st.floats(1e-7, 3e-4), min_size=1, max_size=25), gap_us=bound, deadline_us=bound)
def test_cut_run_after_a_priced_prefill_matches_the_numpy_bounds(seconds, gap_us, deadline_us):
    # a plan with prefills: its first iteration is priced already, `values` are the decodes after it
    step_us = int(durations_us(np.array(seconds[:1]))[0])
    got = cut_run(iter(seconds[1:]), step_us, gap_us, deadline_us, first_priced=True)
    assert got == numpy_cut(seconds, gap_us, deadline_us)


def test_cut_run_checks_the_first_value_against_the_step():
    with pytest.raises(RuntimeError, match="bit-identical"):
        cut_run(iter([1e-3, 1e-3]), 999, math.inf, math.inf)


@pytest.mark.parametrize("policy", ["vllm-fcfs", "skip-join-mlfq"])
def test_skipping_with_a_table_profile_gives_identical_results(policy, monkeypatch):
    """The bundled profile's cost model prices short skips lazily (the toy one never does)."""
    import profiles
    from policy import SchedulerConfig
    from sim import SimConfig, simulate
    from tests.sim.test_properties import bursty_trace
    from tests.sim.toy import jobs_of

    cost = profiles.cost_model(profiles.load_profile(profiles.DEFAULT_PROFILE))
    lazy_runs = []
    original = skip_run.cut_run
    monkeypatch.setattr(skip_run, "cut_run", lambda *a: lazy_runs.append(1) or original(*a))
    trace = bursty_trace(150, seed=5)
    cfg = SchedulerConfig(device_kv_tokens=3000, host_kv_tokens=3000, max_batch_size=8, max_seq_tokens=600,
                          block_size_tokens=4)
    fast = simulate(trace, cost, policy, cfg, SimConfig())
    slow = simulate(trace, cost, policy, cfg, SimConfig(skip=False))
    assert jobs_of(fast) == jobs_of(slow)
    assert lazy_runs and fast.stats["num_skipped_iterations"] > 0


def test_a_run_crosses_arrivals_that_wait():
    # vLLM-FCFS, batch of 1: job 0 (10 + 5 tokens) fills it, so job 1, arriving at 2000 us,
    # waits. Job 0's iterations end at 1200, 2311, 3423, 4536 and 5650 us (toy costs): one
    # decision covers all five, then one covers job 1's (4 + 4 iterations skipped).
    trace = ListTrace.of([(0.0, 10, 5), (0.002, 10, 5)])
    cfg = SchedulerConfig(max_batch_size=1)
    skip = simulate(trace, ToyCost(), "vllm-fcfs", cfg, SimConfig())
    assert jobs_of(skip) == jobs_of(simulate(trace, ToyCost(), "vllm-fcfs", cfg, SimConfig(skip=False)))
    assert jobs_of(skip)[0]["finish_s"] == 0.00565
    assert skip.stats["num_skipped_iterations"] == 8


def test_a_run_past_waiting_arrivals_never_ends_where_one_arrives():
    # Batch of 2: jobs 0 and 1 run 1400, 2622, 3846, 5072, 6300 us and finish together; job 2
    # (2000 us) waits. Job 3 arrives at 6300 us, exactly where a run over all five would end.
    # At a shared instant SimPy takes first what was scheduled first: the run's end (scheduled
    # at 0) before job 3 (scheduled at job 2's arrival), where stepping's last iteration
    # (scheduled at 5072) comes after it. Stepping's decision at 6300 sees job 3 and admits it
    # with job 2 (first tokens at 7700 us); so the run stops at 5072 and steps from there.
    trace = ListTrace.of([(0.0, 10, 5), (0.0, 10, 5), (0.002, 10, 5), (0.0063, 10, 5)])
    cfg = SchedulerConfig(max_batch_size=2)
    skip = simulate(trace, ToyCost(), "vllm-fcfs", cfg, SimConfig())
    step = simulate(trace, ToyCost(), "vllm-fcfs", cfg, SimConfig(skip=False))
    assert jobs_of(skip) == jobs_of(step)
    assert [jobs_of(skip)[i]["first_token_s"] for i in (2, 3)] == [0.0077, 0.0077]
    assert skip.stats["num_skipped_iterations"] == 7
