"""Shortest remaining processing time: an oracle bound, not a deployable policy.

It reads `output_tokens`, which no real server knows, and always runs the jobs with the fewest
remaining output tokens (ties by job id). FastServe's paper uses it as the ideal to compare
against. A job's seq encodes (remaining tokens, id); running jobs are re-keyed after each
iteration because their remaining work shrinks.
"""

from __future__ import annotations

from collections.abc import Iterator

from policy.config import SchedulerConfig
from policy.cost import CostEstimate
from policy.job import Job
from policy.queue import JobQueue, merge_by_seq
from policy.scheduler import Scheduler

_ID_BITS = 40


def _key(job: Job) -> int:
    return (job.remaining_tokens << _ID_BITS) | job.id


class SRPT(Scheduler):
    name = "srpt"
    default_swap = "proactive"

    def __init__(self, config: SchedulerConfig | None = None, cost: CostEstimate | None = None) -> None:
        super().__init__(config, cost)
        self._fresh = JobQueue()
        self._started = JobQueue()

    def join(self, job: Job, now_us: int) -> None:
        if job.id >= 1 << _ID_BITS:
            raise ValueError(f"srpt: job id {job.id} is too large (must be < 2**{_ID_BITS})")
        job.seq = _key(job)

    def queue_for(self, job: Job) -> JobQueue:
        return self._fresh if job.needs_prefill else self._started

    def walk(self) -> Iterator[Job]:
        return merge_by_seq(self._fresh, self._started, lambda: self.prefill_closed)

    def on_served(self, job: Job, elapsed_us: int) -> None:
        self.place(job, new_seq=_key(job))
