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
from itertools import chain

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

    @property
    def seqs(self) -> list[int]:
        """The queued seqs, ascending; read only. How many jobs sort before one is a bisect on
        it (MLFQ's T_execute bisects it directly: a method call per job costs on that path)."""
        return self._seqs


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
    """A subset of jobs sorted by a unique integer key given when each is added (a rank), with
    O(log n) search. The key is stored, so a job whose rank has since changed can still be found
    and re-keyed. Iteration must not overlap an add or a discard.

    Entries are kept in blocks of at most 2 * `_BLOCK` (a sorted list of sorted lists): the host
    index holds thousands of jobs and is written at its front (uploads take the highest-priority
    host jobs) and near its back (offloaded jobs), where one flat list would move most of its
    entries on every insert or delete (policy_bench.py, 10,000 host jobs)."""

    __slots__ = ("_key_blocks", "_job_blocks", "_maxes", "_key_of")
    _BLOCK = 128

    def __init__(self) -> None:
        self._key_blocks: list[list[int]] = []
        self._job_blocks: list[list[Job]] = []
        self._maxes: list[int] = []  # each block's largest key
        self._key_of: dict[int, int] = {}

    def __len__(self) -> int:
        return len(self._key_of)

    def __iter__(self) -> Iterator[Job]:
        """Ascending key order."""
        return chain.from_iterable(self._job_blocks)

    def __reversed__(self) -> Iterator[Job]:
        return chain.from_iterable(map(reversed, reversed(self._job_blocks)))

    def __contains__(self, job: Job) -> bool:
        return job.id in self._key_of

    def values(self) -> Iterator[Job]:
        return chain.from_iterable(self._job_blocks)

    def last_below(self, key: int) -> Job | None:
        """The job with the largest key smaller than `key`, or None."""
        b = bisect_left(self._maxes, key)
        if b < len(self._maxes):
            i = bisect_left(self._key_blocks[b], key)
            if i:
                return self._job_blocks[b][i - 1]
        return self._job_blocks[b - 1][-1] if b else None

    def add(self, job: Job, key: int) -> None:
        """Index `job` under `key`, or re-key it. A key held by another job is an error, raised
        before anything changes."""
        old = self._key_of.get(job.id)
        if old == key:
            return
        maxes = self._maxes
        b = bisect_left(maxes, key)
        if b < len(maxes):
            keys = self._key_blocks[b]
            i = bisect_left(keys, key)
            if keys[i] == key:
                raise ValueError(f"job {job.id}: rank key {key} already indexed for job {self._job_blocks[b][i].id}")
        if old is not None:
            self._remove(old)
        if not maxes:
            self._key_blocks.append([key])
            self._job_blocks.append([job])
            maxes.append(key)
            self._key_of[job.id] = key
            return
        b = min(bisect_left(maxes, key), len(maxes) - 1)  # past every block: the last one
        keys, jobs = self._key_blocks[b], self._job_blocks[b]
        i = bisect_left(keys, key)
        keys.insert(i, key)
        jobs.insert(i, job)
        maxes[b] = keys[-1]
        if len(keys) > 2 * self._BLOCK:
            half = len(keys) // 2
            self._key_blocks[b:b + 1] = [keys[:half], keys[half:]]
            self._job_blocks[b:b + 1] = [jobs[:half], jobs[half:]]
            maxes[b:b + 1] = [keys[half - 1], keys[-1]]
        self._key_of[job.id] = key

    def discard(self, job: Job) -> None:
        key = self._key_of.pop(job.id, None)
        if key is not None:
            self._remove(key)

    def _remove(self, key: int) -> None:
        b = bisect_left(self._maxes, key)
        keys, jobs = self._key_blocks[b], self._job_blocks[b]
        i = bisect_left(keys, key)
        del keys[i]
        del jobs[i]
        if keys:
            self._maxes[b] = keys[-1]
        else:
            del self._key_blocks[b], self._job_blocks[b], self._maxes[b]
