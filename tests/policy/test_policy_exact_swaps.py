"""Exact plans for the swap modes, driven by hand: proactive offloads and uploads in ENST order,
uploads that keep a batch slot, reactive swaps on the critical path, recompute, and a full host.

MLFQ with quanta base 10 ms, growth 2, 3 levels (q = [10, 20, 40] ms) unless a test says
otherwise. Expected values are worked out in the comments from policy/scheduler.py's and
policy/kv.py's documented rules."""

from __future__ import annotations

from policy import KVLocation
from tests.policy.policy_testkit import expect, job, mlfq, plan_ids


def test_proactive_swaps_follow_enst_not_rank():
    # 42 device blocks, reserve ceil(0.25 * 42) = 11; 100 host blocks; alpha 25 ms checked every
    # iteration. One job per batch.
    s = mlfq(device_kv_tokens=42, host_kv_tokens=100, swap_reserve_fraction=0.25,
             alpha_s=0.025, starvation_check_iterations=1)
    assert (s.swap_mode, s.reserve_blocks) == ("proactive", 11)
    kv = s.kv
    j1, j2, j3 = job(1, 10, 30), job(2, 10, 2, 0.030), job(3, 10, 30, 0.030)
    s.add(j1, 0.0)
    p = s.schedule(0.0)
    assert plan_ids(p) == expect(batch=[1], prefill=[1])
    s.on_iteration_done(p, 0.010, 0.010)  # level 1
    p = s.schedule(0.010)
    assert plan_ids(p) == expect(batch=[1])
    s.on_iteration_done(p, 0.030, 0.020)  # level 2; 11 tokens of KV
    s.add(j2, 0.030)
    s.add(j3, 0.030)
    assert (j1.level, j1.device_blocks, kv.device_used_blocks) == (2, 11, 11)

    p = s.schedule(0.030)  # J2 prefills (21 used, 21 free >= 11); J1 waits from 30 ms
    assert plan_ids(p) == expect(batch=[2], prefill=[2])
    s.on_iteration_done(p, 0.040, 0.010)  # J2 -> level 1
    p = s.schedule(0.040)  # J3 prefills: 31 used, exactly 11 free: still no swap
    assert plan_ids(p) == expect(batch=[3], prefill=[3])
    assert kv.device_used_blocks == 31
    s.on_iteration_done(p, 0.050, 0.010)  # J3 -> level 1, behind J2

    # J2 decodes (+1 block: 32 used, 10 free < 11). Offload the largest ENST among J1, J3:
    #   J1 (level 2, waiting since 30 ms): T_promote = 30 + 25 - 50 = 5 ms; T_execute =
    #     (2 level-1 jobs * 20 ms) / batch 1 = 40 ms -> ENST 5 ms.
    #   J3 (level 1, one job ahead of it): T_execute = 20 ms; not waiting yet -> ENST 20 ms.
    # Rank alone would pick J1 (lowest level); ENST picks J3. Then 22 used + 10 releasing.
    p = s.schedule(0.050)
    assert plan_ids(p) == expect(batch=[2], swap_out=[3])
    assert (kv.device_used_blocks, kv.releasing_blocks, kv.host_used_blocks) == (22, 10, 10)
    assert (j3.kv, j3.num_preemptions, j1.level) == (KVLocation.SWAPPING_OUT, 1, 2)
    s.on_swap_done(j3, 0.052)
    assert (j3.kv, j3.num_swaps, kv.releasing_blocks, kv.device_used_blocks) == (
        KVLocation.HOST, 1, 0, 22)
    assert s.on_iteration_done(p, 0.055, 0.005) == [j2]  # J2 had 2 tokens; frees 11 blocks

    # J1 has waited 25 ms: promoted to level 0 and runs (12 used). Upload J3 (ENST =
    # min(50 + 25 - 55, (1 level-0 job * 10 ms + 0) / 1) = 10 ms): 30 free - 10 >= 11.
    p = s.schedule(0.055)
    assert plan_ids(p) == expect(batch=[1], swap_in=[3])
    assert (j1.level, j3.kv, kv.device_used_blocks, kv.host_used_blocks) == (
        0, KVLocation.SWAPPING_IN, 22, 10)
    assert j1.num_preemptions == 1  # J1 did not run last iteration: no new preemption
    s.on_swap_done(j3, 0.057)
    assert (j3.kv, j3.num_swaps, j3.device_blocks, kv.host_used_blocks) == (
        KVLocation.DEVICE, 2, 10, 0)
    s.on_iteration_done(p, 0.060, 0.005)
    p = s.schedule(0.060)  # J3 has waited 10 ms < 25 ms
    assert plan_ids(p) == expect(batch=[1])
    assert (kv.device_used_blocks, j1.level, j3.level) == (23, 0, 1)


