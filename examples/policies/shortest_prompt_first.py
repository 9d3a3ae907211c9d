"""Shortest prompt first: run the jobs with the shortest prompts first (ties: arrival order).

A whole policy in a few lines: the base class (`policy.Scheduler`) batches, places KV, swaps
and skips identical iterations; a policy only says which job comes first. It decides from the
prompt length alone, which a real server knows on arrival (never from `output_tokens`).

    fastserve simulate --trace sample:bursty-small --policy examples/policies/shortest_prompt_first.py:ShortestPromptFirst -o run
"""

from policy import Job, Scheduler
from policy.queue import JobQueue, merge_by_seq

_ARRIVAL_BITS = 32  # the key: prompt_tokens above, an arrival counter below


class ShortestPromptFirst(Scheduler):
    name = "shortest-prompt-first"
    default_swap = "proactive"  # preempted jobs' KV moves to the host, ordered by ENST

    def __init__(self, config=None, cost=None):
        super().__init__(config, cost)
        self._fresh, self._started = JobQueue(), JobQueue()  # each sorted by seq

    def join(self, job: Job, now_us: int) -> None:
        job.seq = job.prompt_tokens << _ARRIVAL_BITS | self.new_seq()

    def queue_for(self, job: Job) -> JobQueue:
        return self._fresh if job.needs_prefill else self._started

    def walk(self):
        # both queues in seq order, stopping the fresh one once prefill admission closes
        return merge_by_seq(self._fresh, self._started, lambda: self.prefill_closed)
