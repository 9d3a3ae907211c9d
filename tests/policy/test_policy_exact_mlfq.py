"""Exact plans for MLFQ and skip-join MLFQ, driven by hand: demotion, the paper's starvation
promotion (checked every iteration and every 3), skip-join levels, horizon and advance. The
default promotion (a whole quantum, checks on the policy's clock) and q_1 = "auto" are in
test_policy_exact_promotion.py.

Quanta in every test: base 10 ms, growth 2, 3 levels -> q = [10, 20, 40] ms. Expected values
are worked out in the comments from policy/mlfq.py's documented rules."""

from __future__ import annotations

from policy import Horizon
from tests.policy.policy_testkit import ToyCost, expect, job, mlfq, plan_ids


def test_quanta_follow_base_and_growth():
    assert mlfq().quantum_us == [10_000, 20_000, 40_000]
    assert mlfq(quantum_growth=3.0, num_levels=4).quantum_us == [10_000, 30_000, 90_000, 270_000]


def _demote_then_starve(period: int):
    """J1 runs alone and sinks to level 2; J2 arrives and runs at levels 0 and 1 meanwhile."""
    s = mlfq(alpha_s=0.015, starvation_check_iterations=period, promotion="paper")
    j1, j2 = job(1, 4, 100), job(2, 4, 100, arrival_s=0.025)
    s.add(j1, 0.0)
    p = s.schedule(0.0)
    assert plan_ids(p) == expect(batch=[1], prefill=[1])
    s.on_iteration_done(p, 0.010, 0.010)  # 10 ms >= q0: down to level 1, attained reset
    assert (j1.level, j1.attained_us) == (1, 0)
    p = s.schedule(0.010)
    assert plan_ids(p) == expect(batch=[1])
    s.add(j2, 0.025)  # arrives during J1's 20 ms iteration
    s.on_iteration_done(p, 0.030, 0.020)  # 20 ms >= q1: level 2
    assert (j1.level, j2.level) == (2, 0)
    # J2 (level 0, fresh) preempts J1, which starts waiting at 30 ms.
    p = s.schedule(0.030)
    assert plan_ids(p) == expect(batch=[2], prefill=[2])
    assert (j1.num_preemptions, j1.waiting_since_us) == (1, 30_000)
    s.on_iteration_done(p, 0.040, 0.010)
    assert j2.level == 1
    # J1 has waited 10 ms < alpha = 15 ms: no promotion; J2 (level 1) beats J1 (level 2).
    p = s.schedule(0.040)
    assert plan_ids(p) == expect(batch=[2])
    assert j1.level == 2
    s.on_iteration_done(p, 0.045, 0.005)
    return s, j1, j2


def test_starvation_promotion_checked_every_iteration():
    s, j1, j2 = _demote_then_starve(period=1)
    # 45 - 30 = 15 ms >= alpha: J1 goes back to level 0 and runs; J2 is preempted.
    p = s.schedule(0.045)
    assert plan_ids(p) == expect(batch=[1])
    assert (j1.level, j1.attained_us, j2.level) == (0, 0, 1)
    assert (j2.num_preemptions, j2.waiting_since_us) == (1, 45_000)
    # Horizon: J1 may run until its level-0 quantum (10 ms) is used, which comes before J2's
    # promotion (45 + 15 - 45 = 15 ms). Memory bound: proactive reserve ceil(0.05 * 65536) =
    # 3277 blocks (J2 could be swapped out); used = J1 6 (4 + 2 tokens) + J2 5 = 11; room =
    # 65536 - 11 - 3277 = 62248 extra blocks at one per iteration after the first -> 62249.
    assert (j1.device_blocks, j2.device_blocks) == (6, 5)
    assert s.horizon(p, 0.045) == Horizon(62_249, 0.010)
    s.on_iteration_done(p, 0.050, 0.005)
    p = s.schedule(0.050)  # J2 has waited 5 ms only
    assert plan_ids(p) == expect(batch=[1])
    assert (j1.level, j2.level) == (0, 1)


