"""Every ValueError of the policy module, with its exact one-line message."""

from __future__ import annotations

import math
import re

import pytest

from policy import (
    DISPATCHERS,
    POLICIES,
    SWAP_MODES,
    Job,
    KVCapacity,
    KVLocation,
    KVSpace,
    Plan,
    RequestLog,
    SchedulerConfig,
    make_dispatcher,
    make_scheduler,
)
from policy.queue import JobQueue
from tests.policy.policy_testkit import ToyCost, job


def raises(msg: str):
    return pytest.raises(ValueError, match=f"^{re.escape(msg)}$")


def test_registry_names_and_defaults():
    assert list(POLICIES) == ["fcfs", "vllm-fcfs", "mlfq", "skip-join-mlfq", "srpt", "sarathi"]
    assert SWAP_MODES == ("proactive", "reactive", "recompute")
    cost = ToyCost()
    modes = {name: make_scheduler(name, None, cost).swap_mode for name in POLICIES}
    assert modes == {"fcfs": "recompute", "vllm-fcfs": "recompute", "mlfq": "proactive",
                     "skip-join-mlfq": "proactive", "srpt": "proactive", "sarathi": "recompute"}
    assert make_scheduler("mlfq", SchedulerConfig(swap="reactive"), cost).swap_mode == "reactive"


@pytest.mark.parametrize("name", [
    "device_kv_tokens", "block_size_tokens", "max_batch_size", "max_prefill_tokens",
    "max_seq_tokens", "num_levels", "demotion_levels", "starvation_check_iterations",
])
@pytest.mark.parametrize("value", [0, -3, 2.0, True, "4"])
def test_config_positive_integers(name, value):
    with raises(f"{name} must be a positive integer, got {value!r}"):
        SchedulerConfig(**{name: value})


@pytest.mark.parametrize(("kwargs", "msg"), [
    ({"host_kv_tokens": -1}, "host_kv_tokens must be an integer >= 0, got -1"),
    ({"host_kv_tokens": 1.5}, "host_kv_tokens must be an integer >= 0, got 1.5"),
    ({"host_kv_tokens": True}, "host_kv_tokens must be an integer >= 0, got True"),
    ({"device_kv_tokens": 3, "block_size_tokens": 4},
     "device_kv_tokens (3) is smaller than one block (4 tokens)"),
    ({"swap": "lazy"}, "swap must be one of proactive, reactive, recompute, got 'lazy'"),
    ({"swap_reserve_fraction": 1.0}, "swap_reserve_fraction must be in [0, 1), got 1.0"),
    ({"swap_reserve_fraction": -0.1}, "swap_reserve_fraction must be in [0, 1), got -0.1"),
    ({"base_quantum_s": 0.0}, "base_quantum_s must be a positive number of seconds or 'auto', got 0.0"),
    ({"base_quantum_s": math.nan}, "base_quantum_s must be a positive number of seconds or 'auto', got nan"),
    ({"base_quantum_s": "fast"}, "base_quantum_s must be a positive number of seconds or 'auto', got 'fast'"),
    ({"starvation_check_s": -1.0}, "starvation_check_s must be >= 0, got -1.0"),
    ({"starvation_check_s": math.inf}, "starvation_check_s must be a finite number, got inf"),
    ({"promotion": "eager"}, "promotion must be one of quantum, paper, got 'eager'"),
    ({"alpha_s": math.inf}, "alpha_s must be a finite number, got inf"),
    ({"quantum_growth": "2"}, "quantum_growth must be a finite number, got '2'"),
    ({"swap_reserve_fraction": False}, "swap_reserve_fraction must be a finite number, got False"),
    ({"quantum_growth": 0.5}, "quantum_growth must be >= 1, got 0.5"),
    ({"alpha_s": 0.0}, "alpha_s must be > 0, got 0.0"),
])
def test_config_other_fields(kwargs, msg):
    with raises(msg):
        SchedulerConfig(**kwargs)


