"""Exact plans for the rules of issue 14: q_1 = "auto", starvation checks on the policy's clock,
promotion for a whole quantum, promoted jobs that may not evict, compute that never waits for a
swap-out in proactive mode, ENST of just-preempted jobs, and vLLM's self-preemption and
watermark. Expected values are worked out in the comments from policy/mlfq.py, policy/placement.py
and policy/fcfs.py."""

from __future__ import annotations

import pytest

from policy import Horizon, SchedulerConfig, make_scheduler
from policy.job import Job, KVLocation
from tests.policy.policy_testkit import ToyCost, expect, job, mlfq, plan_ids

PROFILES = pytest.importorskip("profiles")

# Per bundled profile: q_1 in us (the shortest iteration), and the skip-join level of prompts of
# 1, 32, 128 and 512 tokens with q_1 = "auto" and with the artifact's 10 ms.
JOIN_LEVELS = {
    "opt-13b_a100-40gb_tp1": (21_821, [0, 1, 1, 2], [2, 2, 2, 3]),
    "opt-13b_a100-80gb_tp1": (17_279, [0, 1, 1, 2], [1, 1, 2, 3]),
    "llama-2-7b_h100-sxm_tp1": (5_630, [0, 1, 1, 2], [0, 0, 0, 1]),
    "tiny-llama_cpu_tp1": (451, [1, 1, 2, 4], [0, 0, 0, 0]),
    "tiny-opt_cpu_tp1": (340, [1, 1, 2, 4], [0, 0, 0, 0]),
}


@pytest.mark.parametrize("name", sorted(JOIN_LEVELS))
def test_auto_q1_is_the_profiles_shortest_iteration_and_sets_the_join_levels(name):
    q1_us, auto_levels, artifact_levels = JOIN_LEVELS[name]
    cost = PROFILES.cost_model(PROFILES.load_profile(name))
    auto = make_scheduler("skip-join-mlfq", SchedulerConfig(), cost)
    artifact = make_scheduler("skip-join-mlfq", SchedulerConfig(base_quantum_s=0.010), cost)
    assert auto.quantum_us[:3] == [q1_us, round(2 * cost.min_iteration_s() * 1e6), round(4 * cost.min_iteration_s() * 1e6)]
    assert auto.quantum_us[0] == q1_us
    prompts = (1, 32, 128, 512)
    assert [auto.join_level(Job(0, 0.0, p, 1)) for p in prompts] == auto_levels
    assert [artifact.join_level(Job(0, 0.0, p, 1)) for p in prompts] == artifact_levels


def _starve(**kw):
    """Quanta 10, 20, 40 ms, alpha 15 ms. J1 runs alone and sinks to level 2 by 30 ms; J2
    arrives at 25 ms and runs from 30 ms, so J1 waits from 30 ms."""
    s = mlfq(alpha_s=0.015, **kw)
    j1, j2 = job(1, 4, 100), job(2, 4, 100, arrival_s=0.025)
    s.add(j1, 0.0)
    p = s.schedule(0.0)
    s.on_iteration_done(p, 0.010, 0.010)
    p = s.schedule(0.010)
    s.add(j2, 0.025)
    s.on_iteration_done(p, 0.030, 0.020)
    p = s.schedule(0.030)
    assert plan_ids(p) == expect(batch=[2], prefill=[2])
    assert (j1.level, j1.waiting_since_us) == (2, 30_000)
    s.on_iteration_done(p, 0.040, 0.010)
    p = s.schedule(0.040)  # J1 has waited 10 ms < 15
    assert plan_ids(p) == expect(batch=[2])
    s.on_iteration_done(p, 0.045, 0.005)
    return s, j1, j2


