"""Multi-level feedback queues: naive MLFQ and FastServe's skip-join MLFQ (paper section 4.1).

The paper's rules, each in one place below (the rest of the file makes them cheap):
- Quanta: level i has q_i = q_1 * growth**i; q_1 is the shortest iteration (`quantum_us`).
- Join: `mlfq` puts every new job in the top queue; `skip-join-mlfq` in the highest queue whose
  quantum is at least its predicted prefill time (`SkipJoinMLFQ.join_level`), so a long prompt
  neither blocks short jobs at the top for its first iteration nor is demoted right after it.
- Demotion: a job that has used up its quantum moves down `demotion_levels` levels, to the tail
  of that queue, its attained service reset (`on_served`, `_next_level`).
- Starvation (`before_schedule`): a job below the top level that has waited `alpha_s` since it
  last ran (or arrived) goes back to the top (`_promote`). Checks fall on the policy's clock
  every `starvation_check_s` (0: at every decision), or every `starvation_check_iterations`
  iterations (the artifact's rule). With `promotion="paper"` a promoted job starts the top
  level afresh, so it is demoted after q_1, usually one token. Under memory pressure that is a
  swap cycle: the promoted job is uploaded, runs one iteration, trickles down levels one
  short quantum at a time while every other promoted job is uploaded in turn, and is offloaded
  again; swaps and re-prefills then took a quarter of the GPU (mean JCT 218 s instead of 26 s,
  37,270 swaps instead of 3,312, on OPT-13B / A100-40GB at 1.1 req/s). With
  `promotion="quantum"` (default) a promoted job keeps the top level until it has received
  the quantum of the level it came from (`home_level`), then returns to that level: a swap buys
  a whole quantum of service, and the wait of a starved job stays bounded by about alpha plus
  one quantum.
- Inside a level, jobs run in FIFO order of when they entered it.
- ENST (estimated next scheduled time) orders proactive swaps: min(T_promote, T_execute), with
  T_promote the time left until the job is promoted and T_execute the quanta of the jobs ahead
  of it divided by the batch size (`policy.enst`).
"""

from __future__ import annotations

import math
from bisect import bisect_left
from collections.abc import Callable, Iterable, Iterator
from itertools import chain
from operator import itemgetter

from policy.config import AUTO, SchedulerConfig
from policy.cost import CostEstimate
from policy.enst import EnstOrders
from policy.hooks import keeps_hooks
from policy.job import Job, KVLocation, to_us
from policy.plan import Plan
from policy.queue import JobQueue, RankIndex, merge_by_seq
from policy.scheduler import _NO_LIMIT_ITERATIONS, RANK_SEQ_BITS, Scheduler

_DEVICE, _HOST, _NONE = KVLocation.DEVICE, KVLocation.HOST, KVLocation.NONE
# What a prefill plan's repeat relies on (`repeats_prefill_plans`); `join` and `join_level` only
# file new jobs, and the skip bounds (`deadline_us`, `max_iterations`) are the subclass's own.
_ORDER_HOOKS = ("queue_for", "walk", "_level_walks", "before_schedule", "on_served", "_on_served_batch",
                "on_stopped", "on_selected", "place", "_demote", "_next_level", "_quantum_left_us")


def base_quantum_s(config: SchedulerConfig, cost: CostEstimate | None) -> float:
    """q_1 in seconds: the configured value, or for "auto" the cost model's shortest iteration."""
    if config.base_quantum_s != AUTO:
        return config.base_quantum_s
    if cost is None:
        raise ValueError("base_quantum_s = 'auto' needs a cost estimate (q_1 is the shortest iteration)")
    return cost.min_iteration_s()


