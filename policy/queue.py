"""An ordered queue of jobs sorted by `job.seq`, with O(log n) position lookup.

Each policy keeps its jobs in a few of these and gives every job a `seq` when it enqueues it
(an arrival counter, an MLFQ enqueue stamp, an SRPT remaining-work key). The scheduler walks
the queues in priority order and stops as soon as the batch is full, so a decision costs
O(batch), not O(queued jobs). Invariant: `job.seq` does not change while the job is queued
(re-key = remove, change, add). Appending a key above every present key is O(1); other inserts
and removals are a C-level memmove, cheap for tens of thousands of jobs.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Callable, Iterator

from policy.job import Job


class JobQueue:
    __slots__ = ("_seqs", "_jobs")

    def __init__(self) -> None:
        self._seqs: list[int] = []
        self._jobs: list[Job] = []

    def __len__(self) -> int:
        return len(self._jobs)

    def __iter__(self) -> Iterator[Job]:
        return iter(self._jobs)

    def add(self, job: Job) -> None:
        k = job.seq
        if not self._seqs or k > self._seqs[-1]:
            self._seqs.append(k)
            self._jobs.append(job)
            return
        i = bisect_left(self._seqs, k)
        if i < len(self._seqs) and self._seqs[i] == k:
            raise ValueError(f"job {job.id}: seq {k} already queued")
        self._seqs.insert(i, k)
        self._jobs.insert(i, job)

    def remove(self, job: Job) -> None:
        i = bisect_left(self._seqs, job.seq)
        if i >= len(self._jobs) or self._jobs[i] is not job:
            raise KeyError(f"job {job.id} is not in this queue")
        del self._seqs[i]
        del self._jobs[i]

    def position(self, job: Job) -> int:
        """How many queued jobs sort before `job`."""
        return bisect_left(self._seqs, job.seq)


def merge_by_seq(fresh: JobQueue, started: JobQueue, prefill_closed: Callable[[], bool]) -> Iterator[Job]:
    """Yield both queues' jobs in seq order. Once `prefill_closed()` turns true the fresh
    queue (jobs that need a prefill) is no longer walked: only started jobs can still join."""
    it_f, it_s = iter(fresh), iter(started)
    jf, js = next(it_f, None), next(it_s, None)
    while jf is not None or js is not None:
        if jf is not None and prefill_closed():
            jf = None
            continue
        if js is None or (jf is not None and jf.seq < js.seq):
            yield jf
            jf = next(it_f, None)
        else:
            yield js
            js = next(it_s, None)


class RankIndex:
    """A subset of jobs sorted by a unique key given when each is added (a rank tuple), with
    O(log n) add and discard. The key is stored, so a job whose rank has since changed can still
    be found and re-keyed. Callers must not add or discard while iterating."""

    __slots__ = ("_keys", "_jobs", "_key_of")

    def __init__(self) -> None:
        self._keys: list[tuple] = []
        self._jobs: list[Job] = []
        self._key_of: dict[int, tuple] = {}

    def __len__(self) -> int:
        return len(self._jobs)

    def __iter__(self) -> Iterator[Job]:
        return iter(self._jobs)

    def __reversed__(self) -> Iterator[Job]:
        return reversed(self._jobs)

    def __contains__(self, job: Job) -> bool:
        return job.id in self._key_of

    def add(self, job: Job, key: tuple) -> None:
        self.discard(job)
        i = bisect_left(self._keys, key)
        self._keys.insert(i, key)
        self._jobs.insert(i, job)
        self._key_of[job.id] = key

    def discard(self, job: Job) -> None:
        key = self._key_of.pop(job.id, None)
        if key is not None:
            i = bisect_left(self._keys, key)
            del self._keys[i]
            del self._jobs[i]