def test_config_defaults_are_valid_and_frozen():
    cfg = SchedulerConfig()
    assert (cfg.base_quantum_s, cfg.quantum_growth, cfg.alpha_s, cfg.starvation_check_s,
            cfg.starvation_check_iterations, cfg.promotion, cfg.max_prefill_tokens) == (
        "auto", 2.0, 3.0, 0.0, None, "quantum", 2048)
    with pytest.raises(AttributeError):
        cfg.alpha_s = 1.0  # type: ignore[misc]


@pytest.mark.parametrize(("args", "msg"), [
    ((4, 0, 0), "block_size_tokens must be positive, got 0"),
    ((0, 0, 1), "device KV capacity must be positive, got 0 blocks"),
    ((4, -1, 1), "host KV capacity must be >= 0, got -1 blocks"),
])
def test_kv_capacity(args, msg):
    with raises(msg):
        KVCapacity(*args)


def test_kv_capacity_from_tokens_keeps_whole_blocks():
    cap = KVCapacity.from_tokens(10, 7, 4)
    assert (cap.device_blocks, cap.host_blocks, cap.device_tokens, cap.host_tokens) == (2, 1, 8, 4)


def test_make_scheduler_errors():
    with raises("unknown policy 'lifo'; choose one of fcfs, vllm-fcfs, mlfq, skip-join-mlfq, srpt, sarathi, "
                "or give module:Class or path/to/file.py:Class"):
        make_scheduler("lifo")
    with raises("skip-join-mlfq needs a cost estimate (its prefill_s predicts the join level)"):
        make_scheduler("skip-join-mlfq", SchedulerConfig())
    with raises("base_quantum_s = 'auto' needs a cost estimate (q_1 is the shortest iteration)"):
        make_scheduler("mlfq", SchedulerConfig())
    assert make_scheduler("mlfq", SchedulerConfig(base_quantum_s=0.01)).quantum_us[0] == 10_000
    with raises("fcfs: device KV capacity (100 tokens) cannot hold one request of max_seq_tokens = 200"):
        make_scheduler("fcfs", SchedulerConfig(device_kv_tokens=100, max_seq_tokens=200))
    # vLLM-style FCFS allocates token by token, so the same capacity is fine.
    make_scheduler("vllm-fcfs", SchedulerConfig(device_kv_tokens=100, max_seq_tokens=200))


@pytest.mark.parametrize(("prompt", "output"), [(0, 5), (5, 0), (-1, 5)])
def test_job_lengths_must_be_positive(prompt, output):
    with raises(f"job 3: prompt_tokens and output_tokens must be positive, got {prompt} and {output}"):
        Job(id=3, arrival_s=0.0, prompt_tokens=prompt, output_tokens=output)


@pytest.mark.parametrize("arrival", [-1.0, math.nan, math.inf])
def test_job_arrival_must_be_finite(arrival):
    with raises(f"job 3: arrival_s must be finite and >= 0, got {arrival}"):
        Job(id=3, arrival_s=arrival, prompt_tokens=1, output_tokens=1)


def test_job_derived_values():
    j = job(1, 10, 4, arrival_s=1.0)
    j.generated_tokens = 3
    j.first_token_s, j.finish_s = 1.5, 3.0
    assert (j.context_tokens, j.remaining_tokens, j.finished, j.needs_prefill) == (13, 1, False, True)
    assert (j.ttft_s, j.jct_s) == (0.5, 2.0)
    j.generated_tokens = 4
    assert j.finished


def test_scheduler_add_errors():
    s = make_scheduler("mlfq", SchedulerConfig(device_kv_tokens=10, max_seq_tokens=20), ToyCost())
    s.add(job(1, 5, 5), 0.0)
    with raises("job 1 was added twice"):
        s.add(job(1, 5, 5), 0.0)
    assert s.reject_reason(job(2, 15, 6)) == "prompt_tokens + output_tokens = 21 exceeds max_seq_tokens = 20"
    with raises("job 2: prompt_tokens + output_tokens = 21 exceeds max_seq_tokens = 20"):
        s.add(job(2, 15, 6), 0.0)
    with raises("job 3: needs 11 tokens of KV, more than the device holds (10)"):
        s.add(job(3, 6, 5), 0.0)
    assert s.reject_reason(job(4, 5, 5)) is None
    assert sorted(s.jobs) == [1]


