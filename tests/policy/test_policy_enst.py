"""Proactive swapping picks the same jobs as the definition, fast.

The definition (`Scheduler._enst_key`): offload the device job outside the batch with the
largest (ENST, rank), upload the host job with the smallest (ENST, rank). The schedulers find
them through rank-ordered indexes and early-stopping scans (`_offload_order`, `_upload_order`);
here a brute-force subclass evaluates every candidate, and both must plan identically.
"""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings

from policy import POLICIES, KVLocation, SchedulerConfig
from tests.policy.policy_strategies import proactive_scenarios
from tests.policy.policy_testkit import Engine, Scenario, ToyCost


def brute_force(cls):
    class BruteForce(cls):
        def _offload_order(self, batch_ids, now_us):
            candidates = [j for j in self.locations.device.values() if j.kv is KVLocation.DEVICE
                          and j.id not in batch_ids and j.id not in self._in_flight]
            return iter(sorted(candidates, key=lambda j: (self._enst_key(j, now_us), self._rank(j)),
                               reverse=True))

        def _upload_order(self, now_us):
            candidates = [j for j in self.locations.host.values() if j.kv is KVLocation.HOST]
            return iter(sorted(candidates, key=lambda j: (self._enst_key(j, now_us), self._rank(j))))

    return BruteForce


def _run(sc: Scenario, cls) -> Engine:
    e = Engine(cls(sc.config, ToyCost()), sc.jobs())
    e.run()
    return e


@settings(max_examples=600, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(proactive_scenarios())
def test_fast_enst_selection_matches_brute_force(sc):
    cls = POLICIES[sc.policy]
    fast, slow = _run(sc, cls), _run(sc, brute_force(cls))
    assert fast.plans == slow.plans
    assert fast.results() == slow.results()


@pytest.mark.parametrize("policy", ["mlfq", "skip-join-mlfq", "srpt", "vllm-fcfs"])
def test_brute_force_reference_is_exercised(policy):
    """A loaded proactive run swaps both ways, so the comparison above is not vacuous."""
    cfg = SchedulerConfig(device_kv_tokens=70, host_kv_tokens=1000, max_batch_size=2,
                          max_seq_tokens=64, swap="proactive", swap_reserve_fraction=0.3,
                          base_quantum_s=0.002, num_levels=3, alpha_s=0.01,
                          starvation_check_iterations=1)
    trace = tuple((i, 1000 * i, 10 + (7 * i) % 25, 5 + (11 * i) % 20) for i in range(16))
    sc = Scenario(policy, cfg, trace)
    fast, slow = _run(sc, POLICIES[policy]), _run(sc, brute_force(POLICIES[policy]))
    assert fast.plans == slow.plans and fast.results() == slow.results()
    assert sum(len(p["swap_out"]) for p in fast.plans) > 0
    assert sum(len(p["swap_in"]) for p in fast.plans) > 0