def _three_jobs(swap: str, host_kv_tokens: int = 100):
    s = mlfq(swap=swap, device_kv_tokens=30, host_kv_tokens=host_kv_tokens, max_batch_size=2)
    j1, j2, j3 = job(1, 10, 15), job(2, 10, 15), job(3, 15, 15, arrival_s=0.010)
    s.add(j1, 0.0)
    s.add(j2, 0.0)
    p = s.schedule(0.0)
    assert plan_ids(p) == expect(batch=[1, 2], prefill=[1, 2])
    s.on_iteration_done(p, 0.010, 0.010)  # both to level 1 (J1 seq 3, J2 seq 4)
    s.add(j3, 0.010)  # level 0, seq 5
    return s, j1, j2, j3


def test_reactive_swaps_only_for_room_and_waits_for_them():
    s, j1, j2, j3 = _three_jobs("reactive")
    kv = s.kv
    assert s.reserve_blocks == 0
    # J3 needs 15 > 10 free: evict the lowest-priority device job first (J2, level 1 seq 4):
    # swap out -> 20 plannable. J1 decodes (+1). Planned 26 + 10 releasing > 30: wait for J2.
    p = s.schedule(0.010)
    assert plan_ids(p) == expect(batch=[3, 1], prefill=[3], swap_out=[2], wait_for=[2])
    assert (kv.device_used_blocks, kv.releasing_blocks, kv.host_used_blocks) == (26, 10, 10)
    assert (j2.num_preemptions, j1.num_preemptions) == (1, 0)
    s.on_swap_done(j2, 0.011)
    assert kv.device_used_blocks + kv.releasing_blocks <= 30
    s.on_iteration_done(p, 0.021, 0.010)  # J3 -> level 1 (seq 6); J1 attained 10 ms
    assert (j3.level, j1.level, j1.attained_us) == (1, 1, 10_000)

    # Level 1 in FIFO order: J1 (+1 -> 27 used), J2 on host needs 11 > 3: evict J3 (15 blocks,
    # seq 6 > 4), swap J2 in (10 blocks, then +1) -> 23 used. Compute alone holds 23 - 11
    # incoming = 12, + 15 releasing <= 30: not overcommitted. The batch waits for J2's upload,
    # which the engine starts once J3's swap-out has landed.
    p = s.schedule(0.021)
    assert plan_ids(p) == expect(batch=[1, 2], swap_out=[3], swap_in=[2], wait_for=[2])
    assert (kv.device_used_blocks, kv.releasing_blocks, kv.host_used_blocks) == (23, 15, 25)
    s.on_swap_done(j3, 0.023)
    s.on_swap_done(j2, 0.025)
    assert (kv.device_used_blocks, kv.releasing_blocks, kv.host_used_blocks) == (23, 0, 15)
    assert (j2.num_swaps, j3.num_swaps, j3.num_preemptions) == (2, 1, 1)
    s.on_iteration_done(p, 0.035, 0.010)  # J1: 20 ms at level 1 -> level 2
    assert (j1.level, j2.level) == (2, 1)

    # J2 (+1 -> 24); J3 on host needs 16 > 6: evict J1 (level 2), swap J3 in (15, +1 -> 28);
    # 28 - 16 incoming + 12 releasing <= 30: wait for J3's upload only.
    p = s.schedule(0.035)
    assert plan_ids(p) == expect(batch=[2, 3], swap_out=[1], swap_in=[3], wait_for=[3])
    assert (kv.device_used_blocks, kv.releasing_blocks, kv.host_used_blocks) == (28, 12, 27)


