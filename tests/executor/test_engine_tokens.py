"""Token correctness under preemption, swapping and recompute, for every policy and swap mode.

The trace's first 16 requests arrive in a burst into a device KV pool of 160 tokens (a tenth of
what they need together) and a host pool of 96, so jobs are evicted, swapped both ways, and
recomputed when the host is full too. Each request must still produce exactly the tokens that
transformers' `generate` gives it alone. The store is audited against the policy after every
iteration (one place per job, counts equal), and must be empty at the end.
"""

from __future__ import annotations

import pytest

from executor.engine import Engine, EngineConfig
from executor.kv_store import KVStore
from executor.models import kv_layout
from executor.runner import ModelRunner
from policy import POLICIES, SWAP_MODES, SchedulerConfig, make_scheduler
from profiles import cost_model, load_profile
from tests.executor.conftest import tiny
from traces import Trace

MAX_SEQ = 128


def burst_trace() -> Trace:
    """16 requests over 0.3 trace-seconds; lengths cover 1-token outputs and long contexts."""
    prompt = [42, 58, 9, 32, 61, 12, 50, 27, 8, 64, 37, 19, 44, 3, 55, 30]
    output = [29, 13, 40, 6, 1, 33, 22, 60, 17, 2, 45, 11, 9, 50, 25, 38]
    arrival = [0.02 * i for i in range(16)]
    return Trace(arrival, prompt, output)


def run(model_name: str, policy: str, swap: str, skip: bool = True, **overrides):
    t = tiny(model_name)
    cfg = SchedulerConfig(device_kv_tokens=160, host_kv_tokens=96, block_size_tokens=4, max_batch_size=6,
                          max_seq_tokens=MAX_SEQ, swap=swap, base_quantum_s=0.002, **overrides)
    sched = make_scheduler(policy, cfg, cost_model(load_profile(f"{model_name}_cpu_tp1")))
    store = KVStore(kv_layout(t.model), sched.kv.capacity, MAX_SEQ)
    engine = Engine(ModelRunner(t.model, store), store, EngineConfig(time_scale=0.01, check_invariants=True, skip=skip))
    jobs = list(burst_trace().jobs())
    result = engine.run(jobs, sched, policy, sched.swap_mode)
    return result, store, t.expected(jobs)


@pytest.mark.parametrize("skip", [True, False], ids=["reuse-plans", "schedule-every-iteration"])
@pytest.mark.parametrize("model_name", ["tiny-llama", "tiny-opt"])
@pytest.mark.parametrize("swap", SWAP_MODES)
def test_every_policy_generates_exact_tokens(model_name, swap, skip):
    totals = {"num_preemptions": 0, "num_swaps": 0, "num_recomputes": 0}
    for policy in POLICIES:
        result, store, expected = run(model_name, policy, swap, skip)
        assert result.error is None, f"{policy}: {result.error}"
        assert result.log.counts() == {"finished": 16, "rejected": 0, "unfinished": 0}
        for rid, tokens in expected.items():
            assert result.outputs[rid] == tokens, f"{policy}/{swap}: request {rid} diverged"
        assert store.is_empty, f"{policy}/{swap}: KV left in the pools"
        ints = result.log.ints
        counts = {k: sum(ints[k]) for k in totals}
        if not skip:  # one plan per iteration (plus plans that only start transfers)
            assert result.num_plans >= len(result.iterations)
        if policy == "fcfs":  # Orca reserves max_seq_tokens per job and never preempts
            assert counts == {"num_preemptions": 0, "num_swaps": 0, "num_recomputes": 0}
        else:
            assert counts["num_preemptions"] > 0, f"{policy}/{swap} never preempted"
        for k in totals:
            totals[k] += counts[k]
    assert totals["num_preemptions"] >= 20
    if swap == "recompute":
        assert totals["num_swaps"] == 0 and totals["num_recomputes"] >= 10
    else:  # each swap out and each swap in counts once; a full host forces recomputes too
        assert totals["num_swaps"] >= 20


