"""Multi-level feedback queues: naive MLFQ and FastServe's skip-join MLFQ (paper section 4.1).

- Level i has quantum q_i = q_1 * growth**i. A job that has used up its level's quantum moves
  down `demotion_levels` levels (to the tail of that queue), its attained service reset.
- `mlfq` puts every new job in the top queue. `skip-join-mlfq` puts it in the highest queue
  whose quantum is at least its predicted prefill time, so a long prompt does not spend its
  first iteration blocking short jobs at the top, nor get demoted straight after it.
- Starvation: at every `starvation_check_iterations`-th iteration, a job below the top level
  that has waited at least `alpha_s` since it last ran (or arrived) goes back to the top.
- Inside a level, jobs run in FIFO order of when they entered it.
- ENST (estimated next scheduled time) orders proactive swaps: min(T_promote, T_execute),
  where T_execute sums the quanta of the jobs ahead of it divided by the batch size.
"""

from __future__ import annotations

import math
from bisect import bisect_left
from collections.abc import Callable, Iterator
from heapq import heappop, heappush
from operator import itemgetter

from policy.config import SchedulerConfig
from policy.cost import CostEstimate
from policy.job import Job, KVLocation, to_us
from policy.plan import Plan
from policy.queue import JobQueue, RankIndex, merge_by_seq
from policy.scheduler import _NO_LIMIT_ITERATIONS, RANK_SEQ_BITS, Scheduler

_DEVICE, _HOST, _NONE = KVLocation.DEVICE, KVLocation.HOST, KVLocation.NONE


