"""Ordered containers of jobs: `JobQueue` (by `job.seq`) and `RankIndex` (by a given int key).

Each policy keeps its jobs in a few `JobQueue`s and gives every job a `seq` when it enqueues it
(an arrival counter, an MLFQ enqueue stamp, an SRPT remaining-work key). The scheduler walks
the queues in priority order and stops as soon as the batch is full, so a decision costs
O(batch), not O(queued jobs). Invariant: `job.seq` does not change while the job is queued
(re-key = remove, change, add).

Both keep their entries in `SortedBlocks`: blocks of at most 2 * `_BLOCK` (a sorted list of
sorted lists), so an insert or a removal moves at most one block's entries. One flat list moved every entry
behind the change: MLFQ removes running and just-prefilled jobs near the head of queues that
hold most of the waiting jobs, and at 100,000 queued jobs `on_iteration_done` spent ~200 us a
call in those moves (policy_bench.py --jobs 100000), against ~40 us at 10,000.
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right
from collections.abc import Callable, Iterator
from itertools import accumulate, chain, takewhile
from operator import itemgetter

from policy.job import Job

_first = itemgetter(0)
# `*_many` changes take one pass over every entry when they touch at least 1/_BULK_SHARE of
# them: a pass costs about what that many single changes do (policy_bench.py, 10,000 jobs)
_BULK_SHARE = 16


class SortedBlocks:
    """Jobs sorted by a unique int key, in blocks of at most 2 * `_BLOCK` (a sorted list of
    sorted lists), so that an insert or a removal moves at most one block's entries. The two
    containers below add how a job's key is found (its seq; a stored key)."""

    __slots__ = ("_key_blocks", "_job_blocks", "_maxes", "num_jobs", "_offsets")
    _BLOCK = 128

    def __init__(self) -> None:
        self._key_blocks: list[list[int]] = []
        self._job_blocks: list[list[Job]] = []
        self._maxes: list[int] = []  # each block's largest key
        self.num_jobs = 0  # len(); read as an attribute on hot paths (no call; read-only)
        self._offsets: list[int] | None = None  # entries before each block; None: stale

    def __len__(self) -> int:
        return self.num_jobs

    def __iter__(self) -> Iterator[Job]:
        """Ascending key order. Must not overlap a change."""
        return chain.from_iterable(self._job_blocks)

    def __reversed__(self) -> Iterator[Job]:
        return chain.from_iterable(map(reversed, reversed(self._job_blocks)))

    def _insert(self, key: int, job: Job) -> Job | None:
        """Store `job` under `key`; if another job holds `key`, change nothing and return that
        job (the check rides on the insert's own search)."""
        maxes = self._maxes
        if not maxes or key > maxes[-1]:  # the common case for queues: a new largest key
            self.num_jobs += 1
            self._offsets = None
            if not maxes or len(self._key_blocks[-1]) >= 2 * self._BLOCK:
                self._key_blocks.append([key])
                self._job_blocks.append([job])
                maxes.append(key)
            else:
                self._key_blocks[-1].append(key)
                self._job_blocks[-1].append(job)
                maxes[-1] = key
            return None
        b = bisect_left(maxes, key)
        keys, jobs = self._key_blocks[b], self._job_blocks[b]
        i = bisect_left(keys, key)  # < len(keys): maxes[b] >= key
        if keys[i] == key:
            return jobs[i]
        self.num_jobs += 1
        self._offsets = None
        keys.insert(i, key)
        jobs.insert(i, job)
        if len(keys) > 2 * self._BLOCK:
            half = len(keys) // 2
            self._key_blocks[b:b + 1] = [keys[:half], keys[half:]]
            self._job_blocks[b:b + 1] = [jobs[:half], jobs[half:]]
            maxes[b:b + 1] = [keys[half - 1], keys[-1]]
        return None

    def _pop(self, key: int, job: Job | None = None) -> bool:
        """Remove the entry stored under `key` (only if it is `job`, when given); False if
        there is none. One call: queues remove a job or two per placement, on the hot path."""
        maxes = self._maxes
        b = bisect_left(maxes, key)
        if b == len(maxes):
            return False
        keys, jobs = self._key_blocks[b], self._job_blocks[b]
        i = bisect_left(keys, key)
        if keys[i] != key or (job is not None and jobs[i] is not job):
            return False
        del keys[i], jobs[i]
        self.num_jobs -= 1
        self._offsets = None
        if keys:
            self._maxes[b] = keys[-1]
        else:
            del self._key_blocks[b], self._job_blocks[b], self._maxes[b]
        return True

    def position(self, key: int) -> int:
        """How many entries have a smaller key (MLFQ's T_execute asks it per candidate)."""
        b = bisect_left(self._maxes, key)
        if b == len(self._maxes):
            return self.num_jobs
        offsets = self._offsets
        if offsets is None:  # rebuilt once after changes: a decision's swaps change no queue
            offsets = self._offsets = list(accumulate(map(len, self._key_blocks), initial=0))
        return offsets[b] + bisect_left(self._key_blocks[b], key)

    def after(self, key: int) -> Iterator[Job]:
        """Jobs with keys larger than `key`, ascending. Must not overlap a change. (A chain of
        block slices, not a generator: a walk takes hundreds a decision, each a Python frame
        resumed.)"""
        b = bisect_right(self._maxes, key)
        if b == len(self._maxes):
            return iter(())
        return chain(self._job_blocks[b][bisect_right(self._key_blocks[b], key):],
                     chain.from_iterable(self._job_blocks[b + 1:]))

    def _replace_many(self, drop_keys: set[int], add: list[tuple[int, Job]]) -> None:
        """Remove the entries under `drop_keys` and store the (key, job) pairs of `add` (keys no
        kept entry holds) in one pass over every entry, re-blocked: cheaper than one move per
        entry once the changes are more than a few percent of the entries (MLFQ's first
        starvation check after a burst promotes most of the queue in one decision)."""
        kept = [(key, job) for key, job in zip(chain.from_iterable(self._key_blocks),
                                               chain.from_iterable(self._job_blocks), strict=True)
                if key not in drop_keys]
        if len(kept) != self.num_jobs - len(drop_keys):
            raise KeyError(f"{self.num_jobs - len(drop_keys) - len(kept)} of the keys to drop are not stored")
        # two sorted runs, which timsort merges in one pass (by key alone: jobs do not compare)
        pairs = sorted(kept + sorted(add, key=_first), key=_first)
        if len({key for key, _ in pairs}) != len(pairs):
            raise ValueError("a key to add is already stored (or given twice)")
        size = self._BLOCK
        self._key_blocks = [[key for key, _ in pairs[i:i + size]] for i in range(0, len(pairs), size)]
        self._job_blocks = [[job for _, job in pairs[i:i + size]] for i in range(0, len(pairs), size)]
        self._maxes = [keys[-1] for keys in self._key_blocks]
        self.num_jobs = len(pairs)
        self._offsets = None

    def last_below(self, key: int) -> Job | None:
        """The job with the largest key smaller than `key`, or None."""
        b = bisect_left(self._maxes, key)
        if b < len(self._maxes):
            i = bisect_left(self._key_blocks[b], key)
            if i:
                return self._job_blocks[b][i - 1]
        return self._job_blocks[b - 1][-1] if b else None


