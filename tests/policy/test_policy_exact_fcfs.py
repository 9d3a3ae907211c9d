"""Exact plans for the FCFS baselines, driven by hand. Expected values are worked out in the
comments from the documented rules (policy/fcfs.py, policy/scheduler.py), not printed."""

from __future__ import annotations

import math

from policy import KVLocation, SchedulerConfig, make_scheduler
from tests.policy.policy_testkit import expect, job, plan_ids


def orca(**kw):
    base = dict(device_kv_tokens=100, host_kv_tokens=0, max_batch_size=2, max_prefill_tokens=50,
                max_seq_tokens=40)
    base.update(kw)
    return make_scheduler("fcfs", SchedulerConfig(**base))


def test_fcfs_runs_to_completion_with_max_seq_reservation():
    # Orca reserves max(context, max_seq_tokens) = 40 blocks per admitted job: 100 blocks hold 2.
    s = orca()
    j1, j2, j3 = job(1, 10, 3), job(2, 20, 2), job(3, 5, 1)
    for j in (j1, j2, j3):
        s.add(j, 0.0)

    # Arrival order; prefill 10 + 20 = 30 <= 50; batch of 2 is full before J3.
    p = s.schedule(0.0)
    assert plan_ids(p) == expect(batch=[1, 2], prefill=[1, 2])
    assert (s.kv.device_used_blocks, j1.device_blocks, j2.device_blocks) == (80, 40, 40)
    assert s.on_iteration_done(p, 0.005, 0.005) == []
    assert (j1.first_token_s, j2.first_token_s, j1.kv_tokens) == (0.005, 0.005, 10)

    # Both decode; the reservation covers growth, so no new blocks.
    p = s.schedule(0.005)
    assert plan_ids(p) == expect(batch=[1, 2])
    assert s.kv.device_used_blocks == 80
    h = s.horizon(p, 0.005)
    assert math.isinf(h.deadline_s) and h.max_iterations >= j1.remaining_tokens
    assert s.on_iteration_done(p, 0.010, 0.005) == [j2]  # J2 has its 2 tokens
    assert (j2.finish_s, j2.kv, j2.device_blocks, s.kv.device_used_blocks) == (
        0.010, KVLocation.NONE, 0, 40)

    # J1 (started, seq 1) then J3 (fresh, seq 3) in the freed reservation.
    p = s.schedule(0.010)
    assert plan_ids(p) == expect(batch=[1, 3], prefill=[3])
    assert s.kv.device_used_blocks == 80
    assert s.on_iteration_done(p, 0.015, 0.005) == [j1, j3]
    assert (j1.finish_s, j3.first_token_s, j3.finish_s) == (0.015, 0.015, 0.015)
    assert s.idle and s.kv.device_used_blocks == 0
    assert [j.num_preemptions for j in (j1, j2, j3)] == [0, 0, 0]
    assert [j.jct_s for j in (j1, j2, j3)] == [0.015, 0.010, 0.015]


def test_fcfs_kv_reservation_limits_admission_and_closes_prefill():
    # Batch of 3 allowed, but J3 needs 40 blocks and only 20 are left: it is refused (Orca
    # never preempts), prefill admission closes, and J4 may not jump ahead of J3.
    s = orca(max_batch_size=3)
    for j in (job(1, 10, 3), job(2, 20, 2), job(3, 5, 1), job(4, 5, 1)):
        s.add(j, 0.0)
    p = s.schedule(0.0)
    assert plan_ids(p) == expect(batch=[1, 2], prefill=[1, 2])
    assert s.kv.device_used_blocks == 80


def test_fcfs_prefill_budget_is_head_of_line():
    s = orca(device_kv_tokens=200, max_batch_size=8)
    j1, j2, j3 = job(1, 30, 5), job(2, 25, 5), job(3, 10, 5)
    for j in (j1, j2, j3):
        s.add(j, 0.0)
    # 30 fits the 50-token budget; 30 + 25 does not, so admission closes: J3 (10) waits too.
    p = s.schedule(0.0)
    assert plan_ids(p) == expect(batch=[1], prefill=[1])
    s.on_iteration_done(p, 0.001, 0.001)
    # J1 decodes (no prefill tokens); J2 25 + J3 10 = 35 <= 50.
    p = s.schedule(0.001)
    assert plan_ids(p) == expect(batch=[1, 2, 3], prefill=[2, 3])
    assert p.prefill_tokens == [25, 10] and p.decode_context_tokens == [31]
    assert p.token_lists() == ([25, 10], [31])  # both in one pass, as the simulator reads them