@pytest.mark.parametrize("model_name,swap", [("tiny-llama", "proactive"), ("tiny-opt", "reactive"),
                                              ("tiny-llama", "recompute")])
def test_every_policy_generates_exact_tokens_with_chunked_prefill(model_name, swap):
    """A 12-token budget splits most prompts into chunks, each attending to the KV of the chunks
    before it (some of which was swapped out and back, or dropped and recomputed in chunks)."""
    budget = 12
    for policy in POLICIES:
        result, store, expected = run(model_name, policy, swap, chunked_prefill_tokens=budget)
        assert result.error is None, f"{policy}: {result.error}"
        for rid, tokens in expected.items():
            assert result.outputs[rid] == tokens, f"{policy}/{swap}: request {rid} diverged"
        assert store.is_empty
        it = result.iterations
        num_decodes = it["batch_size"] - it["num_prefills"]
        assert (it["prefill_tokens"] + num_decodes).max() <= budget
        assert it["prefill_context_tokens"].max() > 0  # chunks after earlier chunks ran
        # prompts were split: more prefill rows than prefills, and each row's tokens within budget
        assert (it["num_prefills"] > 0).sum() > 16 and it["prefill_tokens"].sum() >= sum(burst_trace().prompt_tokens)
        if policy != "fcfs":
            assert sum(result.log.ints["num_preemptions"]) > 0, f"{policy}/{swap} never preempted"


def test_iteration_rows_describe_the_run():
    result, _, _ = run("tiny-llama", "skip-join-mlfq", "reactive")
    it = result.iterations
    assert list(it.columns[:22]) == [
        "policy", "swap", "replica", "start_s", "end_s", "num_iterations", "batch_size", "num_prefills",
        "prefill_tokens", "decode_context_tokens", "device_kv_blocks_used", "host_kv_blocks_used",
        "swap_out_tokens", "swap_in_tokens", "num_queued", "forward_s", "decode_max_context_tokens", "admit_s",
        "num_swaps_out", "num_swaps_in", "prefill_context_tokens", "queue_level_0",
    ]
    assert (it["prefill_context_tokens"] == 0).all()  # no chunks: every prefill starts at 0
    # a row counts its plan's transfers: tokens moved only where transfers were started
    assert ((it["swap_out_tokens"] > 0) == (it["num_swaps_out"] > 0)).all()
    assert ((it["swap_in_tokens"] > 0) == (it["num_swaps_in"] > 0)).all()
    assert it["num_swaps_out"].sum() + it["num_swaps_in"].sum() > 0  # reactive mode swapped here
    # admissions are timed before the plan they join, and only there: a reused plan admitted nothing
    reused = it["start_s"].iloc[1:].to_numpy() == it["end_s"].iloc[:-1].to_numpy()
    assert (it["admit_s"] >= 0).all() and it["admit_s"].iloc[0] > 0 and (it["admit_s"].iloc[1:][reused] == 0).all()
    num_decodes = it["batch_size"] - it["num_prefills"]  # the longest decode context bounds the mean
    assert (it["decode_max_context_tokens"] * num_decodes >= it["decode_context_tokens"]).all()
    assert ((it["decode_max_context_tokens"] > 0) == (num_decodes > 0)).all()
    assert (it["decode_max_context_tokens"] <= it["decode_context_tokens"]).all()
    assert (it["num_iterations"] == 1).all() and (it["policy"] == "skip-join-mlfq").all()
    assert result.num_plans < len(it)  # pure-decode plans were reused
    assert (it["end_s"] >= it["start_s"]).all() and (it["start_s"].diff().dropna() > 0).all()
    assert it["device_kv_blocks_used"].max() <= 40 and it["host_kv_blocks_used"].max() <= 24
    # every token is produced by exactly one iteration: one per prefill or decode
    assert it["batch_size"].sum() == sum(burst_trace().output_tokens)
    assert it["swap_out_tokens"].sum() > 0 and it["swap_in_tokens"].sum() > 0
    prompts = sum(burst_trace().prompt_tokens)
    assert it["prefill_tokens"].sum() >= prompts  # recomputes prefill again
