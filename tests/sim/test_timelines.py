"""Exact timelines on hand-built cases (toy cost model, whole microseconds; see toy.py).

Toy costs: iteration = 1000 + 10/prefill token + 1/decode context token + 100/job (us);
swap = 5 us/token. Each expected number below is worked out by hand in the comments.
"""

from __future__ import annotations

import pytest

from policy import SchedulerConfig
from sim import SimConfig, simulate
from tests.sim.toy import ListTrace, ToyCost, jobs_of

STEP = SimConfig(skip=False, record_iterations=True, record_spans=True)


def run(rows, policy, cfg, sim=STEP):
    return simulate(ListTrace.of(rows), ToyCost(), policy, cfg, sim)


def timeline(result):
    """(start_s, end_s, batch_size, num_prefills) per iteration, rounded to the microsecond."""
    it = result.iterations
    return [(round(a, 6), round(b, 6), int(n), int(p))
            for a, b, n, p in zip(it.start_s, it.end_s, it.batch_size, it.num_prefills, strict=True)]


def spans(result, kind):
    s = result.spans[result.spans.kind == kind]
    return [(int(r), round(a, 6), round(b, 6)) for r, a, b in zip(s.request_id, s.start_s, s.end_s, strict=True)]


def test_prefill_then_decode():
    # P=10, O=3: prefill 1000+100+100 = 1200; decode ctx 11 -> 1111; ctx 12 -> 1112.
    r = run([(0.0, 10, 3)], "fcfs", SchedulerConfig())
    assert timeline(r) == [(0.0, 0.0012, 1, 1), (0.0012, 0.002311, 1, 0), (0.002311, 0.003423, 1, 0)]
    j = jobs_of(r)[0]
    assert (j["first_token_s"], j["finish_s"], j["generated_tokens"]) == (0.0012, 0.003423, 3)


def test_preemption_by_mlfq_demotion():
    # Batch of 1, q1 = 2 ms. A (P=10, O=5) at 0; B (P=10, O=2) at 0.5 ms.
    # A: prefill [0, 1.2 ms], decode ctx 11 [1.2, 2.311]: attained 2311 us >= 2000 -> level 1.
    # B (level 0) now outranks A: prefill [2.311, 3.511], decode [3.511, 4.622], done.
    # A resumes: ctx 12, 13, 14 -> 1112, 1113, 1114 us: ends 5.734, 6.847, 7.961 ms.
    cfg = SchedulerConfig(max_batch_size=1, base_quantum_s=0.002)
    r = run([(0.0, 10, 5), (0.0005, 10, 2)], "mlfq", cfg)
    assert timeline(r) == [
        (0.0, 0.0012, 1, 1), (0.0012, 0.002311, 1, 0), (0.002311, 0.003511, 1, 1),
        (0.003511, 0.004622, 1, 0), (0.004622, 0.005734, 1, 0), (0.005734, 0.006847, 1, 0),
        (0.006847, 0.007961, 1, 0),
    ]
    jobs = jobs_of(r)
    assert (jobs[0]["finish_s"], jobs[0]["num_preemptions"]) == (0.007961, 1)
    assert (jobs[1]["first_token_s"], jobs[1]["finish_s"], jobs[1]["num_preemptions"]) == (0.003511, 0.004622, 0)
    assert spans(r, "running") == [(0, 0.0, 0.002311), (0, 0.004622, 0.007961), (1, 0.002311, 0.004622)]


# Memory cases: A (P=40, O=4) at 0, B (P=40, O=2) at 0.5 ms, batch of 1, q1 = 2 ms.
# A: prefill 1000+400+100 = 1500 us; decode ctx 41 -> 1141 us, ends 2.641 ms, holds 41 tokens,
# and is demoted (2641 us >= 2000). B then needs 40 tokens for its prefill.
MEMORY_ROWS = [(0.0, 40, 4), (0.0005, 40, 2)]
# Device 100 tokens, reserve 20 (the proactive cases).
PROACTIVE = SchedulerConfig(max_batch_size=1, base_quantum_s=0.002, device_kv_tokens=100,
                            host_kv_tokens=100, swap_reserve_fraction=0.2, swap="proactive")