class MLFQ(EnstOrders, Scheduler):
    name = "mlfq"
    default_swap = "proactive"

    def __init__(self, config: SchedulerConfig | None = None, cost: CostEstimate | None = None) -> None:
        super().__init__(config, cost)
        cfg = self.config
        q1_s = base_quantum_s(cfg, cost)
        self.quantum_us = [max(1, to_us(q1_s * cfg.quantum_growth**i)) for i in range(cfg.num_levels)]
        self._alpha_us = to_us(cfg.alpha_s)
        self._check_us = to_us(cfg.starvation_check_s)
        self._keep_quantum = cfg.promotion == "quantum"
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
        self._ahead_cache: list[int] = []
        self._overtaken_by_left_out: dict[int, tuple[list[int], list[int]]] = {}
        rule = ("_service_until_overtaken_us", "_next_level", "_quantum_left_us")
        # A prefill leaves MLFQ's walk as it was: the job moves from its level's fresh queue to
        # the started one with its seq, and the walk merges the two by seq.
        self.repeats_prefill_plans = keeps_hooks(type(self), MLFQ, _ORDER_HOOKS)
        self._upload_lead_known = keeps_hooks(type(self), MLFQ, (
            "_upload_order", "_t_promote_fn", "_t_execute_fn", "_quantum_left_us"))
        self._overtaken_tables = self._overtaken_table_for if keeps_hooks(type(self), MLFQ, rule) else None

    # -- the paper's rules ---------------------------------------------------------------------
    def join_level(self, job: Job) -> int:
        return 0

    def _quantum_left_us(self, job: Job) -> int:
        """Service the job may still use before it is demoted (or, promoted, sent home)."""
        level = job.home_level if job.home_level >= 0 else job.level
        return self.quantum_us[level] - job.attained_us

    def _next_level(self, level: int, home_level: int) -> int:
        """Where a job goes when its quantum is used up: one step down, or home after a promotion."""
        if home_level >= 0:
            return home_level
        return min(self.config.num_levels - 1, level + self.config.demotion_levels)

    def on_served(self, job: Job, elapsed_us: int) -> None:
        if self._quantum_left_us(job) <= 0:
            self._demote(job, self._next_level(job.level, job.home_level))

    def _demote(self, job: Job, level: int) -> None:
        job.level = level
        job.home_level = -1
        job.attained_us = 0
        self._next_seq += 1  # `new_seq`, inlined: tens of demotions a decision
        self.place(job, new_seq=self._next_seq)

    def _promote_at_us(self, job: Job) -> int:
        """When a waiting job is promoted: once it has waited alpha, at the next check instant."""
        due_us = job.waiting_since_us + self._alpha_us
        if self._check_us and self.config.starvation_check_iterations is None:
            due_us = -(-due_us // self._check_us) * self._check_us
        return due_us

    def _promote(self, jobs: list[Job]) -> None:
        """Back to the top level, in this order (the order of their waiting starts)."""
        for job in jobs:
            if self._keep_quantum:
                job.home_level = job.level
            job.level = 0
            job.attained_us = 0
        self.place_many(jobs)

    def _may_evict_for(self, job: Job) -> bool:
        # A promotion buys priority for the batch and for free room, not the right to push
        # running jobs off the device: otherwise every promotion of a job on the host is an
        # upload paid for with an offload, and under memory pressure promotions rotate the
        # whole device through the swap link.
        return job.home_level < 0 or job.kv is _DEVICE

    def before_schedule(self, now_us: int) -> None:
        period = self.config.starvation_check_iterations
        if period is not None:  # the artifact's rule: at the first decision of every period
            epoch = self.num_iterations // period
            if epoch <= self._checked_epoch:
                return
            self._checked_epoch = epoch
            due_us = now_us - self._alpha_us
            due = self._pop_waiting(lambda job: job.waiting_since_us <= due_us)
        elif self._waiting and self._promote_at_us(next(iter(self._waiting.values()))) <= now_us:
            due = self._pop_waiting(lambda job: self._promote_at_us(job) <= now_us)
        else:  # the common case: nobody is due
            return
        if due:
            self._promote(due)

    def _pop_waiting(self, due: Callable[[Job], bool]) -> list[Job]:
        """The waiting jobs that are `due`, out of the waiting indexes. `_waiting` is in
        waiting-start order, and so in promotion order: they are a prefix of it."""
        jobs = []
        for job in self._waiting.values():
            if not due(job):
                break
            jobs.append(job)
        if not jobs:
            return jobs
        back_or_host = []
        for job in jobs:
            del self._waiting[job.id]
            if self._device_waiting.pop(job.id, None) is None:  # see `_unindex_waiting`
                back_or_host.append(job)
        self._device_waiting_back.discard_many(back_or_host)
        self._host_waiting.discard_many(back_or_host)
        return jobs

    # -- queues ------------------------------------------------------------------------------
    def level_counts(self) -> list[int]:
        # once per decision when the engine records iterations: sizes as attributes, not len()
        return [f.num_jobs + s.num_jobs for f, s in zip(self._fresh, self._started, strict=True)]

    def join(self, job: Job, now_us: int) -> None:
        job.level = self.join_level(job)
        job.seq = self.new_seq()

    def queue_for(self, job: Job) -> JobQueue:
        return (self._fresh if job.needs_prefill else self._started)[job.level]

    def walk(self) -> Iterator[Job]:
        # One iterator per level, chained in C: the generator below runs once per level, not
        # once per job (every batch job of every decision passes through the walk).
        return chain.from_iterable(self._level_walks())

    def _level_walks(self) -> Iterator[Iterable[Job]]:
        """Each level's jobs in walk order, the level's queues read when the walk reaches it."""
        closed = lambda: self.prefill_closed  # noqa: E731
        for fresh, started in zip(self._fresh, self._started, strict=True):
            if fresh.num_jobs:
                yield merge_by_seq(fresh, started, closed)
            elif started.num_jobs:
                yield started  # the common level: nothing to merge or close

    def _on_served_batch(self, jobs: list[Job], elapsed_us: int, iteration_ends_us) -> None:
        if iteration_ends_us is None and type(self).on_served is not MLFQ.on_served:
            return super()._on_served_batch(jobs, elapsed_us, None)
        if iteration_ends_us is None:
            # One iteration: `on_served` for each unfinished job, inlined (every batch job, every
            # decision: policy_bench.py).
            quantum_us, demote, next_level = self.quantum_us, self._demote, self._next_level
            for job in jobs:
                if job.generated_tokens < job.output_tokens:
                    attained_us = job.attained_us = job.attained_us + elapsed_us
                    home_level = job.home_level
                    if attained_us >= quantum_us[home_level if home_level >= 0 else job.level]:
                        demote(job, next_level(job.level, home_level))
            return
        # Several iterations at once: find, per job, every iteration at whose end its quantum
        # ran out (cumulative service crossing its quantum, then counting again from zero), then
        # apply the demotions in the order a step-by-step run would, since each one queues the
        # job behind the jobs demoted before it: by iteration, and within one iteration in that
        # iteration's batch order, which is priority order after the earlier iterations'
        # demotions (a skip goes on past demotions that keep every left-out job behind the
        # batch, `deadline_us`, and a stepping run re-sorts its batch after each one).
        ends = iteration_ends_us
        events = []
        quantum_us_of, run_us, num_ends = self.quantum_us, int(ends[-1]), len(ends)
        for position, job in enumerate(jobs):
            home, attained_us = job.home_level, job.attained_us
            # a finished job was retired before its last iteration (`job.finished`, inlined)
            charged = num_ends - 1 if job.generated_tokens >= job.output_tokens else num_ends
            if not charged or ends[charged - 1] < quantum_us_of[home if home >= 0 else job.level] - attained_us:
                job.attained_us = attained_us + run_us  # the common case: its quantum outlasts the run
                continue
            level, base_us = job.level, 0
            while True:
                quantum_us = self.quantum_us[home if home >= 0 else level]
                i = bisect_left(ends, base_us + quantum_us - attained_us, 0, charged)
                if i >= charged:
                    break
                level, home, base_us, attained_us = self._next_level(level, home), -1, int(ends[i]), 0
                events.append((i, position, level))
            job.attained_us = attained_us + run_us - base_us
        if not events:
            return
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

    def on_stopped(self, job: Job, now_us: int) -> None:
        job.waiting_since_us = now_us
        if job.level > 0:
            self._waiting[job.id] = job
            if job in self.locations.device:
                self._device_waiting[job.id] = job
            elif job in self.locations.host:
                self._host_waiting.add(job, self._wait_key(job))

    def on_selected(self, job: Job) -> None:
        if self._waiting.pop(job.id, None) is not None:
            self._unindex_waiting(job)

    def on_finished(self, job: Job) -> None:
        if self._waiting.pop(job.id, None) is not None:
            self._unindex_waiting(job)

    def _on_relocated(self, job: Job, old: KVLocation) -> None:
        # A prefill (from NONE) was in no index and is in this decision's batch, about to be
        # selected: nothing to move. Jobs that are not waiting are in no waiting index.
        if old is _NONE or job.id not in self._waiting:
            return
        self._unindex_waiting(job)
        if job in self.locations.host:  # an offload landed
            self._host_waiting.add(job, self._wait_key(job))
        elif job in self.locations.device:  # an upload landed
            self._device_waiting_back.add(job, self._wait_key(job))

    def _wait_key(self, job: Job) -> int:
        return (job.waiting_since_us << self._wait_shift) | self._rank(job)

    def _unindex_waiting(self, job: Job) -> None:
        if self._device_waiting.pop(job.id, None) is None:  # the common case: stopped on the device
            self._device_waiting_back.discard(job)
            self._host_waiting.discard(job)

    # -- event skipping ----------------------------------------------------------------------
    def deadline_us(self, plan: Plan, now_us: int) -> float:
        level_left_out = self._first_level_left_out(plan)
        if level_left_out is None:
            # Every unfinished job is running: a demotion cannot change who runs, and `advance`
            # charges quanta iteration by iteration, so only memory and the engine bound a skip.
            return math.inf
        if self._overtaken_tables is None:  # a subclass changed the rule: ask it per job
            deadline = min([self._service_until_overtaken_us(j, level_left_out) for j in plan.batch])
        else:
            by_level, by_home = self._overtaken_tables(level_left_out)
            deadline = min([(by_home[j.home_level] if j.home_level >= 0 else by_level[j.level]) - j.attained_us
                            for j in plan.batch])
        period = self.config.starvation_check_iterations
        if self._waiting and (period is None or period == 1):
            # the next promotion (the first waiting job is promoted first)
            deadline = min(deadline, self._promote_at_us(next(iter(self._waiting.values()))) - now_us)
        return deadline

    def _first_level_left_out(self, plan: Plan) -> int | None:
        """The highest level holding a job outside the batch (None if every job runs)."""
        in_batch = [0] * self.config.num_levels
        for job in plan.batch:
            in_batch[job.level] += 1
        for level, (fresh, started) in enumerate(zip(self._fresh, self._started, strict=True)):
            if fresh.num_jobs + started.num_jobs > in_batch[level]:
                return level
        return None

    def _service_until_overtaken_us(self, job: Job, level_left_out: int) -> int:
        """Service a running job receives before a demotion files it behind a job left out of
        the batch, that is into `level_left_out` or below. Demotions above that level change
        only the order inside the batch (every left-out job still ranks below every batch job),
        and `_on_served_batch` replays them in a stepping run's order, so a skip runs past them."""
        level = self._next_level(job.level, job.home_level)
        # then the quanta of the levels it passes through above `level_left_out`, one
        # `demotion_levels` step apart (a step past the bottom level lands on it, at or below)
        return self._quantum_left_us(job) + sum(self.quantum_us[level:level_left_out:self.config.demotion_levels])

    def _overtaken_table_for(self, level_left_out: int) -> tuple[list[int], list[int]]:
        """`_service_until_overtaken_us` plus the job's attained service, which is all the rule
        depends on besides level and home level: by level for jobs not promoted, by home level
        for promoted ones. Worked out from the rule itself, once per `level_left_out` (the skip
        decision's hot path looks one entry up per batch job)."""
        tables = self._overtaken_by_left_out.get(level_left_out)
        if tables is None:
            levels = range(self.config.num_levels)
            probe = Job(-1, 0.0, 1, 1)
            tables = ([], [])
            for table, home in ((tables[0], False), (tables[1], True)):
                for level in levels:
                    probe.level, probe.home_level = (0, level) if home else (level, -1)
                    table.append(self._service_until_overtaken_us(probe, level_left_out))
            self._overtaken_by_left_out[level_left_out] = tables
        return tables

    def max_iterations(self) -> int:
        period = self.config.starvation_check_iterations
        if self._waiting and period is not None and period > 1:
            # The first check must fall on the last repeated iteration at the latest, so that
            # a skipped run checks exactly when a step-by-step run would.
            return period - self.num_iterations % period
        return _NO_LIMIT_ITERATIONS


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