def test_a_promoted_job_keeps_the_top_level_for_its_home_quantum():
    s, j1, j2 = _starve()
    # 45 ms: J1 has waited 15 ms: to level 0, remembering level 2; J2 is preempted.
    p = s.schedule(0.045)
    assert plan_ids(p) == expect(batch=[1])
    assert (j1.level, j1.home_level, j1.attained_us) == (0, 2, 0)
    # J1 may use q_2 = 40 ms at the top, but J2 is promoted at 45 + 15 = 60 ms first.
    assert s.horizon(p, 0.045).deadline_s == 0.015
    now = 0.045
    for _ in range(7):  # 5 ms iterations: J2 promoted at 60 ms, queued behind J1 (level 0 both)
        s.on_iteration_done(p, now + 0.005, 0.005)
        now += 0.005
        p = s.schedule(now)
        assert plan_ids(p) == expect(batch=[1])
    assert (j1.level, j1.attained_us, j2.level, j2.home_level) == (0, 40_000 - 5_000, 0, 1)
    # 85 ms: J1 has had its 40 ms and goes home to level 2 (not to level 1); J2 runs.
    s.on_iteration_done(p, 0.085, 0.005)
    p = s.schedule(0.085)
    assert plan_ids(p) == expect(batch=[2])
    assert (j1.level, j1.home_level, j1.attained_us) == (2, -1, 0)
    # J2 waited from 45 to 85 ms: alpha (15 ms) plus the rest of J1's quantum (25 ms).
    s.on_iteration_done(p, 0.105, 0.020)  # q_1 = 20 ms used: home to level 1
    assert (j2.level, j2.home_level) == (1, -1)


def test_the_paper_promotion_starts_the_top_level_afresh():
    s, j1, j2 = _starve(promotion="paper")
    p = s.schedule(0.045)
    assert plan_ids(p) == expect(batch=[1])
    assert (j1.level, j1.home_level) == (0, -1)
    assert s.horizon(p, 0.045).deadline_s == 0.010  # q_0, then level 1 like a new job
    s.on_iteration_done(p, 0.055, 0.010)
    assert j1.level == 1


def test_starvation_checks_fall_on_the_policys_clock():
    # Every 20 ms of policy time: J1 is due at 45 ms and promoted at the check at 60 ms.
    s, j1, j2 = _starve(starvation_check_s=0.020)
    p = s.schedule(0.045)
    assert plan_ids(p) == expect(batch=[2])
    # J2's quantum left (20 - 5 = 15 ms) and J1's promotion at the 60 ms check (15 ms away)
    assert s.horizon(p, 0.045) == Horizon(62_249, 0.015)
    s.on_iteration_done(p, 0.055, 0.010)
    p = s.schedule(0.055)
    assert (plan_ids(p), j1.level) == (expect(batch=[2]), 2)
    s.on_iteration_done(p, 0.060, 0.005)
    p = s.schedule(0.060)
    assert plan_ids(p) == expect(batch=[1])
    assert (j1.level, j1.home_level) == (0, 2)


def test_a_promoted_job_off_the_device_takes_free_room_only_and_first():
    # 30 blocks, no reserve, batches of 2; quanta 10/20/40 ms, alpha 15 ms.
    s = mlfq(device_kv_tokens=30, host_kv_tokens=100, swap="proactive", swap_reserve_fraction=0.0,
             max_batch_size=2, alpha_s=0.015, max_seq_tokens=30)
    kv = s.kv
    j1, j2, j3 = job(1, 10, 14), job(2, 10, 14), job(3, 10, 14, arrival_s=0.010)
    j4 = job(4, 3, 2, arrival_s=0.040)
    s.add(j1, 0.0)
    s.add(j2, 0.0)
    p = s.schedule(0.0)
    s.on_iteration_done(p, 0.010, 0.010)  # J1, J2 -> level 1
    s.add(j3, 0.010)
    # J3 (level 0) prefills into the 10 free blocks; J1 (+1) must evict J2 (the lowest) and sits
    # out, holding its slot, until J2's swap-out lands (compute never waits for it).
    p = s.schedule(0.010)
    assert plan_ids(p) == expect(batch=[3], prefill=[3], swap_out=[2])
    s.on_swap_done(j2, 0.012)
    s.on_iteration_done(p, 0.020, 0.010)
    p = s.schedule(0.020)  # J3 -> level 1 after J2: J2 comes back, J3 goes out, J1 runs
    assert plan_ids(p) == expect(batch=[1], swap_out=[3], swap_in=[2])
    for j in (j2, j3):
        s.on_swap_done(j, 0.022)
    s.on_iteration_done(p, 0.030, 0.010)
    p = s.schedule(0.030)
    s.on_iteration_done(p, 0.040, 0.010)
    s.add(j4, 0.040)
    # 40 ms: J3 has waited 20 ms on the host: promoted (home 1), its seq after J4's. 23 blocks
    # used leave 7: J4 (3 tokens) prefills, ahead by seq; J3 needs 11 and may not evict anyone.
    p = s.schedule(0.040)
    assert plan_ids(p) == expect(batch=[2, 4], prefill=[4])
    assert (j3.level, j3.home_level, j3.kv) == (0, 1, KVLocation.HOST)
    assert kv.releasing_blocks == 0
    now = 0.040
    while j3.kv is KVLocation.HOST:  # no swap-out is ever made for J3
        for j in p.swap_out:
            assert j.id != 3
            s.on_swap_done(j, now + 0.002)
        if p.batch:
            s.on_iteration_done(p, now + 0.010, 0.010)
        now += 0.010
        p = s.schedule(now)
    # It uploads once room frees (J1, itself promoted later, evicted J2 to grow), at 100 ms.
    assert (round(now * 1000), plan_ids(p)) == (100, expect(batch=[1], swap_in=[3]))


