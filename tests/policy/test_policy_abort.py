"""`Scheduler.abort`: a request whose client left frees its KV wherever it lies and leaves every
queue and index, in every policy; jobs in a running batch or a copy cannot leave yet."""

from __future__ import annotations

import pytest

from policy import POLICIES, Job, KVLocation, SchedulerConfig, make_scheduler
from tests.policy.policy_testkit import ToyCost


def _drive(policy: str, num_steps: int):
    """Four jobs on a device that holds two at a time: run `num_steps` iterations (10 ms each),
    landing every copy at once. Returns the scheduler and its jobs."""
    cfg = SchedulerConfig(device_kv_tokens=64, host_kv_tokens=64, max_batch_size=4, max_seq_tokens=64,
                          base_quantum_s=0.01, swap="reactive" if policy == "fcfs" else None)
    sched = make_scheduler(policy, cfg, ToyCost())
    jobs = [Job(id=i, arrival_s=0.0, prompt_tokens=20, output_tokens=12) for i in range(4)]
    for job in jobs:
        sched.add(job, 0.0)
    now = 0.0
    for _ in range(num_steps):
        plan = sched.schedule(now)
        for job in plan.swap_out + plan.swap_in:
            sched.on_swap_done(job, now)
        now += 0.01
        if plan.batch:
            sched.on_iteration_done(plan, now, 0.01)
    return sched, jobs


@pytest.mark.parametrize("policy", sorted(POLICIES))
def test_abort_frees_device_or_host_kv_and_the_rest_still_finishes(policy):
    seen = set()
    for num_steps in range(0, 12):  # abort at every point of the run, each from a fresh start
        sched, jobs = _drive(policy, num_steps)
        victim = next((j for j in jobs if j.id in sched.jobs and j.kv is KVLocation.HOST), None) or \
            next(j for j in jobs if j.id in sched.jobs)
        seen.add(victim.kv)
        assert sched.can_abort(victim)
        sched.abort(victim)
        assert victim.id not in sched.jobs and victim.kv is KVLocation.NONE
        assert victim.device_blocks == victim.host_blocks == 0 and victim.finish_s != victim.finish_s  # NaN
        held_device = sum(j.device_blocks for j in sched.jobs.values())
        held_host = sum(j.host_blocks for j in sched.jobs.values())
        assert (sched.kv.device_used_blocks, sched.kv.host_used_blocks) == (held_device, held_host)
        now = 1.0
        for _ in range(200):  # the others still run to the end
            if sched.idle:
                break
            plan = sched.schedule(now)
            assert victim not in plan.batch + plan.swap_in + plan.swap_out
            for job in plan.swap_out + plan.swap_in:
                sched.on_swap_done(job, now)
            now += 0.01
            if plan.batch:
                sched.on_iteration_done(plan, now, 0.01)
        assert sched.idle and sched.kv.device_used_blocks == sched.kv.host_used_blocks == 0
        assert all(j.finished for j in jobs if j is not victim)
    assert KVLocation.NONE in seen and KVLocation.DEVICE in seen
    if policy in ("mlfq", "skip-join-mlfq", "srpt"):  # preemptive with swapping by default
        assert KVLocation.HOST in seen


def test_a_job_in_a_running_batch_cannot_abort():
    sched, jobs = _drive("skip-join-mlfq", 0)
    plan = sched.schedule(0.0)
    job = plan.batch[0]
    assert not sched.can_abort(job)
    with pytest.raises(ValueError, match="cannot abort now"):
        sched.abort(job)
    sched.on_iteration_done(plan, 0.01, 0.01)
    assert sched.can_abort(job)