def test_proactive_swap_overlaps_compute():
    # Device 100 tokens, reserve 20. B's prefill brings use to 81, leaving 19 < 20 free, so A
    # (the only resident outside the batch) is offloaded: 41 tokens * 5 us = 205 us, running
    # alongside B's prefill [2.641, 4.141], which is not delayed. B decodes [4.141, 5.282].
    # A comes back when B is done: 205 us swap-in on the critical path [5.282, 5.487], then
    # ctx 42, 43: 1142, 1143 us -> 6.629, 7.772 ms.
    r = run(MEMORY_ROWS, "mlfq", PROACTIVE)
    assert timeline(r) == [
        (0.0, 0.0015, 1, 1), (0.0015, 0.002641, 1, 0), (0.002641, 0.004141, 1, 1),
        (0.004141, 0.005282, 1, 0), (0.005487, 0.006629, 1, 0), (0.006629, 0.007772, 1, 0),
    ]
    assert spans(r, "swap_out") == [(0, 0.002641, 0.002846)]
    assert spans(r, "swap_in") == [(0, 0.005282, 0.005487)]
    assert jobs_of(r)[0]["num_swaps"] == 2


def test_reactive_swap_blocks_the_batch():
    # Device 80 tokens: A holds 41, B needs 40 > 39 free, so A is swapped out on demand and
    # B's prefill waits for the copy: [2.846, 4.346]; decode ctx 41 -> 5.487 done. A swaps in
    # [5.487, 5.692], then ctx 42, 43 -> 6.834, 7.977 ms.
    cfg = SchedulerConfig(max_batch_size=1, base_quantum_s=0.002, device_kv_tokens=80,
                          host_kv_tokens=100, swap="reactive")
    r = run(MEMORY_ROWS, "mlfq", cfg)
    assert timeline(r) == [
        (0.0, 0.0015, 1, 1), (0.0015, 0.002641, 1, 0), (0.002846, 0.004346, 1, 1),
        (0.004346, 0.005487, 1, 0), (0.005692, 0.006834, 1, 0), (0.006834, 0.007977, 1, 0),
    ]
    assert spans(r, "swap_out") == [(0, 0.002641, 0.002846)]
    assert spans(r, "swap_in") == [(0, 0.005487, 0.005692)]


def test_recompute_drops_and_prefills_again():
    # Recompute mode, device 81 tokens: A (41) + B (40) = 81 fits exactly, B prefills
    # [2.641, 4.141] at once.
    # B (started now, level 0) then needs one more slot for its decode, the device is full,
    # so the lower-priority A is dropped and B decodes [4.141, 5.282]. A re-prefills prompt + 2 generated = 42 tokens:
    # 1000+420+100 = 1520 us -> 6.802 ms (its third token), then ctx 43 -> 1143 us -> 7.945 ms.
    cfg = SchedulerConfig(max_batch_size=1, base_quantum_s=0.002, device_kv_tokens=81,
                          host_kv_tokens=100, swap="recompute")
    r = run(MEMORY_ROWS, "mlfq", cfg)
    assert timeline(r) == [
        (0.0, 0.0015, 1, 1), (0.0015, 0.002641, 1, 0), (0.002641, 0.004141, 1, 1),
        (0.004141, 0.005282, 1, 0), (0.005282, 0.006802, 1, 1), (0.006802, 0.007945, 1, 0),
    ]
    a = jobs_of(r)[0]
    assert (a["num_recomputes"], a["num_swaps"], a["first_token_s"], a["finish_s"]) == (1, 0, 0.0015, 0.007945)


def test_recompute_mode_new_job_evicts_like_the_swap_modes():
    # Device 80: B's prefill (40) does not fit beside A (41). Every swap mode lets a new job
    # evict a lower-priority one; recompute mode moves the KV out by dropping it. So B drops A
    # and prefills [2.641, 4.141], decodes ctx 41 -> 5.282; A re-prefills its 42 tokens
    # (1520 us -> 6.802) and decodes ctx 43 -> 7.945, as with 81 tokens above.
    cfg = SchedulerConfig(max_batch_size=1, base_quantum_s=0.002, device_kv_tokens=80,
                          host_kv_tokens=100, swap="recompute")
    r = run(MEMORY_ROWS, "mlfq", cfg)
    assert timeline(r) == [
        (0.0, 0.0015, 1, 1), (0.0015, 0.002641, 1, 0), (0.002641, 0.004141, 1, 1),
        (0.004141, 0.005282, 1, 0), (0.005282, 0.006802, 1, 1), (0.006802, 0.007945, 1, 0),
    ]
    assert jobs_of(r)[0]["num_recomputes"] == 1