def test_left_out_jobs_wait_before_proactive_swapping_ranks_them():
    # Two resident jobs at level 1 and a new one that takes the only slot: J1, left out, is
    # waiting from now on, so its ENST is min(T_promote = alpha, T_execute).
    s = mlfq(device_kv_tokens=100, host_kv_tokens=100, alpha_s=0.005, num_levels=2, max_batch_size=1)
    j1, j2 = job(1, 5, 50), job(2, 5, 50, arrival_s=0.010)
    s.add(j1, 0.0)
    p = s.schedule(0.0)
    s.on_iteration_done(p, 0.010, 0.010)  # J1 -> level 1
    s.add(j2, 0.010)
    p = s.schedule(0.010)
    assert plan_ids(p) == expect(batch=[2], prefill=[2])
    assert j1.id in s._waiting and j1.waiting_since_us == 10_000
    assert s._enst_key(j1, 10_000) == 5_000  # T_promote; T_execute = q0 / 1 batch = 10 ms


def test_vllm_fcfs_preempts_the_newest_job_itself_and_keeps_a_watermark():
    s = make_scheduler("vllm-fcfs", SchedulerConfig(device_kv_tokens=19, max_batch_size=2, max_seq_tokens=19))
    j1, j2 = job(1, 8, 5), job(2, 8, 5)
    s.add(j1, 0.0)
    s.add(j2, 0.0)
    p = s.schedule(0.0)  # 16 of 19 blocks
    s.on_iteration_done(p, 0.010, 0.010)
    p = s.schedule(0.010)  # both grow to 9: 18
    s.on_iteration_done(p, 0.020, 0.010)
    # J1 grows to 10 (19 used); J2, the newest, cannot grow and has nobody behind it: it drops
    # its own KV and goes back to the waiting queue (it keeps its place ahead of later arrivals).
    p = s.schedule(0.020)
    assert plan_ids(p) == expect(batch=[1], recompute=[2])
    assert (j2.kv, j2.num_recomputes, s.kv.device_used_blocks) == (KVLocation.NONE, 1, 10)
    # Watermark: int(1 % of 200) = 2 blocks stay free after an admission.
    s = make_scheduler("vllm-fcfs", SchedulerConfig(device_kv_tokens=200, max_batch_size=4, max_seq_tokens=200))
    assert s.watermark_blocks == 2
    s.add(job(1, 100, 5), 0.0)
    s.add(job(2, 99, 5), 0.0)
    p = s.schedule(0.0)  # 100 + 99 = 199 > 198
    assert plan_ids(p) == expect(batch=[1], prefill=[1])


def test_mlfq_promotion_with_a_cost_estimate_uses_auto_q1():
    s = make_scheduler("mlfq", SchedulerConfig(num_levels=3), ToyCost())
    assert s.quantum_us == [2_100, 4_200, 8_400]  # ToyCost's prefill of one token