def test_proactive_uploads_never_hold_up_compute():
    # Same jobs, proactive mode: compute never waits for a copy. A job on the host that its
    # priority would put in the batch starts its upload instead and keeps its slot, and a job
    # whose room is still being vacated by a swap-out sits out with its slot; both join a later
    # batch. The reserve is ceil(0.05 * 30) = 2 blocks.
    s, j1, j2, j3 = _three_jobs("proactive")
    kv = s.kv
    assert s.reserve_blocks == 2
    # J3 needs 15 > 10 free: J2 (lowest) is swapped out, and J3 waits for its 10 blocks (held
    # for it: 10 used + 15 promised); J1 grows by one block from the free ones and decodes.
    p = s.schedule(0.010)
    assert plan_ids(p) == expect(batch=[1], swap_out=[2])
    assert (kv.device_used_blocks, kv.releasing_blocks, kv.promised_blocks) == (11, 10, 0)
    s.on_swap_done(j2, 0.011)
    s.on_iteration_done(p, 0.021, 0.010)  # J1: 10 ms at level 1
    # J3 (level 0) prefills now: 15 of the 19 free blocks; J1 (+1 -> 12) decodes with it.
    p = s.schedule(0.021)
    assert plan_ids(p) == expect(batch=[3, 1], prefill=[3])
    assert (kv.device_used_blocks, kv.releasing_blocks, kv.host_used_blocks) == (27, 0, 10)
    s.on_iteration_done(p, 0.031, 0.010)  # J3 -> level 1 (seq 6); J1: 20 ms at level 1 -> level 2
    assert (j3.level, j1.level) == (1, 2)
    # Level 1 in FIFO order: J2 (host, seq 4) needs 11 > 3 free: J1 (level 2) is evicted and
    # J2's upload starts into its room; J2 keeps a slot, J3 (+1 -> 17) decodes.
    p = s.schedule(0.031)
    assert plan_ids(p) == expect(batch=[3], swap_out=[1], swap_in=[2])
    assert (j2.kv, j1.kv) == (KVLocation.SWAPPING_IN, KVLocation.SWAPPING_OUT)


def test_recompute_mode_evicts_as_the_swap_modes_do():
    # J3 (no token yet) needs 15 > 10 free. The modes share one eviction rule and differ only in
    # how KV leaves: reactive mode swaps J2 (the lowest) out, recompute mode drops its KV, and
    # J3 prefills beside J1 in both.
    s, j1, j2, j3 = _three_jobs("recompute")
    p = s.schedule(0.010)
    assert plan_ids(p) == expect(batch=[3, 1], prefill=[3], recompute=[2])
    assert (s.kv.device_used_blocks, j1.device_blocks, j3.device_blocks) == (26, 11, 15)
    assert [j.num_recomputes for j in (j1, j2, j3)] == [0, 1, 0]
    assert j2.kv is KVLocation.NONE


def test_full_host_makes_a_new_job_wait_instead_of_dropping():
    # Host of 5 blocks cannot take J2's or J1's 10: J3 may not evict them (that would drop
    # started work for new work), so it waits; nothing is swapped or dropped, nothing raises.
    s, j1, j2, j3 = _three_jobs("reactive", host_kv_tokens=5)
    p = s.schedule(0.010)
    assert plan_ids(p) == expect(batch=[1, 2])
    assert (j2.num_recomputes, j2.num_swaps, s.kv.host_used_blocks) == (0, 0, 0)


