"""`Replica._cut_run`, the lazy pricing of a skip, cuts where the numpy path's searchsorted
bounds do: iterations ending strictly before the next arrival, up to and including the first
that ends at or after the policy's deadline."""

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sim.clock import durations_us
from sim.replica import Replica


def numpy_cut(seconds, gap_us, deadline_us):
    """The numpy path of `Replica._skippable`, from its durations on."""
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
    assert Replica._cut_run(iter(seconds), step_us, gap_us, deadline_us) == numpy_cut(seconds, gap_us, deadline_us)


@settings(max_examples=300, deadline=None)
@given(seconds=st.lists(st.floats(1e-7, 3e-4), min_size=1, max_size=25), gap_us=bound, deadline_us=bound)
def test_cut_run_after_a_priced_prefill_matches_the_numpy_bounds(seconds, gap_us, deadline_us):
    # a plan with prefills: its first iteration is priced already, `values` are the decodes after it
    step_us = int(durations_us(np.array(seconds[:1]))[0])
    got = Replica._cut_run(iter(seconds[1:]), step_us, gap_us, deadline_us, first_priced=True)
    assert got == numpy_cut(seconds, gap_us, deadline_us)


def test_cut_run_checks_the_first_value_against_the_step():
    with pytest.raises(RuntimeError, match="bit-identical"):
        Replica._cut_run(iter([1e-3, 1e-3]), 999, math.inf, math.inf)


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
    original = Replica._cut_run
    monkeypatch.setattr(Replica, "_cut_run", staticmethod(lambda *a: lazy_runs.append(1) or original(*a)))
    trace = bursty_trace(150, seed=5)
    cfg = SchedulerConfig(device_kv_tokens=3000, host_kv_tokens=3000, max_batch_size=8, max_seq_tokens=600,
                          block_size_tokens=4)
    fast = simulate(trace, cost, policy, cfg, SimConfig())
    slow = simulate(trace, cost, policy, cfg, SimConfig(skip=False))
    assert jobs_of(fast) == jobs_of(slow)
    assert lazy_runs and fast.stats["num_skipped_iterations"] > 0