class JobQueue(SortedBlocks):
    """Jobs by `job.seq`."""

    __slots__ = ()

    def add(self, job: Job) -> None:
        if self._insert(job.seq, job) is not None:
            raise ValueError(f"job {job.id}: seq {job.seq} already queued")

    def remove(self, job: Job) -> None:
        if not self._pop(job.seq, job):
            raise KeyError(f"job {job.id} is not in this queue")

    def remove_many(self, jobs: list[Job]) -> None:
        """`remove` each of `jobs`: one at a time, or in one pass when they are many."""
        if len(jobs) * _BULK_SHARE < self.num_jobs:
            for job in jobs:
                self.remove(job)
        else:
            self._replace_many({job.seq for job in jobs}, [])


def merge_by_seq(fresh: JobQueue, started: JobQueue, prefill_closed: Callable[[], bool]) -> Iterator[Job]:
    """Both queues' jobs in seq order. Once `prefill_closed()` turns true the fresh queue (jobs
    that need a prefill) is no longer walked: only started jobs can still join. Evaluated when
    called: the walk that uses it must start before the queues change."""
    if not fresh.num_jobs:
        return iter(started)
    if not started.num_jobs or started._maxes[-1] < fresh._key_blocks[0][0]:
        # Every started job first (FCFS: they arrived before every waiting one): the same order
        # as the merge below, iterated in C without a comparison per job (every batch job of
        # every decision passes here).
        return chain(started, takewhile(lambda _: not prefill_closed(), fresh))
    return _interleave_by_seq(fresh, started, prefill_closed)