def test_host_with_room_for_one_victim_only():
    # 15 host blocks: J2 (10) is swapped out for the new J3, leaving 5 free on the host.
    s, j1, j2, j3 = _three_jobs("reactive", host_kv_tokens=15)
    p = s.schedule(0.010)
    assert plan_ids(p) == expect(batch=[3, 1], prefill=[3], swap_out=[2], wait_for=[2])
    s.on_swap_done(j2, 0.011)
    s.on_iteration_done(p, 0.021, 0.010)
    # Level 1 by seq: J1 grows to 12 (27 used). J2 (on the host, not running) needs 11: only
    # J3 (15 blocks, seq 6) is below it, and the host cannot take 15 > 5. J2 may not drop
    # J3's work, so it waits. J3 ran last and grows to 16 (28 used).
    p = s.schedule(0.021)
    assert plan_ids(p) == expect(batch=[1, 3])
    assert (s.kv.device_used_blocks, s.kv.releasing_blocks, s.kv.host_used_blocks) == (28, 0, 10)
    assert (j3.num_recomputes, j3.kv, j2.kv) == (0, KVLocation.DEVICE, KVLocation.HOST)


def test_an_upload_in_flight_counts_against_a_later_swap_out():
    """Regression (found by the engine's device check in a proactive soak run): a swap-in
    planned by an earlier decision may already be writing when a later decision swaps a job
    out and plans into its room; that job may not compute until the swap-out lands."""
    s = mlfq(device_kv_tokens=30, host_kv_tokens=100, swap_reserve_fraction=0.1, num_levels=2)
    kv = s.kv
    assert s.reserve_blocks == 3
    a, b, c, d = job(1, 10, 20), job(2, 10, 20), job(3, 12, 1, 0.020), job(4, 15, 5, 0.051)
    s.add(a, 0.0)
    s.add(b, 0.0)
    p = s.schedule(0.0)  # A prefills (10 blocks)
    s.on_iteration_done(p, 0.010, 0.010)  # A -> level 1
    p = s.schedule(0.010)  # B prefills (20 used)
    assert plan_ids(p) == expect(batch=[2], prefill=[2])
    s.on_iteration_done(p, 0.020, 0.010)  # B -> level 1
    s.add(c, 0.020)
    # C needs 12 > 10 free: B (the lowest) is swapped out, and C sits out until its 10 blocks
    # land, holding the batch's one slot; the slot is lent to A, which decodes (+1 -> 11).
    p = s.schedule(0.020)
    assert plan_ids(p) == expect(batch=[1], swap_out=[2])
    s.on_swap_done(b, 0.021)
    s.on_iteration_done(p, 0.031, 0.010)
    p = s.schedule(0.031)  # C prefills into the room B left (23 used)
    assert plan_ids(p) == expect(batch=[3], prefill=[3])
    assert s.on_iteration_done(p, 0.041, 0.010) == [c]  # frees C's 12 blocks: 11 used (A)
    # A decodes (12 used); 18 free - B's 10 >= 3 reserve: B's upload starts now.
    p = s.schedule(0.041)
    assert plan_ids(p) == expect(batch=[1], swap_in=[2])
    assert kv.device_used_blocks == 22
    s.on_iteration_done(p, 0.051, 0.010)  # B's upload is still under way
    s.add(d, 0.051)
    # D needs 15 > 8 free: A (12 blocks) is swapped out to make room. B may be writing its 10
    # blocks and A still holds 12: only 8 are free now, so D cannot compute yet (proactive
    # mode never makes the batch wait): it sits out, with 15 blocks held for it.
    p = s.schedule(0.051)
    assert plan_ids(p) == expect(swap_out=[1])
    assert (kv.device_used_blocks, kv.releasing_blocks, kv.host_used_blocks) == (10, 12, 22)
    assert kv.compute_room_blocks() == 8
    assert d.kv is KVLocation.NONE
