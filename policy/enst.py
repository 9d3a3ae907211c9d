"""MLFQ's order for proactive swapping (paper section 4.2): ENST, and fast walks in that order
(an MLFQ mixin).

ENST (estimated next scheduled time) = min(T_promote, T_execute): T_promote is the time left
until a waiting job is promoted (waiting start + alpha, the paper's estimate, `_t_promote_fn`);
T_execute is the quanta of every job queued ahead of it divided by the batch size
(`_t_execute_fn`). Offloads take the resident jobs with the largest ENST first, uploads the host
jobs with the smallest (`policy.placement._proactive_swaps`); ties go by rank. `_enst_key` is
the definition; `_offload_order` and `_upload_order` find the same jobs without sorting them.
They read MLFQ's queues, waiting indexes and alpha, and the location indexes (`policy.locations`).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from heapq import heappop, heappush

from policy.job import Job, KVLocation
from policy.scheduler import RANK_SEQ_BITS

_DEVICE, _HOST = KVLocation.DEVICE, KVLocation.HOST


class EnstOrders:
    """Mixed into `MLFQ`."""

    def _t_promote_fn(self, now_us: int) -> Callable[[Job], float]:
        """T_promote: time until a waiting job's promotion is due (the paper's estimate,
        waiting start + alpha; the check period is left out); never for the others."""
        waiting, promote_in_us, inf = self._waiting, self._alpha_us - now_us, math.inf

        def t_promote(job: Job) -> float:
            return job.waiting_since_us + promote_in_us if job.level > 0 and job.id in waiting else inf

        return t_promote

    def _t_execute_fn(self) -> Callable[[Job], float]:
        """T_execute: the quanta of every job queued ahead of this one, over the batch size."""
        ahead, quantum_us, batch = self._ahead_us(), self.quantum_us, self.config.max_batch_size
        fresh = [q.position for q in self._fresh]
        started = [q.position for q in self._started]

        def t_execute(job: Job) -> float:
            level, seq = job.level, job.seq
            return (ahead[level] + (fresh[level](seq) + started[level](seq)) * quantum_us[level]) / batch

        return t_execute

    def _enst_key(self, job: Job, now_us: int) -> float:
        return min(self._t_promote_fn(now_us)(job), self._t_execute_fn()(job))

    def _ahead_us(self) -> list[int]:
        """Per level, the quanta of every queued job in the levels above it (cached until a
        job changes queue: a decision's swaps do not)."""
        if self._queues_changed:  # True from the start: the first call builds it
            ahead, total = [], 0
            for fresh, started, quantum_us in zip(self._fresh, self._started, self.quantum_us, strict=True):
                ahead.append(total)
                total += (len(fresh) + len(started)) * quantum_us
            self._ahead_cache = ahead
            self._queues_changed = False
        return self._ahead_cache

    # Fast orders by (ENST, rank) (policy_bench.py: sorting every host job by ENST cost
    # milliseconds a decision). T_execute grows with rank and T_promote with the waiting start,
    # so each order walks one or two sorted indexes and yields a job once no job not yet seen
    # can beat it (the threshold algorithm); tests/policy/test_policy_enst.py checks them
    # against a full sort. Nothing they walk changes while the caller swaps: a transfer moves
    # a job between the location indexes only when it lands.
    def _offload_order(self, batch_ids: set[int], now_us: int) -> Iterator[Job]:
        t_execute, t_promote, in_flight, rank_of = self._t_execute_fn(), self._t_promote_fn(now_us), self._in_flight, self._rank
        promote_in_us = self._alpha_us - now_us

        def eligible(job: Job) -> bool:
            return job.kv is _DEVICE and job.id not in batch_ids and job.id not in in_flight

        seen: list[tuple[float, int, Job]] = []  # heap of (-ENST, -rank, job)
        seen_ids: set[int] = set()

        def see(job: Job) -> None:
            seen_ids.add(job.id)
            heappush(seen, (-min(t_promote(job), t_execute(job)), -rank_of(job), job))

        # Two kinds of candidates (schedule() has already stopped last batch's left-out jobs).
        # Level-0 jobs never wait: ENST = T_execute, at most that of the last level-0 device
        # job (T_execute grows with rank). Every other candidate waits on the device, and
        # walking those by waiting start backwards (`_by_wait_back`) walks T_promote down while
        # walking the device index backwards walks T_execute down: a job seen by neither walk
        # has ENST <= min(rank_walk_te, max(wait_walk_tp, level0_te)) and a rank below the rank
        # walk's cursor, so it loses ties (the larger rank goes first).
        last_level0 = self.locations.device.last_below(1 << RANK_SEQ_BITS)
        level0_te = t_execute(last_level0) if last_level0 is not None else -math.inf
        by_rank = (j for j in reversed(self.locations.device) if eligible(j))
        by_wait = (j for j in self._by_wait_back() if eligible(j))
        rank_job, wait_job = next(by_rank, None), next(by_wait, None)
        rank_job_te = t_execute(rank_job) if rank_job is not None else -math.inf
        # T_promote of the wait walk's job, inline (_t_promote_fn's rule; every job it yields waits at a
        # level > 0): a call per step was a twentieth of a fresh skip-join decision
        wait_job_tp = wait_job.waiting_since_us + promote_in_us if wait_job is not None else -math.inf
        while rank_job is not None:
            bound, bound_rank = min(rank_job_te, max(wait_job_tp, level0_te)), rank_of(rank_job)
            while seen and (-seen[0][0] > bound or (-seen[0][0] == bound and -seen[0][1] > bound_rank)):
                yield heappop(seen)[2]
            if rank_job_te <= wait_job_tp or wait_job_tp <= level0_te:  # only the rank walk can lower the bound now
                if rank_job.id not in seen_ids:
                    see(rank_job)
                rank_job = next(by_rank, None)
                rank_job_te = t_execute(rank_job) if rank_job is not None else -math.inf
            else:
                if wait_job.id not in seen_ids:
                    see(wait_job)
                wait_job = next(by_wait, None)
                wait_job_tp = wait_job.waiting_since_us + promote_in_us if wait_job is not None else -math.inf
        while seen:  # the rank walk saw every candidate
            yield heappop(seen)[2]

    def _by_wait_back(self) -> Iterator[Job]:
        """Waiting jobs on the device side, latest waiting start first."""
        stopped, brought_back = reversed(self._device_waiting.values()), reversed(self._device_waiting_back)
        stopped_job, back_job = next(stopped, None), next(brought_back, None)
        while stopped_job is not None and back_job is not None:
            if stopped_job.waiting_since_us >= back_job.waiting_since_us:
                yield stopped_job
                stopped_job = next(stopped, None)
            else:
                yield back_job
                back_job = next(brought_back, None)
        if stopped_job is not None:
            yield stopped_job
            yield from stopped
        elif back_job is not None:
            yield back_job
            yield from brought_back

    def _upload_lead_us(self, plan, slack_blocks: int, now_us: int) -> float:
        """`PlanHorizon._upload_lead_us` for the ENST order, whose first job can change while a
        plan repeats. T_execute grows with rank, so the first host job by rank, X, has the
        smallest (E); the first to be promoted, W (by waiting start, then rank), has the
        smallest T_promote (A), which falls as time passes. The order leads with X or W, and
        can hand over only from X to W, once A - t <= E. A demotion the skip runs past (above
        every left-out job, so above every host job) raises every host job's T_execute alike,
        which can only bring that forward: the plan repeats until A - E or the batch's first
        demotion, whichever comes first, if W would fit."""
        if not self._upload_lead_known:
            return 0
        leader = next(self._upload_order(now_us), None)
        if leader is None:
            return math.inf
        if leader.host_blocks <= slack_blocks:
            return 0
        first_promoted = next((j for j in self._host_waiting if j.kv is _HOST), None)
        if first_promoted is None or first_promoted is leader or first_promoted.host_blocks > slack_blocks:
            return math.inf  # the first job stays one that does not fit
        hand_over_us = self._t_promote_fn(now_us)(first_promoted) - self._t_execute_fn()(leader)
        first_demotion_us = min([self._quantum_left_us(j) for j in plan.batch])
        return max(0, math.ceil(min(hand_over_us, first_demotion_us)))  # whole us: decisions fall on them

    def _upload_order(self, now_us: int) -> Iterator[Job]:
        t_execute, t_promote, rank_of = self._t_execute_fn(), self._t_promote_fn(now_us), self._rank
        # by_wait is in (waiting start, rank) order and by_rank in rank order, so a job not yet
        # seen has T_promote >= wait_tp and T_execute >= rank_te, and when its ENST equals
        # their minimum it ranks at or after the cursor that set it: (ENST, rank) >= (bound,
        # bound_rank).
        by_wait, by_rank = iter(self._host_waiting), iter(self.locations.host)
        wait_job, rank_job = next(by_wait, None), next(by_rank, None)
        wait_tp = t_promote(wait_job) if wait_job is not None else math.inf
        rank_te = t_execute(rank_job) if rank_job is not None else math.inf
        seen: list[tuple[float, int, Job]] = []  # heap of (ENST, rank, job)
        seen_ids: set[int] = set()
        while wait_job is not None or rank_job is not None:
            bound = min(wait_tp, rank_te)
            if seen and seen[0][0] <= bound:
                bound_rank = min(rank_of(wait_job) if wait_job is not None and wait_tp == bound else math.inf,
                                 rank_of(rank_job) if rank_job is not None and rank_te == bound else math.inf)
                while seen and (seen[0][0] < bound or (seen[0][0] == bound and seen[0][1] < bound_rank)):
                    yield heappop(seen)[2]
            if wait_tp <= rank_te:
                job, wait_job = wait_job, next(by_wait, None)
                wait_tp = t_promote(wait_job) if wait_job is not None else math.inf
            else:
                job, rank_job = rank_job, next(by_rank, None)
                rank_te = t_execute(rank_job) if rank_job is not None else math.inf
            if job.id not in seen_ids and job.kv is _HOST:  # not swapping in
                seen_ids.add(job.id)
                heappush(seen, (min(t_promote(job), t_execute(job)), rank_of(job), job))
        while seen:
            yield heappop(seen)[2]