def _interleave_by_seq(fresh: JobQueue, started: JobQueue, prefill_closed: Callable[[], bool]) -> Iterator[Job]:
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


class RankIndex(SortedBlocks):
    """A subset of jobs sorted by a unique integer key given when each is added (a rank), with
    O(log n) search. The key is stored, so a job whose rank has since changed can still be found
    and re-keyed. Iteration must not overlap an add or a discard. (The host index holds
    thousands of jobs and is written at its front, uploads, and near its back, offloads: the
    blocks keep each write to one block's entries; policy_bench.py, 10,000 host jobs.)"""

    __slots__ = ("_key_of",)

    def __init__(self) -> None:
        super().__init__()
        self._key_of: dict[int, int] = {}

    def __contains__(self, job: Job) -> bool:
        return job.id in self._key_of

    def values(self) -> Iterator[Job]:
        return iter(self)

    def add(self, job: Job, key: int) -> None:
        """Index `job` under `key`, or re-key it. A key held by another job is an error, raised
        before anything changes."""
        if self.rekey(job, key):
            return
        holder = self._insert(key, job)
        if holder is not None:
            raise ValueError(f"job {job.id}: rank key {key} already indexed for job {holder.id}")
        self._key_of[job.id] = key

    def rekey(self, job: Job, key: int) -> bool:
        """`add(job, key)` if `job` is indexed; False (and nothing done) if it is not."""
        old = self._key_of.get(job.id)
        if old is None:
            return False
        if old != key:
            holder = self._insert(key, job)
            if holder is not None:
                raise ValueError(f"job {job.id}: rank key {key} already indexed for job {holder.id}")
            self._pop(old)
            self._key_of[job.id] = key
        return True

    def discard(self, job: Job) -> None:
        key = self._key_of.pop(job.id, None)
        if key is not None:
            self._pop(key)

    def discard_many(self, jobs: list[Job]) -> None:
        """`discard` each of `jobs`, in one pass (`_replace_many`)."""
        if len(jobs) * _BULK_SHARE < self.num_jobs:
            for job in jobs:
                self.discard(job)
            return
        key_of = self._key_of
        drop = {key_of.pop(job.id) for job in jobs if job.id in key_of}
        if drop:
            self._replace_many(drop, [])

    def rekey_many(self, jobs: list[Job], key_of_job: Callable[[Job], int]) -> None:
        """Re-key each of `jobs` (all indexed) to `key_of_job(job)`: one at a time, or in one
        pass when they are many."""
        if len(jobs) * _BULK_SHARE < self.num_jobs:
            for job in jobs:
                self.add(job, key_of_job(job))
            return
        key_of = self._key_of
        pairs = [(key_of_job(job), job) for job in jobs]
        self._replace_many({key_of[job.id] for job in jobs}, pairs)
        key_of.update((job.id, key) for key, job in pairs)
