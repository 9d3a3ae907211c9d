"""Two classes: short prompts (interactive) ahead of long ones, first-come-first-served within each.

`short_prompt_tokens` is the tunable parameter: a prompt of at most that many tokens is
"short". Sweep it like any grid axis, as a parameter of the spec
(`examples/policies/two_class.py:TwoClassFCFS:short_prompt_tokens=64`); see
examples/policies/two_class_sweep.toml. The decision uses the prompt length only, which a
server knows on arrival.

Short jobs preempt long ones: the base class walks jobs in priority order (class, arrival),
so a short arrival takes a long job's batch slot and, when the device is full, its KV (which
goes to the host in the default proactive mode). A long job can wait as long as short jobs
keep coming: this policy does not claim freedom from starvation (`starvation_free = False`),
so `fastserve check-policy` does not test it.
"""

from __future__ import annotations

from collections.abc import Iterator

from policy import Job, Scheduler, SchedulerConfig
from policy.cost import CostEstimate
from policy.queue import JobQueue, merge_by_seq

_CLASS_BIT = 62  # seq = class << 62 | arrival counter: every short job sorts before every long one


class TwoClassFCFS(Scheduler):
    name = "two-class-fcfs"
    default_swap = "proactive"
    starvation_free = False

    def __init__(self, config: SchedulerConfig | None = None, cost: CostEstimate | None = None, *,
                 short_prompt_tokens: int = 128) -> None:
        if not isinstance(short_prompt_tokens, int) or short_prompt_tokens < 1:
            raise ValueError(f"short_prompt_tokens must be a positive integer, got {short_prompt_tokens!r}")
        super().__init__(config, cost)
        self.short_prompt_tokens = short_prompt_tokens
        self._fresh, self._started = JobQueue(), JobQueue()

    def join(self, job: Job, now_us: int) -> None:
        long_prompt = job.prompt_tokens > self.short_prompt_tokens
        job.seq = int(long_prompt) << _CLASS_BIT | self.new_seq()

    def queue_for(self, job: Job) -> JobQueue:
        return self._fresh if job.needs_prefill else self._started

    def walk(self) -> Iterator[Job]:
        return merge_by_seq(self._fresh, self._started, lambda: self.prefill_closed)
