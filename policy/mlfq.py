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
from collections.abc import Iterator

from policy.config import SchedulerConfig
from policy.cost import CostEstimate
from policy.job import Job, to_us
from policy.plan import Plan
from policy.queue import JobQueue, merge_by_seq
from policy.scheduler import _NO_LIMIT_ITERATIONS, Scheduler


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
        self._checked_epoch = 0

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
            job.level = min(self.config.num_levels - 1, job.level + self.config.demotion_levels)
            job.attained_us = 0
            self._place(job, new_seq=self._new_seq())

    def _on_stopped(self, job: Job, now_us: int) -> None:
        job.waiting_since_us = now_us
        if job.level > 0:
            self._waiting[job.id] = job

    def _on_selected(self, job: Job) -> None:
        self._waiting.pop(job.id, None)

    def _on_finished(self, job: Job) -> None:
        self._waiting.pop(job.id, None)

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
            job.level = 0
            job.attained_us = 0
            self._place(job, new_seq=self._new_seq())

    # -- event skipping ----------------------------------------------------------------------
    def _deadline_us(self, plan: Plan, now_us: int) -> float:
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
    def _enst_key(self, job: Job, now_us: int) -> float:
        t_promote = (
            job.waiting_since_us + self._alpha_us - now_us if job.level > 0 and job.id in self._waiting
            else math.inf
        )
        ahead_us = sum(
            (len(self._fresh[lv]) + len(self._started[lv])) * self.quantum_us[lv] for lv in range(job.level)
        )
        position = self._fresh[job.level].position(job) + self._started[job.level].position(job)
        t_execute = (ahead_us + position * self.quantum_us[job.level]) / self.config.max_batch_size
        return min(t_promote, t_execute)


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
