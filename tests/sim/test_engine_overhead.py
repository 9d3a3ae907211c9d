"""A measured engine's per-plan costs and clock noise in the simulator: exact timelines.

PlanCost is the toy cost model (toy.py) plus the per-plan terms of a measured profile: before a
plan's first iteration 200 us + 50 us per admitted request + 30 us per job + 70 us if it is
pure decode; after its last iteration 40 us + 20 us per finished request + 10 us per job.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

import profiles
from analysis.validation import batch_of
from policy import SchedulerConfig
from sim import SimConfig, simulate
from tests.profiles.builders import small_profile
from tests.sim.toy import ListTrace, ToyCost, jobs_of

STEP = SimConfig(skip=False, record_iterations=True)


@dataclass
class PlanCost(ToyCost):
    policies_asked: tuple = ()

    def plan_overhead_s(self, num_admitted: int, pure_decode: bool = False, num_jobs: int = 0) -> float:
        return (200 + 50 * num_admitted + 30 * num_jobs + 70 * pure_decode) / 1e6

    def plan_end_overhead_s(self, num_finished: int, num_jobs: int = 0) -> float:
        return (40 + 20 * num_finished + 10 * num_jobs) / 1e6

    def for_policy(self, policy: str) -> PlanCost:
        return PlanCost(policies_asked=(*self.policies_asked, policy))


def timeline(result):
    it = result.iterations
    return [(round(a, 6), round(b, 6)) for a, b in zip(it.start_s, it.end_s, strict=True)]


def test_plan_costs_are_charged_before_the_first_and_after_the_last_iteration():
    # P=10, O=3 (toy: prefill 1200 us, decodes 1111 and 1112 us), one plan per iteration:
    # plan 1: 200 + 50 (admitted) + 30 = 280 -> [280, 1480]; its end: 40 + 10 = 50 -> 1530
    # plan 2 (pure decode): 200 + 30 + 70 = 300 -> [1830, 2941]; end 50 -> 2991
    # plan 3: 300 -> [3291, 4403], the request finishes at 4403 (before the wrap-up 40 + 20 + 10)
    r = simulate(ListTrace.of([(0.0, 10, 3)]), PlanCost(), "fcfs", SchedulerConfig(), STEP)
    assert timeline(r) == [(0.00028, 0.00148), (0.00183, 0.002941), (0.003291, 0.004403)]
    assert jobs_of(r)[0]["finish_s"] == 0.004403


def test_a_plan_reused_by_event_skipping_pays_once():
    # the two decodes are one plan: 300 us before them, none between
    r = simulate(ListTrace.of([(0.0, 10, 3)]), PlanCost(), "fcfs", SchedulerConfig(),
                 SimConfig(record_iterations=True))
    assert timeline(r) == [(0.00028, 0.00148), (0.00183, 0.004053)]  # 1830 + 1111 + 1112


def test_a_prefill_plan_repeats_as_decodes_only_when_no_planning_is_priced():
    # vLLM-FCFS repeats its one-prefill plan as decodes (one decision for all 3 iterations:
    # 1200 + 1111 + 1112 us), unless the cost model prices planning: the live engine plans again
    # after a prefill, so the simulator does too (two, the overhead before each). Both runs also
    # decide once with nothing to run before the arrival and once after the finish.
    trace = ListTrace.of([(0.0, 10, 3)])
    free = simulate(trace, ToyCost(), "vllm-fcfs", SchedulerConfig(), SimConfig(record_iterations=True))
    assert (free.stats["num_decisions"], free.stats["num_skipped_iterations"]) == (3, 2)
    assert timeline(free) == [(0.0, 0.0012), (0.0012, 0.003423)]  # the prefill's row, then the decodes'
    assert free.iterations["num_prefills"].tolist() == [1, 0]
    assert free.iterations["num_iterations"].tolist() == [1, 2]
    priced = simulate(trace, PlanCost(), "vllm-fcfs", SchedulerConfig(), SimConfig(record_iterations=True))
    assert (priced.stats["num_decisions"], priced.stats["num_skipped_iterations"]) == (4, 1)
    assert timeline(priced) == [(0.00028, 0.00148), (0.00183, 0.004053)]


def test_simulate_prices_the_policy_with_its_own_overhead():
    cost = PlanCost()
    seen = []
    cost.for_policy = lambda policy: seen.append(policy) or PlanCost()
    simulate(ListTrace.of([(0.0, 10, 3)]), cost, "skip-join-mlfq", SchedulerConfig(), STEP)
    assert seen == ["skip-join-mlfq"]


def test_clock_noise_spreads_iterations_identically_with_and_without_skipping():
    noise = (0.9, 1.0, 1.0, 1.3)
    cost = profiles.cost_model(small_profile(forward_noise=noise))
    trace = ListTrace.of([(0.0, 16, 40), (0.0, 16, 30), (0.001, 64, 20)])
    runs = [simulate(trace, cost, "fcfs", SchedulerConfig(), SimConfig(skip=skip, record_iterations=True))
            for skip in (True, False)]
    assert jobs_of(runs[0]) == jobs_of(runs[1])
    # stepping: iteration k lasts its typical time x noise group floor(4 * frac(k * phi))
    it = runs[1].iterations
    got = np.round((it["end_s"] - it["start_s"]).to_numpy() * 1e6).astype(int).tolist()
    want = []
    for k, row in enumerate(it.itertuples()):
        prompts, contexts = batch_of(row.batch_size, row.num_prefills, row.prefill_tokens, row.decode_context_tokens)
        group = min(int((k * 0.6180339887498949) % 1.0 * 4), 3)
        want.append(max(1, round(cost.iteration_s(prompts, contexts) * noise[group] * 1e6)))
    assert got == want
    assert {min(int((k * 0.6180339887498949) % 1.0 * 4), 3) for k in range(len(it))} == {0, 1, 2, 3}
