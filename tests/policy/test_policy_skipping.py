"""Event skipping: `horizon` + `advance` give exactly the per-job results of stepping one
iteration at a time.

The skipping engine (policy_testkit.Engine with skip=True) repeats a plan only when it is pure
decode, no transfer is in flight, and n <= horizon.max_iterations, n <= the smallest remaining
output of the batch, and the first n - 1 iterations end strictly before horizon.deadline_s and
strictly before the next arrival. Iteration times are whole microseconds, so sums are exact.
"""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings

from policy import Job, SchedulerConfig, make_scheduler
from policy.fcfs import VLLMFCFS
from policy.mlfq import SkipJoinMLFQ
from tests.policy.policy_strategies import proactive_scenarios, scenarios
from tests.policy.policy_testkit import Scenario, ToyCost, expect


def _compare(sc: Scenario):
    step, skip = sc.run(skip=False), sc.run(skip=True)
    assert skip.results() == step.results()  # first token, finish, counters, level history
    assert skip.num_iterations == step.num_iterations
    assert skip.num_schedule_calls <= step.num_schedule_calls
    return step, skip


@settings(max_examples=1000, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(scenarios())
def test_skipping_matches_stepping(sc):
    _compare(sc)


@settings(max_examples=600, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(proactive_scenarios())
def test_skipping_matches_stepping_under_proactive_swapping(sc):
    _compare(sc)


def test_skipping_actually_skips():
    # Two long decodes under MLFQ with quanta 10, 20, 40 ms: many iterations fit in a quantum.
    cfg = SchedulerConfig(num_levels=3, base_quantum_s=0.010, max_batch_size=2,
                          starvation_check_iterations=1, alpha_s=0.050)
    sc = Scenario("mlfq", cfg, ((0, 0, 10, 60), (1, 0, 20, 60), (2, 30_000, 5, 40)))
    step, skip = _compare(sc)
    assert skip.num_schedule_calls * 4 < step.num_schedule_calls
    levels = step.results()[0].levels
    assert levels[:3] == [0, 1, 2]  # demotions happened inside skipped stretches


def test_upload_order_change_ends_a_skip():
    """Regression (found by test_skipping_matches_stepping): proactive uploads go in ENST order
    and MLFQ's ENST shrinks as a host job nears its promotion. Here, at 34.5 ms, jobs 3 and 9 are
    on the host and the leader (3) does not fit above the 20-block reserve; one iteration later
    job 9 leads and fits, so stepping uploads it while a skip over that decision did not."""
    cfg = SchedulerConfig(device_kv_tokens=50, host_kv_tokens=1000, max_batch_size=1,
                          max_seq_tokens=64, swap="proactive", swap_reserve_fraction=0.4,
                          base_quantum_s=0.005, num_levels=2, alpha_s=0.01,
                          starvation_check_iterations=2, promotion="paper")
    lengths = [(1, 10), (1, 1), (1, 1), (7, 6), (1, 1), (1, 1), (1, 1), (1, 6), (6, 6), (1, 6),
               (6, 1)]
    sc = Scenario("mlfq", cfg, tuple((i, 0, p, o) for i, (p, o) in enumerate(lengths)))
    step, skip = _compare(sc)
    # Since left-out jobs wait (and so have a T_promote) before proactive swapping ranks them,
    # this trace no longer reaches that decision; it stays as an input that swaps under ENST
    # order with skips in between.
    assert sum(r.num_swaps for r in step.results().values()) == 4
    assert skip.num_schedule_calls < step.num_schedule_calls


def test_demotions_in_one_skipped_iteration_follow_that_iterations_priority():
    """Found by test_skipping_matches_stepping: two jobs are all that is left, so a skip runs
    past demotions. Job 0 is demoted first, which puts job 3 ahead of it; when both are
    demoted at one later iteration, a stepping run demotes job 3 first (its batch is in
    priority order), and so must `advance`, not in the plan's original order."""
    cfg = SchedulerConfig(device_kv_tokens=64, host_kv_tokens=0, block_size_tokens=2, max_batch_size=5,
                          max_prefill_tokens=62, max_seq_tokens=64, swap_reserve_fraction=0.0,
                          base_quantum_s=0.001, quantum_growth=1.5, num_levels=3, alpha_s=0.003,
                          starvation_check_iterations=1)
    trace = ((0, 0, 22, 22), (1, 0, 40, 14), (2, 20000, 2, 3), (3, 20000, 7, 16), (4, 20000, 1, 1),
             (5, 20000, 1, 1), (6, 22000, 1, 1), (7, 22000, 1, 1), (8, 22000, 1, 1))
    step, skip = _compare(Scenario("skip-join-mlfq", cfg, trace))
    assert skip.num_schedule_calls < step.num_schedule_calls  # the long skip happened
    assert step.results()[3].finish_s < step.results()[0].finish_s  # job 3 ran ahead at the end


def test_a_skip_runs_past_demotions_that_keep_every_left_out_job_behind():
    """Job 2 ran alone down to the bottom level (3) before jobs 0 and 1 arrived and took the
    batch of 2. Their demotions to levels 1 and 2 leave job 2 behind both, so a skip runs past
    them (the batch only changes order); the one to level 3 files each behind job 2 and ends
    the skip. 15 decisions (a prefill plan repeats as its batch decoding); 17 with a decision
    after each prefill, 19 with one at every demotion as well."""
    cfg = SchedulerConfig(device_kv_tokens=4096, host_kv_tokens=0, max_batch_size=2, num_levels=4,
                          base_quantum_s=0.002, alpha_s=10.0)
    sc = Scenario("mlfq", cfg, ((0, 20_000, 1, 60), (1, 20_000, 1, 60), (2, 0, 1, 200)))
    step, skip = _compare(sc)
    assert skip.num_schedule_calls == 15 and step.num_schedule_calls == 233
    assert [step.results()[i].levels for i in range(3)] == [[0, 1, 2, 3]] * 3
    sched = sc.scheduler()
    assert sched._service_until_overtaken_us(Job(id=9, arrival_s=0, prompt_tokens=1, output_tokens=9), 3) == 14_000  # noqa: SLF001  (q0 + q1 + q2)


def test_service_until_overtaken_steps_by_the_demotion_levels():
    """With demotion_levels = 2 a job at level 0 passes through level 2 on its way down: its
    quantum left, then q2, before a demotion into level 4 or below; a promoted job goes home
    first (q_home left, then the levels below home)."""
    cfg = SchedulerConfig(device_kv_tokens=4096, host_kv_tokens=0, num_levels=6, demotion_levels=2,
                          base_quantum_s=0.001, alpha_s=10.0)
    sched = Scenario("mlfq", cfg, ((0, 0, 1, 9),)).scheduler()
    job = Job(id=9, arrival_s=0, prompt_tokens=1, output_tokens=9)
    job.attained_us = 300
    assert sched._service_until_overtaken_us(job, 4) == 700 + 4_000  # noqa: SLF001  (q0 - 300 + q2)
    assert sched._service_until_overtaken_us(job, 2) == 700  # noqa: SLF001  (the first demotion reaches it)
    assert sched._service_until_overtaken_us(job, 5) == 700 + 4_000 + 16_000  # noqa: SLF001  (+ q4)
    job.level, job.home_level, job.attained_us = 0, 1, 0  # promoted from level 1: home, then 3
    assert sched._service_until_overtaken_us(job, 5) == 2_000 + 2_000 + 8_000  # noqa: SLF001  (q1 left, q1, q3)


def test_overtaken_tables_give_the_rule_for_every_level_and_home():
    """`deadline_us` looks the rule up in per-level tables; for every (level, home level,
    attained service) and every level left out they equal `_service_until_overtaken_us`."""
    cfg = SchedulerConfig(device_kv_tokens=4096, host_kv_tokens=0, num_levels=6, demotion_levels=2,
                          base_quantum_s=0.001, alpha_s=10.0)
    sched = Scenario("mlfq", cfg, ((0, 0, 1, 9),)).scheduler()
    job = Job(id=9, arrival_s=0, prompt_tokens=1, output_tokens=9)
    for left_out in range(6):
        by_level, by_home = sched._overtaken_tables(left_out)  # noqa: SLF001
        for level in range(6):
            for home in (-1, *range(6)):
                job.level, job.home_level, job.attained_us = level, home, 250
                table = by_home[home] if home >= 0 else by_level[level]
                assert table - 250 == sched._service_until_overtaken_us(job, left_out)  # noqa: SLF001
    # left out at level 2: a job at level 0 or 1 is overtaken by its first demotion (its quantum);
    # one promoted from home 0 or 1 has its home quantum left, then the same quantum again at
    # home before a demotion reaches level 2
    assert sched._overtaken_tables(2) == ([1_000, 2_000, 4_000, 8_000, 16_000, 32_000],  # noqa: SLF001
                                          [2_000, 4_000, 4_000, 8_000, 16_000, 32_000])


def test_a_subclass_that_changes_the_overtaking_rule_is_asked_per_job():
    from policy.mlfq import MLFQ

    class Flat(MLFQ):
        name = "flat-mlfq-test"

        def _quantum_left_us(self, job: Job) -> int:
            return 5

    cfg = SchedulerConfig(device_kv_tokens=4096, host_kv_tokens=0, num_levels=4, base_quantum_s=0.001)
    assert Flat(cfg)._overtaken_tables is None  # noqa: SLF001
    assert Scenario("mlfq", cfg, ((0, 0, 1, 9),)).scheduler()._overtaken_tables is not None  # noqa: SLF001


def _two_prefills(device_kv_tokens: int):
    """vLLM-FCFS (block 1, no watermark at this size): job 1's 8-token prefill fills most of the
    10-token budget, so job 2 (8 tokens) is left out for the budget. The scenario, and the
    horizon of its first plan."""
    cfg = SchedulerConfig(device_kv_tokens=device_kv_tokens, block_size_tokens=1, max_prefill_tokens=10,
                          max_batch_size=4, max_seq_tokens=14)
    sc = Scenario("vllm-fcfs", cfg, ((1, 0, 8, 5), (2, 0, 8, 5)))
    sched = sc.scheduler()
    for j in sc.jobs():
        sched.add(j, 0.0)
    plan = sched.schedule(0.0)
    assert [j.id for j in plan.batch] == [1] and plan.prefill_ids == {1}
    assert sched.walk_state.budget_refused.id == 2
    return sc, sched.horizon(plan, 0.0)


def test_a_prefill_plan_repeats_as_decodes_when_free_room_refuses_the_next_prefill():
    # 14 blocks: after job 1's 8, the 6 free ones refuse job 2 at the next walk too, and job 1
    # grows to 12 tokens (8 + 4 more) within them: one decision covers its 5 iterations.
    sc, horizon = _two_prefills(14)
    assert horizon.max_iterations == 7  # 6 free blocks: 6 growths after the prefill
    step, skip = _compare(sc)
    assert step.plans[:2] == [expect([1], [1]), expect([1])]
    assert skip.plans[:2] == [expect([1], [1]), expect([2], [2])]
    assert (step.num_schedule_calls, skip.num_schedule_calls) == (10, 2)


def test_a_prefill_plan_ends_at_one_iteration_when_the_budget_alone_left_a_job_out():
    # 20 blocks: 12 stay free after job 1's prefill, so the next walk admits job 2 (budget renewed).
    sc, horizon = _two_prefills(20)
    assert horizon.max_iterations == 1
    step, skip = _compare(sc)
    assert skip.plans[1] == step.plans[1] == expect([1, 2], [2])


def test_only_policies_that_keep_the_walk_order_repeat_prefill_plans():
    for name in ("fcfs", "vllm-fcfs", "mlfq", "skip-join-mlfq"):
        assert make_scheduler(name, SchedulerConfig(), ToyCost()).repeats_prefill_plans, name
    for name in ("srpt", "sarathi"):
        assert not make_scheduler(name, SchedulerConfig(), ToyCost()).repeats_prefill_plans, name
    # only FCFS files a new job behind every unfinished one (runs past arrivals)
    assert [make_scheduler(name, SchedulerConfig(), ToyCost()).arrivals_rank_last
            for name in ("fcfs", "vllm-fcfs", "mlfq", "skip-join-mlfq")] == [True, True, False, False]

    class NewestFirstMLFQ(SkipJoinMLFQ):  # a user policy with its own order
        def _level_walks(self):
            return [reversed(list(level)) for level in super()._level_walks()]

    assert not NewestFirstMLFQ(SchedulerConfig(), ToyCost()).repeats_prefill_plans

    class NewestFirst(VLLMFCFS):  # a user policy with its own order
        def walk(self):
            return reversed(list(super().walk()))

    assert not NewestFirst(SchedulerConfig()).repeats_prefill_plans


def test_a_policy_with_an_upload_order_of_its_own_repeats_no_plan_an_upload_could_join():
    # the built-ins' orders are known to `_upload_lead_us` (rank; MLFQ's ENST)
    for name in ("fcfs", "vllm-fcfs", "mlfq", "skip-join-mlfq", "srpt", "sarathi"):
        assert make_scheduler(name, SchedulerConfig(), ToyCost())._upload_lead_known, name  # noqa: SLF001

    class SmallestFirst(VLLMFCFS):  # uploads the smallest host job first
        def _upload_order(self, now_us):
            return iter(sorted(super()._upload_order(now_us), key=lambda j: j.host_blocks))

    class SoonerPromotion(SkipJoinMLFQ):  # an ENST of its own
        def _t_promote_fn(self, now_us):
            return lambda job: 0.0

    for sched in (SmallestFirst(SchedulerConfig()), SoonerPromotion(SchedulerConfig(), ToyCost())):
        assert not sched._upload_lead_known  # noqa: SLF001
        assert sched._upload_lead_us(None, 10, 0) == 0  # noqa: SLF001


def test_a_prefill_plan_that_the_budget_cut_short_does_not_repeat_under_mlfq():
    """Found by test_skipping_matches_stepping_under_proactive_swapping when MLFQ's prefill plans
    repeated like FCFS's: the 8-token budget admits job 0's 11-token prompt alone and leaves
    job 1 out. At the next decision the budget is renewed and job 1, with MLFQ's right to evict
    lower-priority jobs for its room, comes in where free room alone would refuse it; so a
    plan whose budget refused a prefill does not repeat for a policy whose waiting jobs evict."""
    cfg = SchedulerConfig(device_kv_tokens=16, host_kv_tokens=1000, max_batch_size=2, max_prefill_tokens=8,
                          max_seq_tokens=64, swap="proactive", swap_reserve_fraction=0.1, quantum_growth=1.0,
                          num_levels=1, alpha_s=0.003)
    lengths = [(11, 4), (2, 1), (1, 1), (1, 1), (1, 2), (8, 1)] + [(1, 1)] * 8
    step, skip = _compare(Scenario("mlfq", cfg, tuple((i, 0, p, o) for i, (p, o) in enumerate(lengths))))
    assert (skip.num_schedule_calls, step.num_schedule_calls) == (12, 12)


def test_a_skip_ends_where_the_first_to_be_promoted_takes_the_upload_lead():
    """Found by hypothesis when a skip ignored MLFQ's upload hand-over (`_upload_lead_us`): jobs
    wait on the host, the upload order leads with one that does not fit above the reserve, and
    the first to be promoted, which fits, overtakes it as its T_promote falls; stepping uploads
    it at that decision, so the skip must end there."""
    cfg = SchedulerConfig(device_kv_tokens=60, host_kv_tokens=1000, max_batch_size=1, max_prefill_tokens=8,
                          max_seq_tokens=64, swap="proactive", swap_reserve_fraction=0.4, quantum_growth=1.0,
                          num_levels=4, alpha_s=0.01, promotion="paper")
    trace = ((0, 0, 1, 1), (1, 0, 1, 9), (2, 0, 27, 3), (3, 0, 1, 1), (4, 0, 9, 3), (5, 0, 2, 1), (6, 0, 2, 1))
    step, skip = _compare(Scenario("skip-join-mlfq", cfg, trace))
    assert (skip.num_schedule_calls, step.num_schedule_calls) == (12, 19)
