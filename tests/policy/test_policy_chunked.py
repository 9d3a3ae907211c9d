"""Chunked prefill (policy/chunked.py, policy/sarathi.py): exact plans driven by hand, the
Plan/Job contract of a chunk, what a quantum means for a partly prefilled job, skip-join's join
level, and property tests (every policy and swap mode with chunking on: every job finishes
within capacity, and event skipping equals stepping)."""

from __future__ import annotations

import dataclasses
import math

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from policy import KVLocation, Plan, SchedulerConfig, make_scheduler
from tests.policy.policy_strategies import scenarios
from tests.policy.policy_testkit import Scenario, ToyCost, expect, job, plan_ids
from tests.policy.test_policy_properties import CheckedEngine

FAST = settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def sched(name: str = "sarathi", cost=None, **kw):
    base = dict(device_kv_tokens=200, host_kv_tokens=0, max_batch_size=4, max_seq_tokens=64,
                chunked_prefill_tokens=10)
    base.update(kw)
    return make_scheduler(name, SchedulerConfig(**base), cost)


def test_config_rejects_a_bad_budget():
    for bad in (0, -4, 2.5, True):
        with pytest.raises(ValueError, match="chunked_prefill_tokens"):
            SchedulerConfig(chunked_prefill_tokens=bad)
    assert SchedulerConfig().chunked_prefill_tokens is None  # off by default


def test_sarathi_chunks_by_default_and_other_policies_do_not():
    assert make_scheduler("sarathi").chunk_budget_tokens == 512
    assert make_scheduler("sarathi", SchedulerConfig(chunked_prefill_tokens=64)).chunk_budget_tokens == 64
    assert make_scheduler("vllm-fcfs").chunk_budget_tokens is None
    assert make_scheduler("sarathi").swap_mode == "recompute"  # vLLM's default preemption


def test_a_prompt_runs_in_chunks_and_its_first_token_comes_with_the_last():
    s = sched()
    j = job(1, 25, 3)
    s.add(j, 0.0)
    # Budget 10: chunks [0, 10), [10, 20), [20, 25); the first claims KV for all 25 tokens.
    for start, take, now in ((0, 10, 0.001), (10, 10, 0.002)):
        p = s.schedule(now - 0.001)
        assert plan_ids(p) == expect(batch=[1], prefill=[1])
        assert p.prefill_chunks == {1: (start, take)} and p.chunk(j) == (start, take)
        assert (p.prefill_tokens, p.prefill_context_tokens) == ([take], [start])
        assert not p.produces_token(j) and not p.is_pure_decode
        assert (j.device_blocks, j.kv) == (25, KVLocation.DEVICE)
        assert s.on_iteration_done(p, now, 0.001) == []
        assert (j.kv_tokens, j.prefilled_tokens, j.generated_tokens) == (start + take, start + take, 0)
        assert math.isnan(j.first_token_s) and j.in_prefill and j.pending_tokens == 25 - start - take
    p = s.schedule(0.002)
    assert p.prefill_chunks == {1: (20, 5)} and p.produces_token(j)
    assert s.on_iteration_done(p, 0.003, 0.001) == []
    assert (j.generated_tokens, j.kv_tokens, j.first_token_s, j.in_prefill) == (1, 25, 0.003, False)
    assert (j.prefilled_tokens, j.pending_tokens) == (0, 1)
    p = s.schedule(0.003)  # now a decode: a pure-decode plan that event skipping may repeat
    assert plan_ids(p) == expect(batch=[1]) and p.is_pure_decode and p.prefill_context_tokens == []
    assert j.device_blocks == 26


def test_sarathi_takes_decodes_first_then_chunks_in_arrival_order():
    s = sched(max_batch_size=6)
    a, b = job(1, 4, 5), job(2, 3, 5)
    s.add(a, 0.0)
    s.add(b, 0.0)
    p = s.schedule(0.0)  # two whole prompts fit: 4 + 3 <= 10
    assert plan_ids(p) == expect(batch=[1, 2], prefill=[1, 2]) and p.prefill_chunks == {1: (0, 4), 2: (0, 3)}
    s.on_iteration_done(p, 0.001, 0.001)
    c, d = job(3, 30, 2, 0.001), job(4, 6, 2, 0.001)
    s.add(c, 0.001)
    s.add(d, 0.001)
    # Decodes 1 and 2 take a token each; job 3 (earlier) gets the other 8; job 4 waits.
    p = s.schedule(0.001)
    assert plan_ids(p) == expect(batch=[1, 2, 3], prefill=[3]) and p.prefill_chunks == {3: (0, 8)}
    assert p.token_lists() == ([8], [5, 4])  # the chunk's tokens; the decodes' contexts 4 + 1, 3 + 1
    s.on_iteration_done(p, 0.002, 0.001)
    # The split job 3 keeps its place: its next chunk still comes before job 4's prefill.
    p = s.schedule(0.002)
    assert plan_ids(p) == expect(batch=[1, 2, 3], prefill=[3]) and p.prefill_chunks == {3: (8, 8)}
    assert c.seq < d.seq


