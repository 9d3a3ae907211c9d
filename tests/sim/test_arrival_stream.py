"""Arrival streams (sim/arrival_stream.py): under round-robin dispatch a replica's runs stop only
at its own requests, and the replicas then run exactly as if each served its share alone."""

import math

import numpy as np
import pytest

from policy import POLICIES, SchedulerConfig
from sim import SimConfig, simulate
from sim.arrival_stream import ArrivalStream, arrival_streams
from tests.sim.test_properties import TIGHT, bursty_trace
from tests.sim.toy import ListTrace, ToyCost, jobs_of


def test_a_stream_gives_the_next_arrival_after_the_last_that_came():
    stream = ArrivalStream(np.array([5, 9, 9, 20]))
    assert stream.next_us == math.inf and stream.sorted  # no arrival yet: no job, no run
    stream.took_one()
    assert stream.next_us == 9
    for _ in range(3):
        stream.took_one()
    assert stream.next_us == math.inf
    assert [stream.arrives_at(t) for t in (4, 5, 9, 10, 20, 21)] == [False, True, True, False, True, False]
    assert not ArrivalStream(np.array([3, 1])).sorted


def test_round_robin_splits_the_arrivals_and_other_dispatchers_share_them():
    us = np.arange(7) * 10
    own = arrival_streams(us, 3, round_robin=True)
    for stream in own:
        stream.took_one()
    assert [s.next_us for s in own] == [30, 40, 50]
    shared = arrival_streams(us, 3, round_robin=False)
    assert shared[0] is shared[1] is shared[2]
    assert arrival_streams(us, 1, round_robin=True)[0].next_us == math.inf


def shares(trace: ListTrace, num_replicas: int) -> list[ListTrace]:
    return [ListTrace(trace.arrival_s[r::num_replicas], trace.prompt_tokens[r::num_replicas],
                      trace.output_tokens[r::num_replicas], trace.request_id[r::num_replicas])
            for r in range(num_replicas)]


@pytest.mark.parametrize("policy", sorted(POLICIES))
def test_round_robin_replicas_run_as_if_alone(policy):
    # Each replica's results and its decisions equal those of a one-replica run over its share
    # of the trace: no replica decides at another's arrival.
    trace = bursty_trace(120, seed=6)
    cfg = SchedulerConfig(**TIGHT)
    together = simulate(trace, ToyCost(), policy, cfg, SimConfig(num_replicas=3))
    jobs = jobs_of(together)
    num_decisions = 0
    for r, share in enumerate(shares(trace, 3)):
        alone = simulate(share, ToyCost(), policy, cfg, SimConfig())
        num_decisions += alone.stats["num_decisions"]
        for request, job in jobs_of(alone).items():
            assert jobs[request] == {**job, "replica": r}
    assert together.stats["num_decisions"] == num_decisions
    stepped = simulate(trace, ToyCost(), policy, cfg, SimConfig(num_replicas=3, skip=False))
    assert jobs_of(stepped) == jobs
