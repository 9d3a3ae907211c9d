"""First-come-first-served baselines.

- `fcfs` is Orca (Yu et al., OSDI'22) as FastServe evaluates it: iteration-level batching,
  FCFS admission, run to completion. It reserves `max_seq_tokens` of KV per admitted job
  (Orca cannot know output lengths), so it never needs to preempt, and it never does.
- `vllm-fcfs` is vLLM's default: FCFS with KV allocated token by token; a waiting request is
  admitted only while 1 % of the device blocks stay free (vLLM's watermark) and never evicts;
  when a running job cannot grow, the newest running job is preempted and its KV dropped
  (recompute), the job itself when it is the newest.

Both keep arrival order: seq is an arrival counter, and a preempted job keeps its seq, so it
goes back ahead of every later arrival. A job that finished its prefill keeps its seq too, so
the next walk visits the batch in the same order: a plan with prefills may repeat as its batch
decoding (`repeats_prefill_plans`, policy/horizon.py), and a new job ranks behind every
unfinished one, so a run may go past arrivals a full batch keeps out (`arrivals_rank_last`).
"""

from __future__ import annotations

from collections.abc import Iterator

from policy.config import SchedulerConfig
from policy.cost import CostEstimate
from policy.hooks import keeps_hooks
from policy.job import Job
from policy.queue import JobQueue, merge_by_seq
from policy.scheduler import Scheduler

_ORDER_HOOKS = ("join", "queue_for", "walk", "before_schedule", "on_served", "_on_served_batch", "on_stopped",
                "on_selected")


class FCFS(Scheduler):
    name = "fcfs"
    default_swap = "recompute"  # never used: Orca does not evict
    preemptive = False
    reserve_max_seq = True

    def __init__(self, config: SchedulerConfig | None = None, cost: CostEstimate | None = None) -> None:
        super().__init__(config, cost)
        self._fresh = JobQueue()
        self._started = JobQueue()
        # A subclass that orders or files jobs its own way may not keep the walk's order, and
        # one whose waiting jobs evict may admit one that free room alone would refuse.
        self.repeats_prefill_plans = self.arrivals_rank_last = (
            keeps_hooks(type(self), FCFS, _ORDER_HOOKS)
            and not (self.preemptive and self.admission_evicts))

    def queue_for(self, job: Job) -> JobQueue:
        return self._fresh if job.needs_prefill else self._started

    def walk(self) -> Iterator[Job]:
        return merge_by_seq(self._fresh, self._started, lambda: self.prefill_closed)


class VLLMFCFS(FCFS):
    name = "vllm-fcfs"
    preemptive = True
    reserve_max_seq = False
    admission_evicts = False  # a waiting request waits for free blocks
    self_preempts = True  # the newest running job that cannot grow preempts itself
    admission_watermark_fraction = 0.01  # vLLM's default watermark