def test_every_policy_can_chunk_in_its_own_order():
    # MLFQ walks by level: a new top-level prompt takes its chunk in priority order, and the
    # budget bounds the iteration's tokens whatever the order.
    s = sched("mlfq", num_levels=2, base_quantum_s=0.010, max_batch_size=4)
    a = job(1, 4, 20)
    s.add(a, 0.0)
    s.on_iteration_done(s.schedule(0.0), 0.001, 0.001)
    b = job(2, 30, 2, 0.001)
    s.add(b, 0.001)
    p = s.schedule(0.001)  # same level, FIFO: job 1's decode, then 9 tokens of job 2
    assert plan_ids(p) == expect(batch=[1, 2], prefill=[2]) and p.prefill_chunks == {2: (0, 9)}


def test_a_quantum_counts_chunk_iterations_and_may_end_mid_prefill():
    """A partly prefilled job is charged each chunk's iteration like any iteration it runs; when
    its level's quantum is used up it is demoted mid-prefill, with its prefilled KV, and its
    next chunk runs at the lower level."""
    s = sched("mlfq", num_levels=3, base_quantum_s=0.002, max_batch_size=1, chunked_prefill_tokens=4)
    j = job(1, 14, 2)
    s.add(j, 0.0)
    now = 0.0
    levels = []
    for _ in range(4):  # chunks of 4, 4, 4, 2 tokens, each iteration 1.5 ms
        p = s.schedule(now)
        levels.append((j.level, p.chunk(j)))
        now += 0.0015
        s.on_iteration_done(p, now, 0.0015)
    # q0 = 2 ms: used up after the second chunk (3 ms); q1 = 4 ms: 2 more chunks (3 ms) fit.
    assert levels == [(0, (0, 4)), (0, (4, 4)), (1, (8, 4)), (1, (12, 2))]
    assert (j.generated_tokens, j.attained_us, j.kv_tokens) == (1, 3000, 14)


def test_skip_join_level_follows_the_whole_prompt():
    cost = ToyCost()  # prefill_s = 2 ms + 0.1 ms per token
    for budget in (None, 8):
        s = sched("skip-join-mlfq", cost, num_levels=5, base_quantum_s=0.002, chunked_prefill_tokens=budget)
        j = job(1, 50, 2)  # 7 ms: the first level whose quantum is >= 7 ms is level 2 (8 ms)
        s.add(j, 0.0)
        assert j.level == 2
        p = s.schedule(0.0)
        assert p.prefill_chunks == ({} if budget is None else {1: (0, 8)})


def test_a_partly_prefilled_job_swaps_out_and_resumes_where_its_chunks_ended():
    # Job 0 (4-token prompt, 20 tokens out) goes first; job 1's 20-token prompt gets the rest of
    # each 8-token budget: chunks [0, 4), [4, 11), [11, 18), its first claiming all 20 tokens.
    # Job 0 holds 6 then, filling the 26-token device; to grow it swaps job 1 out (reactive) with
    # its 18 prefilled tokens. Once job 0 is done job 1 comes back, and its last chunk starts at 18.
    cfg = SchedulerConfig(device_kv_tokens=26, host_kv_tokens=100, max_batch_size=2, max_seq_tokens=64,
                          swap="reactive", chunked_prefill_tokens=8)
    sc = Scenario("vllm-fcfs", cfg, ((0, 0, 4, 20), (1, 0, 20, 2)))
    chunks: list[tuple[int, int]] = []

    class Recording(CheckedEngine):
        def on_plan(self, plan: Plan) -> None:
            super().on_plan(plan)
            if 1 in plan.prefill_chunks:
                chunks.append(plan.prefill_chunks[1])

    e = sc.run(engine_cls=Recording)
    assert chunks == [(0, 4), (4, 7), (11, 7), (18, 2)]
    j = e.jobs[1]
    assert (j.num_swaps, j.num_recomputes, j.generated_tokens) == (2, 0, 2)


def chunked(sc: Scenario, budget: int) -> Scenario:
    return Scenario(sc.policy, dataclasses.replace(sc.config, chunked_prefill_tokens=budget), sc.trace)


@FAST
@given(scenarios(), st.integers(1, 40))
def test_every_policy_finishes_every_job_within_capacity_when_chunking(sc, budget):
    sc = chunked(sc, budget)
    e = sc.run(engine_cls=CheckedEngine)
    for j in e.jobs.values():
        assert j.generated_tokens == j.output_tokens
        assert j.arrival_s <= j.first_token_s <= j.finish_s
    kv = e.sched.kv
    assert (kv.device_used_blocks, kv.releasing_blocks, kv.host_used_blocks) == (0, 0, 0)
    assert e.max_device_blocks_seen <= kv.capacity.device_blocks


@FAST
@given(scenarios(), st.integers(1, 40))
def test_skipping_matches_stepping_when_chunking(sc, budget):
    sc = chunked(sc, budget)
    step, skip = sc.run(skip=False), sc.run(skip=True)
    assert skip.results() == step.results()
    assert skip.num_iterations == step.num_iterations