def test_advance_refuses_to_repeat_a_prefill():
    s = make_scheduler("srpt", None, ToyCost())  # its walk re-keys jobs as they run
    s.add(job(1, 5, 5), 0.0)
    p = s.schedule(0.0)
    with raises("advance: this plan cannot be repeated (horizon() allows one iteration)"):
        s.advance(p, 0.002, 2, 0.002, [1_000, 2_000])


def test_advance_needs_every_iteration_end():
    s = make_scheduler("mlfq", None, ToyCost())
    s.add(job(1, 5, 5), 0.0)
    p = s.schedule(0.0)
    s.on_iteration_done(p, 0.001, 0.001)
    p = s.schedule(0.001)
    with raises("advance: 2 iterations need 2 iteration_ends_us"):
        s.advance(p, 0.003, 2, 0.002)


def test_kv_space_check_act_errors():
    kv = KVSpace(KVCapacity(device_blocks=4, host_blocks=2, block_size_tokens=2))
    j = job(1, 3, 5)
    assert kv.blocks_for(3) == 2 and kv.blocks_for(4) == 2 and kv.blocks_for(5) == 3
    with raises("job 1: cannot swap out (none, host free 2)"):
        kv.start_swap_out(j)
    kv.grow(j, 3)
    assert (j.kv, j.device_blocks, kv.device_used_blocks) == (KVLocation.DEVICE, 2, 2)
    with raises("job 1: needs 4 device blocks, 2 free"):
        kv.grow(j, 11)
    with raises("job 1: no transfer in flight (KV is device)"):
        kv.finish_swap(j)
    with raises("job 1: cannot swap in (device, device free 2)"):
        kv.start_swap_in(j)
    j.kv_tokens = 3
    kv.start_swap_out(j)
    assert (kv.device_used_blocks, kv.releasing_blocks, kv.host_used_blocks) == (0, 2, 2)
    assert (kv.device_free_blocks, kv.device_plannable_blocks, kv.host_free_blocks) == (2, 4, 0)
    with raises("job 1: cannot drop KV while it is swapping_out"):
        kv.drop(j)
    kv.grow(job(2, 3, 1), 6)  # plans 3 blocks into releasing room
    assert kv.overcommitted() and not kv.overcommitted(starting_blocks=1)
    kv.finish_swap(j)
    assert (j.kv, j.device_blocks, j.host_blocks, kv.releasing_blocks) == (KVLocation.HOST, 0, 2, 0)
    assert not kv.overcommitted()


def test_job_queue_errors_and_order():
    q = JobQueue()
    a, b, c = job(1, 1, 1), job(2, 1, 1), job(3, 1, 1)
    a.seq, b.seq, c.seq = 5, 9, 7
    for j in (a, b, c):
        q.add(j)
    assert [j.id for j in q] == [1, 3, 2] and [j.seq for j in q] == [5, 7, 9] and len(q) == 3
    d = job(4, 1, 1)
    d.seq = 7
    with raises("job 4: seq 7 already queued"):
        q.add(d)
    with pytest.raises(KeyError, match="job 4 is not in this queue"):
        q.remove(d)
    q.remove(c)
    assert [j.id for j in q] == [1, 2]


def test_dispatcher_and_request_log_errors():
    assert list(DISPATCHERS) == ["round-robin", "least-work", "shortest-queue"]
    with raises("unknown dispatcher 'random'; choose one of round-robin, least-work, shortest-queue"):
        make_dispatcher("random")
    with raises("status must be one of ('finished', 'rejected', 'unfinished'), got 'lost'"):
        RequestLog().record(job(1, 1, 1), 1, 0, status="lost")


def test_plan_views():
    a, b = job(1, 4, 3), job(2, 6, 3)
    b.generated_tokens = 2
    p = Plan(batch=[a, b], prefill_ids=frozenset({1}))
    assert (p.prefill_tokens, p.decode_context_tokens, p.is_prefill(a), p.is_pure_decode) == (
        [4], [8], True, False)
    assert Plan(batch=[b]).is_pure_decode and not Plan().is_pure_decode