def test_starvation_promotion_waits_for_the_check_period():
    s, j1, j2 = _demote_then_starve(period=3)
    # The check ran at the schedule after iteration 3 (at 40 ms, too early for J1); the next
    # one is after iteration 6. Meanwhile J2 keeps level 1 (5 + 5 + 5 ms < 20 ms).
    assert s.num_iterations == 4
    p = s.schedule(0.045)
    assert plan_ids(p) == expect(batch=[2])
    assert j1.level == 2
    # Pure decode: at most 2 more iterations before the check (3 - 4 % 3); the quantum left is
    # 20 - 5 = 15 ms; promotion time is not a deadline when the period is > 1.
    assert s.horizon(p, 0.045) == Horizon(2, 0.015)
    s.advance(p, 0.055, 2, 0.010, [5_000, 10_000])  # both at once, as event skipping would
    assert (s.num_iterations, j2.generated_tokens, j2.attained_us, j2.level) == (6, 4, 15_000, 1)
    # Iteration 6 done: the check promotes J1, which has waited 25 ms = alpha + two iterations.
    p = s.schedule(0.055)
    assert plan_ids(p) == expect(batch=[1])
    assert (j1.level, j2.level, j2.num_preemptions) == (0, 1, 1)


def test_skip_join_levels_from_predicted_prefill_time():
    # prefill_s = 2 ms + 0.1 ms/token; a job joins the highest level whose quantum covers it.
    s = mlfq("skip-join-mlfq", ToyCost(a_s=0.002, b_s=0.0001))
    levels = {}
    for jid, prompt in enumerate((50, 80, 81, 180, 181, 500)):
        j = job(jid, prompt, 10)
        s.add(j, 0.0)
        levels[prompt] = j.level
    # 7 ms -> 0; 10 ms -> 0 (boundary, q0 >= 10 ms); 10.1 ms -> 1; 20 ms -> 1; 20.1 ms -> 2;
    # 52 ms exceeds every quantum -> the last level.
    assert levels == {50: 0, 80: 0, 81: 1, 180: 1, 181: 2, 500: 2}
    assert s.level_counts() == [2, 2, 2]


def test_skip_join_lets_short_jobs_pass_a_long_prompt():
    cost = ToyCost(a_s=0.002, b_s=0.0001)
    long_, short = (100, 10), (10, 2)  # prefill 12 ms and 3 ms

    # Naive MLFQ: both join level 0, FIFO: the long prompt runs first and is demoted right after
    # its 12 ms prefill.
    s = mlfq()
    j1, j2 = job(1, *long_), job(2, *short)
    s.add(j1, 0.0)
    s.add(j2, 0.0)
    p = s.schedule(0.0)
    assert plan_ids(p) == expect(batch=[1], prefill=[1])
    s.on_iteration_done(p, 0.012, 0.012)
    assert j1.level == 1
    assert plan_ids(s.schedule(0.012)) == expect(batch=[2], prefill=[2])

    # Skip-join: the long prompt joins level 1, the short one runs at once and finishes; the long
    # one then prefills at level 1 and stays there (12 ms < 20 ms).
    s = mlfq("skip-join-mlfq", cost)
    j1, j2 = job(1, *long_), job(2, *short)
    s.add(j1, 0.0)
    s.add(j2, 0.0)
    assert (j1.level, j2.level) == (1, 0)
    p = s.schedule(0.0)
    assert plan_ids(p) == expect(batch=[2], prefill=[2])
    s.on_iteration_done(p, 0.003, 0.003)
    p = s.schedule(0.003)
    assert plan_ids(p) == expect(batch=[2])
    assert s.on_iteration_done(p, 0.004, 0.001) == [j2]
    p = s.schedule(0.004)
    assert plan_ids(p) == expect(batch=[1], prefill=[1])
    s.on_iteration_done(p, 0.016, 0.012)
    assert (j1.level, j1.attained_us) == (1, 12_000)