def test_lone_prefill_may_exceed_the_budget():
    s = orca(device_kv_tokens=400, max_seq_tokens=100, max_batch_size=8)
    s.add(job(1, 60, 5), 0.0)
    s.add(job(2, 1, 5), 0.0)
    # 60 > 50 alone is admitted (else it could never run); 60 + 1 > 50 closes admission.
    assert plan_ids(s.schedule(0.0)) == expect(batch=[1], prefill=[1])


def test_vllm_fcfs_preempts_the_newest_and_recomputes():
    # KV token by token, 24 blocks; default swap mode is recompute.
    s = make_scheduler("vllm-fcfs", SchedulerConfig(device_kv_tokens=24, host_kv_tokens=0,
                                                     max_batch_size=4))
    assert s.swap_mode == "recompute"
    j1, j2, j3 = job(1, 10, 5), job(2, 10, 5), job(3, 8, 2)
    for j in (j1, j2, j3):
        s.add(j, 0.0)

    # 10 + 10 blocks; J3 needs 8 > 4 free and no victim outside the batch: refused.
    p = s.schedule(0.000)
    assert plan_ids(p) == expect(batch=[1, 2], prefill=[1, 2])
    assert s.kv.device_used_blocks == 20
    s.on_iteration_done(p, 0.001, 0.001)
    # Contexts 11 and 12: one block each per step; J3 still cannot fit.
    for t, used in ((0.001, 22), (0.002, 24)):
        p = s.schedule(t)
        assert plan_ids(p) == expect(batch=[1, 2])
        assert s.kv.device_used_blocks == used
        s.on_iteration_done(p, round(t + 0.001, 3), 0.001)
    assert (j1.device_blocks, j2.device_blocks, j1.context_tokens) == (12, 12, 13)

    # Full. J1 needs one block: the newest running job (J2) is the victim, KV dropped. As in
    # vLLM, no prefill takes the room a preemption just made: J3 waits, J1 runs alone.
    p = s.schedule(0.003)
    assert plan_ids(p) == expect(batch=[1], recompute=[2])
    assert (j2.kv, j2.device_blocks, j2.kv_tokens, j2.num_recomputes, j2.num_preemptions) == (
        KVLocation.NONE, 0, 0, 1, 1)
    assert (s.kv.device_used_blocks, j1.device_blocks) == (13, 13)
    s.on_iteration_done(p, 0.004, 0.001)

    # J2 (seq 2, fresh again) sorts before J3 and needs 10 + 3 = 13 blocks; J1 grows to 14, so
    # 10 are free and no lower-priority job holds any: J2 waits, prefill closes, J3 waits too.
    p = s.schedule(0.004)
    assert plan_ids(p) == expect(batch=[1])
    assert s.kv.device_used_blocks == 14
    assert s.on_iteration_done(p, 0.005, 0.001) == [j1]

    # J1 is done: J2 recomputes its prompt and its 3 generated tokens (13) and J3 prefills (8).
    p = s.schedule(0.005)
    assert plan_ids(p) == expect(batch=[2, 3], prefill=[2, 3])
    assert p.prefill_tokens == [13, 8] and s.kv.device_used_blocks == 21
    s.on_iteration_done(p, 0.006, 0.001)
    assert (j2.generated_tokens, j2.kv_tokens, j2.first_token_s) == (4, 13, 0.001)
    p = s.schedule(0.006)
    assert plan_ids(p) == expect(batch=[2, 3])
    assert s.on_iteration_done(p, 0.007, 0.001) == [j2, j3]
    assert [(j.first_token_s, j.finish_s) for j in (j1, j2, j3)] == [
        (0.001, 0.005), (0.001, 0.007), (0.006, 0.007)]
    assert [(j.num_preemptions, j.num_swaps, j.num_recomputes) for j in (j1, j2, j3)] == [
        (0, 0, 0), (1, 0, 1), (0, 0, 0)]
    assert s.idle and s.kv.device_used_blocks == 0
