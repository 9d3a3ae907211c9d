"""`sarathi`: chunked-prefill FCFS, the Sarathi-Serve (OSDI'24) and vLLM V1 baseline.

FCFS with paged KV (allocated chunk by chunk and token by token, as `vllm-fcfs`), under a
per-iteration token budget (`chunked_prefill_tokens`, default 512, Sarathi-Serve's strict-SLO
setting): every iteration takes the decodes first, in arrival order, one token each, then
prefill chunks in arrival order (jobs part-way through their prefill, which arrived earlier,
before new ones) up to the budget (policy/chunked.py). When a running job cannot grow, the
newest running jobs are preempted as in vLLM: their KV is dropped (recompute, the default) or
swapped out (`swap="reactive"`). A preempted job keeps its seq and so its place in line.
"""

from __future__ import annotations

from collections.abc import Iterator

from policy.config import SchedulerConfig
from policy.cost import CostEstimate
from policy.fcfs import VLLMFCFS
from policy.job import Job
from policy.queue import JobQueue, merge_by_seq


class Sarathi(VLLMFCFS):
    name = "sarathi"
    default_chunked_prefill_tokens = 512

    def __init__(self, config: SchedulerConfig | None = None, cost: CostEstimate | None = None) -> None:
        super().__init__(config, cost)
        self._decoding = JobQueue()
        self._prefilling = JobQueue()  # has KV, prefill not done (part-way, or swapped out)

    def queue_for(self, job: Job) -> JobQueue:
        if job.needs_prefill:
            return self._fresh
        return self._prefilling if job.in_prefill else self._decoding

    def walk(self) -> Iterator[Job]:
        yield from self._decoding
        yield from merge_by_seq(self._fresh, self._prefilling, lambda: self.prefill_closed)