def test_two_pipeline_micro_batches_in_flight():
    # pp=2, batch of 1, A and B (P=10, O=2) at 0. A's prefill: 1200 us / 2 = 600 per stage,
    # 50 us send between stages: stage0 [0, 600], stage1 [650, 1250]. Stage 0 frees at 600, so
    # B's prefill enters: stage0 [600, 1200], stage1 [1250, 1850] (waits for A to leave it).
    # A decodes next (ctx 11, 1111 us -> 555.5 -> 556 us per stage, half to even):
    # stage0 [1250, 1806], stage1 [1856, 2412]. B decodes after its prefill lands at 1850:
    # stage0 [1850, 2406], stage1 [2456, 3012].
    cfg = SchedulerConfig(max_batch_size=1)
    r = run([(0.0, 10, 2), (0.0, 10, 2)], "fcfs", cfg, SimConfig(skip=False, pp=2, record_iterations=True))
    assert timeline(r) == [
        (0.0, 0.00125, 1, 1), (0.0006, 0.00185, 1, 1), (0.00125, 0.002412, 1, 0), (0.00185, 0.003012, 1, 0),
    ]
    jobs = jobs_of(r)
    assert (jobs[0]["finish_s"], jobs[1]["finish_s"]) == (0.002412, 0.003012)


def test_two_replicas_round_robin():
    # A -> replica 0, B -> replica 1: each runs alone, as in test_prefill_then_decode.
    r = run([(0.0, 10, 3), (0.0, 10, 3)], "fcfs", SchedulerConfig(), SimConfig(skip=False, num_replicas=2))
    jobs = jobs_of(r)
    assert [(jobs[i]["replica"], jobs[i]["finish_s"]) for i in (0, 1)] == [(0, 0.003423), (1, 0.003423)]


def test_rejected_requests_are_counted_with_a_reason():
    r = run([(0.0, 10, 3), (0.0, 2000, 100)], "fcfs", SchedulerConfig(max_seq_tokens=2048))
    jobs = jobs_of(r)
    assert jobs[1]["status"] == "rejected"
    assert r.log.reason[r.log.status.index("rejected")] == "prompt_tokens + output_tokens = 2100 exceeds max_seq_tokens = 2048"
    assert r.stats["finished"] == 1 and r.stats["rejected"] == 1


@pytest.mark.parametrize("skip", [True, False])
def test_event_skipping_merges_decode_iterations(skip):
    r = run([(0.0, 10, 50)], "fcfs", SchedulerConfig(), SimConfig(skip=skip, record_iterations=True))
    it = r.iterations
    assert int(it.num_iterations.sum()) == 50
    assert len(it) == (2 if skip else 50)  # prefill, then one skip over the 49 decodes


class SyncCost(ToyCost):
    """A CPU engine's swaps: the copy blocks compute, plus 20 us of engine work per swap."""

    sync_transfers = True

    def swap_overhead_s(self) -> float:
        return 20e-6


def test_synchronous_swaps_block_compute_one_after_another():
    # The proactive case above, on an engine whose copies block compute: A's offload (205 us +
    # 20 us of engine work) now runs before B's prefill: [2.866, 4.366]; B decodes ctx 41 ->
    # 5.507 and finishes. A's upload (225 us) is a transfers-only plan [5.507, 5.732]; the
    # replica plans again at once (nothing else would wake it): ctx 42, 43 -> 6.874, 8.017 ms.
    r = simulate(ListTrace.of(MEMORY_ROWS), SyncCost(), "mlfq", PROACTIVE, STEP)
    assert timeline(r) == [
        (0.0, 0.0015, 1, 1), (0.0015, 0.002641, 1, 0), (0.002866, 0.004366, 1, 1),
        (0.004366, 0.005507, 1, 0), (0.005732, 0.006874, 1, 0), (0.006874, 0.008017, 1, 0),
    ]
    assert spans(r, "swap_out") == [(0, 0.002641, 0.002866)]
    assert spans(r, "swap_in") == [(0, 0.005507, 0.005732)]
    assert jobs_of(r)[0]["finish_s"] == 0.008017


def test_per_swap_engine_work_precedes_asynchronous_copies():
    # Asynchronous copies (GPU) with 20 us of engine work per swap: the offload's 20 us delay
    # B's prefill [2.661, 4.161] while the copy overlaps it [2.661, 2.866]; B decodes -> 5.302;
    # the upload's 20 us come first, then its copy [5.322, 5.527].
    class AsyncWork(ToyCost):
        def swap_overhead_s(self) -> float:
            return 20e-6

    r = simulate(ListTrace.of(MEMORY_ROWS), AsyncWork(), "mlfq", PROACTIVE, STEP)
    assert spans(r, "swap_out") == [(0, 0.002661, 0.002866)]
    assert spans(r, "swap_in") == [(0, 0.005322, 0.005527)]
    assert timeline(r)[2] == (0.002661, 0.004161, 1, 1)
