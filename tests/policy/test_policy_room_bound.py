"""The room bound of batch formation changes nothing but the work.

`KVPlacement._secure_device_kv` remembers the room a failed victim scan found and refuses later
(lower-priority) jobs that need more without scanning, until an eviction frees room; a job off
the device that needs more is refused before any placement call (`_take_off_device`). Here a
subclass without the bound must plan identically on random scenarios with tight device and
host capacities, and a saturated run (device and host full) shows the scans and calls it saves.
"""

from __future__ import annotations

import math

import pytest
from hypothesis import HealthCheck, given, settings

from policy import POLICIES, SchedulerConfig
from policy.walk_state import WalkState
from tests.policy.policy_strategies import scenarios
from tests.policy.policy_testkit import Engine, Scenario, ToyCost


class _NoBound(dict):
    """Every job may get any room: the bound never refuses."""

    def __getitem__(self, key):
        return math.inf

    def __setitem__(self, key, value):
        pass


class _UnboundedWalk(WalkState):
    __slots__ = ()

    def reset_room_bound(self) -> None:
        self.room_bound = _NoBound()


def unbounded(cls):
    class Unbounded(cls):
        def __init__(self, *args, **kwargs) -> None:
            super().__init__(*args, **kwargs)
            self.walk_state = _UnboundedWalk()

    return Unbounded


def _run(sc: Scenario, cls) -> Engine:
    e = Engine(cls(sc.config, ToyCost()), sc.jobs())
    e.run()
    return e


@settings(max_examples=500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(scenarios(max_jobs=14))
def test_the_bound_never_changes_a_plan(sc):
    cls = POLICIES[sc.policy]
    bounded, plain = _run(sc, cls), _run(sc, unbounded(cls))
    assert bounded.plans == plain.plans
    assert bounded.results() == plain.results()


def _count_scans(sc: Scenario, cls) -> tuple[int, Engine]:
    """Run `sc`; count the ranks computed inside `_secure_device_kv`: the asking job's, then
    each device job a victim scan passes."""
    ranked, inside = [], [False]

    class Counting(cls):
        def _secure_device_kv(self, *args):
            inside[0] = True
            try:
                return super()._secure_device_kv(*args)
            finally:
                inside[0] = False

        @staticmethod
        def _rank(job):
            if inside[0]:
                ranked.append(job.id)
            return cls._rank(job)

    engine = _run(sc, Counting)
    return len(ranked), engine


@pytest.mark.parametrize("policy", ["mlfq", "skip-join-mlfq"])
def test_a_saturated_run_scans_far_less(policy):
    """Device and host both full, 120 jobs at once: every decision walks host jobs that cannot
    come back. Without the bound each one scans the device for victims; with it the first
    failure settles the rest."""
    cfg = SchedulerConfig(device_kv_tokens=600, host_kv_tokens=300, max_batch_size=8, max_seq_tokens=64,
                          swap="proactive", swap_reserve_fraction=0.1, base_quantum_s=0.001, num_levels=3)
    trace = tuple((i, 0, 10 + (7 * i) % 20, 10 + (5 * i) % 30) for i in range(120))
    sc = Scenario(policy, cfg, trace)
    bounded_scans, bounded = _count_scans(sc, POLICIES[policy])
    plain_scans, plain = _count_scans(sc, unbounded(POLICIES[policy]))
    assert bounded.plans == plain.plans and bounded.results() == plain.results()
    assert bounded_scans < plain_scans / 5, (bounded_scans, plain_scans)


@pytest.mark.parametrize("policy", ["mlfq", "skip-join-mlfq"])
def test_host_jobs_past_the_bound_cost_no_placement_call(policy):
    """The saturated run again: once a failed scan bounds the room, the host jobs that need
    more are refused by the walk itself, the same plans at a fraction of the calls."""
    cfg = SchedulerConfig(device_kv_tokens=600, host_kv_tokens=300, max_batch_size=8, max_seq_tokens=64,
                          swap="proactive", swap_reserve_fraction=0.1, base_quantum_s=0.001, num_levels=3)
    trace = tuple((i, 0, 10 + (7 * i) % 20, 10 + (5 * i) % 30) for i in range(120))
    sc = Scenario(policy, cfg, trace)
    counts = {}
    engines = {}
    for name, cls in (("bounded", POLICIES[policy]), ("plain", unbounded(POLICIES[policy]))):
        calls = [0]

        class Counting(cls):
            def _secure_device_kv(self, *args, _calls=calls):
                _calls[0] += 1
                return super()._secure_device_kv(*args)

        engines[name] = _run(sc, Counting)
        counts[name] = calls[0]
    assert engines["bounded"].plans == engines["plain"].plans
    assert engines["bounded"].results() == engines["plain"].results()
    assert counts["bounded"] < counts["plain"] / 2, counts  # mlfq: 1,949 calls against 4,429
