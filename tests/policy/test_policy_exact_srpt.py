"""Exact plans for SRPT (the oracle): fewest remaining output tokens first, ties by job id,
re-keyed as running jobs make progress."""

from __future__ import annotations

import re

import pytest

from policy import SchedulerConfig, make_scheduler
from tests.policy.policy_testkit import expect, job, plan_ids


def srpt(**kw):
    return make_scheduler("srpt", SchedulerConfig(max_batch_size=1, **kw))


def test_srpt_runs_the_shortest_remaining_job_and_preempts_for_a_shorter_arrival():
    s = srpt()
    j1, j2, j3, j4 = job(1, 5, 5), job(2, 5, 2), job(3, 5, 8), job(4, 5, 3, arrival_s=0.003)
    for j in (j1, j2, j3):
        s.add(j, 0.0)
    steps = []
    p = s.schedule(0.0)  # remaining 5, 2, 8 -> J2
    steps.append(plan_ids(p))
    s.on_iteration_done(p, 0.001, 0.001)
    p = s.schedule(0.001)  # J2 has 1 left (started) < 5 < 8
    steps.append(plan_ids(p))
    assert s.on_iteration_done(p, 0.002, 0.001) == [j2]
    p = s.schedule(0.002)  # J1 (5) before J3 (8)
    steps.append(plan_ids(p))
    s.on_iteration_done(p, 0.003, 0.001)  # J1 has 4 left
    s.add(j4, 0.003)  # 3 left < 4: J4 preempts J1
    p = s.schedule(0.003)
    steps.append(plan_ids(p))
    assert steps == [
        expect(batch=[2], prefill=[2]),
        expect(batch=[2]),
        expect(batch=[1], prefill=[1]),
        expect(batch=[4], prefill=[4]),
    ]
    assert (j1.num_preemptions, j1.remaining_tokens) == (1, 4)
    for t in (0.004, 0.005):  # J4 runs to completion: 2, then 1 left
        s.on_iteration_done(p, t, 0.001)
        p = s.schedule(t)
        assert plan_ids(p) == expect(batch=[4])
    assert s.on_iteration_done(p, 0.006, 0.001) == [j4]
    assert plan_ids(s.schedule(0.006)) == expect(batch=[1])  # 4 left < 8
    assert (j1.num_preemptions, j3.num_preemptions) == (1, 0)


def test_srpt_ties_go_to_the_lower_id():
    s = srpt()
    s.add(job(7, 5, 3), 0.0)
    s.add(job(6, 5, 3), 0.0)
    assert plan_ids(s.schedule(0.0)) == expect(batch=[6], prefill=[6])


def test_srpt_rejects_ids_beyond_its_key_space():
    s = srpt()
    with pytest.raises(ValueError, match=re.escape(f"srpt: job id {1 << 40} is too large (must be < 2**40)")):
        s.add(job(1 << 40, 5, 3), 0.0)
