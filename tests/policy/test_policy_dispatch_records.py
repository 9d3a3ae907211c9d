"""Dispatchers (exact choices on hand-built loads, ties to the lowest index), the load a
scheduler reports to them, and the per-request result columns."""

from __future__ import annotations

import math

from policy import ReplicaLoad, RequestLog, SchedulerConfig, make_dispatcher, make_scheduler
from tests.policy.policy_testkit import job

L = ReplicaLoad


def test_round_robin_cycles_from_replica_zero():
    d = make_dispatcher("round-robin")
    loads = [L(9, 900), L(0, 0), L(5, 5)]
    assert [d.choose(job(i, 1, 1), loads) for i in range(7)] == [0, 1, 2, 0, 1, 2, 0]
    # The 7th choice was replica 0, so the next is 1; a shorter list wraps instead of
    # indexing past its end.
    assert [d.choose(job(9, 1, 1), loads[:2]) for _ in range(3)] == [1, 0, 1]


def test_least_work_picks_fewest_outstanding_prompt_tokens():
    d = make_dispatcher("least-work")
    assert d.choose(job(1, 1, 1), [L(3, 100), L(1, 50), L(5, 50)]) == 1  # tie 50: lower index
    assert d.choose(job(1, 1, 1), [L(0, 7), L(9, 6), L(0, 8)]) == 1  # job count is ignored
    assert d.choose(job(1, 1, 1), [L(2, 0), L(0, 0)]) == 0


def test_shortest_queue_picks_fewest_jobs():
    d = make_dispatcher("shortest-queue")
    assert d.choose(job(1, 1, 1), [L(3, 100), L(1, 500), L(1, 10)]) == 1  # tie 1: lower index
    assert d.choose(job(1, 1, 1), [L(4, 1), L(2, 900), L(3, 0)]) == 1  # tokens are ignored


def test_dispatch_never_reads_output_lengths():
    loads = [L(2, 40), L(1, 40), L(2, 10)]
    for name in ("round-robin", "least-work", "shortest-queue"):
        a, b = make_dispatcher(name), make_dispatcher(name)
        assert [a.choose(job(i, 5, 1), loads) for i in range(4)] == [
            b.choose(job(i, 5, 900), loads) for i in range(4)]


def test_scheduler_load_counts_unfinished_jobs_and_prompt_tokens():
    s = make_scheduler("mlfq", SchedulerConfig(max_batch_size=1, base_quantum_s=0.01))
    a, b = job(1, 7, 1), job(2, 5, 3)
    s.add(a, 0.0)
    s.add(b, 0.0)
    assert s.load() == L(2, 12)
    p = s.schedule(0.0)  # J1 (one output token) prefills and finishes
    assert s.on_iteration_done(p, 0.001, 0.001) == [a]
    assert s.load() == L(1, 5)


def test_request_log_columns():
    log = RequestLog()
    a = job(1, 7, 2, arrival_s=0.5)
    a.generated_tokens, a.first_token_s, a.finish_s = 2, 0.6, 0.9
    a.num_preemptions, a.num_swaps, a.num_recomputes = 1, 2, 3
    b = job(2, 4, 9, arrival_s=0.7)
    b.generated_tokens, b.first_token_s, b.finish_s = 3, 0.8, 1.2  # finish_s ignored: unfinished
    log.record(a, request_id=10, replica=1)
    log.record(b, request_id=11, replica=0, status="unfinished", reason="run stopped")
    log.record(job(3, 9, 9), request_id=12, replica=0, status="rejected", reason="too long")
    assert len(log) == 3
    assert list(log.floats["arrival_s"]) == [0.5, 0.7, 0.0]
    assert list(log.floats["first_token_s"])[:2] == [0.6, 0.8]
    fin = list(log.floats["finish_s"])
    assert fin[0] == 0.9 and math.isnan(fin[1]) and math.isnan(fin[2])
    assert {k: list(v) for k, v in log.ints.items()} == {
        "request_id": [10, 11, 12], "replica": [1, 0, 0], "prompt_tokens": [7, 4, 9],
        "output_tokens": [2, 9, 9], "generated_tokens": [2, 3, 0], "num_preemptions": [1, 0, 0],
        "num_swaps": [2, 0, 0], "num_recomputes": [3, 0, 0],
    }
    assert log.status == ["finished", "unfinished", "rejected"]
    assert log.reason == ["", "run stopped", "too long"]
    assert log.counts() == {"finished": 1, "rejected": 1, "unfinished": 1}