class MLFQ(Scheduler):
    name = "mlfq"
    default_swap = "proactive"

    def __init__(self, config: SchedulerConfig | None = None, cost: CostEstimate | None = None) -> None:
        super().__init__(config, cost)
        cfg = self.config
        self.quantum_us = [to_us(cfg.base_quantum_s * cfg.quantum_growth**i) for i in range(cfg.num_levels)]
        self._alpha_us = to_us(cfg.alpha_s)
        self._fresh = [JobQueue() for _ in range(cfg.num_levels)]
        self._started = [JobQueue() for _ in range(cfg.num_levels)]
        # Jobs below the top level that are not running, in order of waiting_since_us
        # (jobs join at the time they stop running, and time only moves forward).
        self._waiting: dict[int, Job] = {}
        self._host_waiting = RankIndex()  # those of them on the host, by (waiting since, rank)
        # Those on the device, for the offload walk, in order of waiting start: the ones that
        # stopped there (appended, since they stop now) and the ones an upload brought back
        # (older waiting starts: indexed by (waiting since, rank) like the host's).
        self._device_waiting: dict[int, Job] = {}
        self._device_waiting_back = RankIndex()
        self._wait_shift = RANK_SEQ_BITS + cfg.num_levels.bit_length()  # packs (waiting since, rank)
        self._checked_epoch = 0
        self._ahead_cache: list[int] | None = None

    def join_level(self, job: Job) -> int:
        return 0

    def level_counts(self) -> list[int]:
        return [len(f) + len(s) for f, s in zip(self._fresh, self._started, strict=True)]

    def _join(self, job: Job, now_us: int) -> None:
        job.level = self.join_level(job)
        job.seq = self._new_seq()

    def _queue_for(self, job: Job) -> JobQueue:
        return (self._fresh if job.needs_prefill else self._started)[job.level]

    def _walk(self) -> Iterator[Job]:
        closed = lambda: self._prefill_closed  # noqa: E731
        for fresh, started in zip(self._fresh, self._started, strict=True):
            if not fresh:
                yield from started
            elif started:
                yield from merge_by_seq(fresh, started, closed)
            elif not self._prefill_closed:
                for job in fresh:
                    if self._prefill_closed:
                        break
                    yield job

    def _on_served(self, job: Job, elapsed_us: int) -> None:
        if job.attained_us >= self.quantum_us[job.level]:
            self._demote(job, self._lower(job.level))

    def _lower(self, level: int) -> int:
        return min(self.config.num_levels - 1, level + self.config.demotion_levels)

    def _demote(self, job: Job, level: int) -> None:
        job.level = level
        job.attained_us = 0
        self._place(job, new_seq=self._new_seq())

    def _on_served_batch(self, jobs: list[Job], elapsed_us: int, iteration_ends_us) -> None:
        if iteration_ends_us is None:
            return super()._on_served_batch(jobs, elapsed_us, None)
        # Several iterations at once: find, per job, every iteration at whose end its quantum
        # ran out (cumulative service crossing q_level, then counting again from zero), then
        # apply the demotions in the order a step-by-step run would, since each one queues the
        # job behind the jobs demoted before it: by iteration, and within one iteration in that
        # iteration's batch order, which is priority order after the earlier iterations'
        # demotions. (Not this plan's order: when every unfinished job runs, the skip goes on
        # past demotions, and a stepping run's batch is re-sorted after each one. Fix: ordering
        # by position made skip-join results differ from stepping, found by
        # tests/policy/test_policy_skipping.py.)
        ends = iteration_ends_us
        events = []
        for position, job in enumerate(jobs):
            level, base_us, attained_us = job.level, 0, job.attained_us
            charged = len(ends) - 1 if job.finished else len(ends)  # retired before its last
            while True:
                i = bisect_left(ends, base_us + self.quantum_us[level] - attained_us, 0, charged)
                if i >= charged:
                    break
                level, base_us, attained_us = self._lower(level), int(ends[i]), 0
                events.append((i, position, level))
            job.attained_us = attained_us + int(ends[-1]) - base_us
        final_attained = [job.attained_us for job in jobs]
        events.sort(key=itemgetter(0))  # by iteration; stable
        start = 0
        while start < len(events):
            end = start
            while end < len(events) and events[end][0] == events[start][0]:
                end += 1
            # priority at the start of this iteration, before any of its demotions
            group = sorted(events[start:end], key=lambda e: self._rank(jobs[e[1]]))
            for _, position, level in group:
                self._demote(jobs[position], level)
            start = end
        for job, attained_us in zip(jobs, final_attained, strict=True):
            job.attained_us = attained_us

    def _on_stopped(self, job: Job, now_us: int) -> None:
        job.waiting_since_us = now_us
        if job.level > 0:
            self._waiting[job.id] = job
            if job in self._device:
                self._device_waiting[job.id] = job
            elif job in self._host:
                self._host_waiting.add(job, self._wait_key(job))

    def _on_selected(self, job: Job) -> None:
        if self._waiting.pop(job.id, None) is not None:
            self._unindex_waiting(job)

    def _on_finished(self, job: Job) -> None:
        self._ahead_cache = None
        if self._waiting.pop(job.id, None) is not None:
            self._unindex_waiting(job)

    def _on_relocated(self, job: Job, old: KVLocation) -> None:
        # A prefill (from NONE) was in no index and is in this decision's batch, about to be
        # selected: nothing to move. Jobs that are not waiting are in no waiting index.
        if old is _NONE or job.id not in self._waiting:
            return
        self._unindex_waiting(job)
        if job in self._host:  # an offload landed
            self._host_waiting.add(job, self._wait_key(job))
        elif job in self._device:  # an upload landed
            self._device_waiting_back.add(job, self._wait_key(job))

    def _wait_key(self, job: Job) -> int:
        return (job.waiting_since_us << self._wait_shift) | self._rank(job)

    def _unindex_waiting(self, job: Job) -> None:
        if self._device_waiting.pop(job.id, None) is None:  # the common case: stopped on the device
            self._device_waiting_back.discard(job)
            self._host_waiting.discard(job)

    def _before_schedule(self, now_us: int) -> None:
        epoch = self.num_iterations // self.config.starvation_check_iterations
        if epoch <= self._checked_epoch:
            return
        self._checked_epoch = epoch
        while self._waiting:
            job = next(iter(self._waiting.values()))
            if now_us - job.waiting_since_us < self._alpha_us:
                break
            del self._waiting[job.id]
            self._unindex_waiting(job)
            job.level = 0
            job.attained_us = 0
            self._place(job, new_seq=self._new_seq())

    # -- event skipping ----------------------------------------------------------------------
    def _deadline_us(self, plan: Plan, now_us: int) -> float:
        if len(self.jobs) == len(plan.batch):
            # Every unfinished job is running: a demotion cannot change who runs, and `advance`
            # charges quanta iteration by iteration, so only memory and the engine bound a skip.
            return math.inf
        deadline = min(self.quantum_us[j.level] - j.attained_us for j in plan.batch)
        if self._waiting and self.config.starvation_check_iterations == 1:
            first = next(iter(self._waiting.values()))
            deadline = min(deadline, first.waiting_since_us + self._alpha_us - now_us)
        return deadline

    def _max_iterations(self) -> int:
        period = self.config.starvation_check_iterations
        if self._waiting and period > 1:
            # The first check must fall on the last repeated iteration at the latest, so that
            # a skipped run checks exactly when a step-by-step run would.
            return period - self.num_iterations % period
        return _NO_LIMIT_ITERATIONS

    # -- proactive swapping ------------------------------------------------------------------
    def _t_promote(self, job: Job, now_us: int) -> float:
        if job.level > 0 and job.id in self._waiting:
            return job.waiting_since_us + self._alpha_us - now_us
        return math.inf

    def _ahead_us(self) -> list[int]:
        """Per level, the quanta of every queued job in the levels above it (cached until a
        job changes queue: a decision's swaps do not)."""
        if self._ahead_cache is None:
            ahead, total = [], 0
            for fresh, started, quantum_us in zip(self._fresh, self._started, self.quantum_us, strict=True):
                ahead.append(total)
                total += (len(fresh) + len(started)) * quantum_us
            self._ahead_cache = ahead
        return self._ahead_cache

    def _place(self, job: Job, new_seq: int | None = None) -> None:
        self._ahead_cache = None
        super()._place(job, new_seq)

    def _enst_key(self, job: Job, now_us: int) -> float:
        return min(self._t_promote(job, now_us), self._t_execute_fn()(job))

    # Fast orders by (ENST, rank) (policy_bench.py: sorting every host job by ENST cost
    # milliseconds a decision). T_execute grows with rank and T_promote with the waiting start,
    # so each order walks one or two sorted indexes and yields a job once no job not yet seen
    # can beat it (the threshold algorithm); tests/policy/test_policy_enst.py checks them
    # against a full sort. Nothing they walk changes while the caller swaps: a transfer moves
    # a job between the location indexes only when it lands. T_execute and T_promote are
    # inlined (the walks visit tens of jobs a decision).
    def _t_execute_fn(self) -> Callable[[Job], float]:
        ahead, quantum_us, batch = self._ahead_us(), self.quantum_us, self.config.max_batch_size
        fresh = [q.position for q in self._fresh]
        started = [q.position for q in self._started]

        def t_execute(job: Job) -> float:
            level, seq = job.level, job.seq
            return (ahead[level] + (fresh[level](seq) + started[level](seq)) * quantum_us[level]) / batch

        return t_execute

    def _offload_order(self, batch_ids: set[int], now_us: int) -> Iterator[Job]:
        t_execute, in_flight, waiting, rank_of = self._t_execute_fn(), self._in_flight, self._waiting, self._rank
        promote_at_us = self._alpha_us - now_us
        inf = math.inf

        def eligible(job: Job) -> bool:
            return job.kv is _DEVICE and job.id not in batch_ids and job.id not in in_flight

        seen: list[tuple[float, int, Job]] = []  # heap of (-ENST, -rank, job)
        seen_ids: set[int] = set()

        def see(job: Job) -> None:
            te = t_execute(job)
            tp = job.waiting_since_us + promote_at_us if job.level > 0 and job.id in waiting else inf
            seen_ids.add(job.id)
            heappush(seen, (-(tp if tp < te else te), -rank_of(job), job))

        # Three kinds of candidates. Jobs that ran last time and were left out are not waiting
        # yet (schedule() stops them after the swaps): ENST = T_execute; they are at most a
        # batch, taken at once. Level-0 jobs never wait: ENST = T_execute, at most that of the
        # last level-0 device job (T_execute grows with rank). Every other candidate waits on
        # the device, and walking those by waiting start backwards (`_by_wait_back`) walks
        # T_promote down while walking the device index backwards walks T_execute down: a job seen by
        # neither walk has ENST <= min(te_r, max(tp_w, t0)) and a rank below the rank walk's
        # cursor, so it loses ties (the larger rank goes first).
        for job in self._running.values():
            if eligible(job):
                see(job)
        last_level0 = self._device.last_below(1 << RANK_SEQ_BITS)
        t0 = t_execute(last_level0) if last_level0 is not None else -inf
        by_rank = (j for j in reversed(self._device) if eligible(j))
        by_wait = (j for j in self._by_wait_back() if eligible(j))
        r, w = next(by_rank, None), next(by_wait, None)
        te_r = t_execute(r) if r is not None else -inf
        tp_w = w.waiting_since_us + promote_at_us if w is not None else -inf
        while r is not None:
            bound, rank_r = min(te_r, max(tp_w, t0)), rank_of(r)
            while seen and (-seen[0][0] > bound or (-seen[0][0] == bound and -seen[0][1] > rank_r)):
                yield heappop(seen)[2]
            if te_r <= tp_w or tp_w <= t0:  # only the rank walk can lower the bound now
                if r.id not in seen_ids:
                    see(r)
                r = next(by_rank, None)
                te_r = t_execute(r) if r is not None else -inf
            else:
                if w.id not in seen_ids:
                    see(w)
                w = next(by_wait, None)
                tp_w = w.waiting_since_us + promote_at_us if w is not None else -inf
        while seen:  # the rank walk saw every candidate
            yield heappop(seen)[2]

    def _by_wait_back(self) -> Iterator[Job]:
        """Waiting jobs on the device side, latest waiting start first."""
        tail, back = reversed(self._device_waiting.values()), reversed(self._device_waiting_back)
        x, y = next(tail, None), next(back, None)
        while x is not None and y is not None:
            if x.waiting_since_us >= y.waiting_since_us:
                yield x
                x = next(tail, None)
            else:
                yield y
                y = next(back, None)
        if x is not None:
            yield x
            yield from tail
        elif y is not None:
            yield y
            yield from back

    def _upload_order(self, now_us: int) -> Iterator[Job]:
        t_execute, waiting, rank_of = self._t_execute_fn(), self._waiting, self._rank
        promote_at_us = self._alpha_us - now_us

        def t_promote(job: Job) -> float:
            return job.waiting_since_us + promote_at_us if job.level > 0 and job.id in waiting else math.inf

        # by_wait is in (waiting start, rank) order and by_rank in rank order, so a job not yet
        # seen has T_promote >= a_us, T_execute >= b_us, and when its ENST equals their minimum
        # it ranks at or after the cursor that set it: (ENST, rank) >= (bound, bound_rank).
        by_wait, by_rank = iter(self._host_waiting), iter(self._host)
        a, b = next(by_wait, None), next(by_rank, None)
        a_us = t_promote(a) if a is not None else math.inf
        b_us = t_execute(b) if b is not None else math.inf
        seen: list[tuple[float, int, Job]] = []  # heap of (ENST, rank, job)
        seen_ids: set[int] = set()
        while a is not None or b is not None:
            bound = min(a_us, b_us)
            if seen and seen[0][0] <= bound:
                bound_rank = min(rank_of(a) if a is not None and a_us == bound else math.inf,
                                 rank_of(b) if b is not None and b_us == bound else math.inf)
                while seen and (seen[0][0] < bound or (seen[0][0] == bound and seen[0][1] < bound_rank)):
                    yield heappop(seen)[2]
            if a_us <= b_us:
                job, a = a, next(by_wait, None)
                a_us = t_promote(a) if a is not None else math.inf
            else:
                job, b = b, next(by_rank, None)
                b_us = t_execute(b) if b is not None else math.inf
            if job.id not in seen_ids and job.kv is _HOST:  # not swapping in
                seen_ids.add(job.id)
                tp, te = t_promote(job), t_execute(job)
                heappush(seen, (tp if tp < te else te, rank_of(job), job))
        while seen:
            yield heappop(seen)[2]


class SkipJoinMLFQ(MLFQ):
    name = "skip-join-mlfq"

    def __init__(self, config: SchedulerConfig | None = None, cost: CostEstimate | None = None) -> None:
        if cost is None:
            raise ValueError("skip-join-mlfq needs a cost estimate (its prefill_s predicts the join level)")
        super().__init__(config, cost)

    def join_level(self, job: Job) -> int:
        prefill_us = to_us(self.cost.prefill_s(job.prompt_tokens))
        for level, quantum_us in enumerate(self.quantum_us):
            if quantum_us >= prefill_us:
                return level
        return self.config.num_levels - 1
