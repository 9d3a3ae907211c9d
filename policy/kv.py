"""KV-cache block accounting on the device and the host.

Pure bookkeeping, no policy: the scheduler decides, this module counts. Capacities are in
blocks of `block_size_tokens` (1 = token granularity). Check/act pairs (`can_*` then the act)
keep the invariants:

- device: `device_used_blocks` counts resident and swapping-in blocks; `releasing_blocks` counts
  the blocks of swap-outs in flight, still physically occupied. Planning may allocate into
  releasing blocks (`device_plannable_blocks`), but then the batch that uses them must wait for
  the swap-outs to land (`overcommitted`); so must swap-ins, which the engine starts only
  after the plan's `wait_for` has landed.
  Once every wait is honoured, used + releasing <= capacity whenever compute or a copy runs;
- host: resident + swapping-out + swapping-in blocks <= host capacity;
- a job's KV lives in exactly one place, except while a transfer is in flight, when both ends
  hold its blocks (the copy needs both). The source is freed in `finish_swap`.
"""

from __future__ import annotations

import math
from collections.abc import Container, Iterable
from dataclasses import dataclass

from policy.job import Job, KVLocation

_DEVICE = KVLocation.DEVICE


@dataclass(frozen=True, slots=True)
class KVCapacity:
    device_blocks: int
    host_blocks: int = 0
    block_size_tokens: int = 1

    def __post_init__(self) -> None:
        if self.block_size_tokens <= 0:
            raise ValueError(f"block_size_tokens must be positive, got {self.block_size_tokens}")
        if self.device_blocks <= 0:
            raise ValueError(f"device KV capacity must be positive, got {self.device_blocks} blocks")
        if self.host_blocks < 0:
            raise ValueError(f"host KV capacity must be >= 0, got {self.host_blocks} blocks")

    @classmethod
    def from_tokens(cls, device_tokens: int, host_tokens: int = 0, block_size_tokens: int = 1):
        """Whole blocks only: a partial block cannot hold a token of every layer."""
        return cls(device_tokens // block_size_tokens, host_tokens // block_size_tokens, block_size_tokens)

    @property
    def device_tokens(self) -> int:
        return self.device_blocks * self.block_size_tokens

    @property
    def host_tokens(self) -> int:
        return self.host_blocks * self.block_size_tokens


class KVSpace:
    def __init__(self, capacity: KVCapacity) -> None:
        self.capacity = capacity
        self.device_used_blocks = 0  # resident and swapping-in blocks
        self.host_used_blocks = 0
        self.releasing_blocks = 0  # device blocks of swap-outs in flight; free once they land
        self.promised_blocks = 0  # counted as used until `release_promises` (one decision)
        # Jobs whose KV rests on the host (HOST, no copy in flight), counted by their blocks, and
        # the smallest of them: whether any could come back into some room is asked at skip
        # decisions, and a scan of every host job each time grew with the host (overloads).
        self._host_jobs_by_blocks: dict[int, int] = {}
        self.min_host_job_blocks: float = math.inf  # read-only; inf when no job rests on the host
        if capacity.block_size_tokens == 1:  # hot path: a block is a token
            self.blocks_for = self._same

    def blocks_for(self, tokens: int) -> int:
        return -(-tokens // self.capacity.block_size_tokens)

    @staticmethod
    def _same(tokens: int) -> int:
        return tokens

    @property
    def device_free_blocks(self) -> int:
        """Physically free now."""
        return self.capacity.device_blocks - self.device_used_blocks - self.releasing_blocks

    @property
    def device_plannable_blocks(self) -> int:
        """Free once every swap-out in flight lands."""
        return self.capacity.device_blocks - self.device_used_blocks

    def overcommitted(self, starting_blocks: int = 0) -> bool:
        """Compute would reuse blocks that swap-outs still occupy. `starting_blocks`: device
        blocks of the swap-ins just planned, left out because the engine starts them only after
        the swap-outs in flight have landed. Swap-ins planned earlier count: they may already be
        writing while later swap-outs still hold their blocks (fix: subtracting every incoming
        block hid them; tests/policy/test_policy_exact_mlfq.py,
        test_an_upload_in_flight_counts_against_a_later_swap_out)."""
        resident = self.device_used_blocks - starting_blocks
        return resident + self.releasing_blocks > self.capacity.device_blocks

    def compute_room_blocks(self, starting_blocks: int = 0) -> int:
        """Blocks compute can take now without reusing blocks that swap-outs still occupy
        (`overcommitted` stays False); `starting_blocks` as there."""
        # promised blocks are future room (counted as used so that nobody plans into it), not
        # blocks anyone computes in now
        return (self.capacity.device_blocks - self.device_used_blocks + self.promised_blocks + starting_blocks
                - self.releasing_blocks)

    def promise(self, blocks: int) -> None:
        """Hold `blocks` of room for a job that will take it once swap-outs land: counted as used
        until `release_promises`, so that lower-priority jobs of the same decision cannot take
        it (they would make the job evict again, and the two could trade the room forever)."""
        self.device_used_blocks += blocks
        self.promised_blocks += blocks

    def release_promises(self) -> None:
        self.device_used_blocks -= self.promised_blocks
        self.promised_blocks = 0

    @property
    def host_free_blocks(self) -> int:
        return self.capacity.host_blocks - self.host_used_blocks

    # -- device allocation (prefill and growth) --------------------------------------------
    def extra_blocks(self, job: Job, tokens: int) -> int:
        """Device blocks `job` needs beyond what it holds to hold `tokens` tokens."""
        return max(0, self.blocks_for(tokens) - job.device_blocks)

    def try_grow(self, job: Job, tokens: int) -> bool:
        """Grow `job`'s device KV to hold `tokens` if the free room allows; False (and nothing
        changed) if it does not. `grow` without the exception, for the scheduler's hot path."""
        extra = self.blocks_for(tokens) - job.device_blocks
        if extra <= 0:
            return True
        if extra > self.capacity.device_blocks - self.device_used_blocks:
            return False
        self.device_used_blocks += extra
        job.device_blocks += extra
        if job.kv is KVLocation.NONE:
            job.kv = KVLocation.DEVICE
        return True

    def grow(self, job: Job, tokens: int) -> None:
        if not self.try_grow(job, tokens):
            extra = self.blocks_for(tokens) - job.device_blocks
            raise ValueError(f"job {job.id}: needs {extra} device blocks, {self.device_plannable_blocks} free")

    def drop(self, job: Job) -> None:
        """Free the job's device KV without copying it (recompute, or the job finished)."""
        if job.kv not in (KVLocation.DEVICE, KVLocation.NONE):
            raise ValueError(f"job {job.id}: cannot drop KV while it is {job.kv.value}")
        self.device_used_blocks -= job.device_blocks
        job.device_blocks = 0
        job.kv = KVLocation.NONE
        job.kv_tokens = 0

    def release(self, job: Job) -> None:
        """Free the job's KV wherever it lies, device or host (an aborted request)."""
        if job.kv is KVLocation.HOST:
            self._host_job_leaves(job.host_blocks)
            self.host_used_blocks -= job.host_blocks
            job.host_blocks = 0
            job.kv = KVLocation.NONE
            job.kv_tokens = 0
        else:
            self.drop(job)

    # -- transfers -----------------------------------------------------------------------
    def can_swap_out(self, job: Job) -> bool:
        return job.kv is KVLocation.DEVICE and self.blocks_for(job.kv_tokens) <= self.host_free_blocks

    def can_swap_out_any(self, jobs: Iterable[Job], *excluded: Container[int]) -> bool:
        """`can_swap_out` for any of `jobs` whose id is in none of `excluded`, in one pass with
        the check inlined: with the host full none can, and then every job is visited."""
        host_free, block = self.host_free_blocks, self.capacity.block_size_tokens
        for job in jobs:
            if job.kv is _DEVICE and -(-job.kv_tokens // block) <= host_free and not any(
                    job.id in ids for ids in excluded):
                return True
        return False

    def start_swap_out(self, job: Job) -> None:
        if not self.can_swap_out(job):
            raise ValueError(f"job {job.id}: cannot swap out ({job.kv.value}, host free {self.host_free_blocks})")
        job.host_blocks = self.blocks_for(job.kv_tokens)
        self.host_used_blocks += job.host_blocks
        self.device_used_blocks -= job.device_blocks
        self.releasing_blocks += job.device_blocks
        job.kv = KVLocation.SWAPPING_OUT

    def can_swap_in(self, job: Job) -> bool:
        """Against plannable room: the engine starts swap-ins after the plan's `wait_for`."""
        return job.kv is KVLocation.HOST and job.host_blocks <= self.device_plannable_blocks

    def start_swap_in(self, job: Job) -> None:
        if not self.can_swap_in(job):
            raise ValueError(f"job {job.id}: cannot swap in ({job.kv.value}, device free {self.device_plannable_blocks})")
        job.device_blocks = job.host_blocks
        self.device_used_blocks += job.device_blocks
        job.kv = KVLocation.SWAPPING_IN
        self._host_job_leaves(job.host_blocks)

    def finish_swap(self, job: Job) -> None:
        if job.kv is KVLocation.SWAPPING_OUT:
            self.releasing_blocks -= job.device_blocks
            job.device_blocks = 0
            job.kv = KVLocation.HOST
            counts = self._host_jobs_by_blocks
            counts[job.host_blocks] = counts.get(job.host_blocks, 0) + 1
            if job.host_blocks < self.min_host_job_blocks:
                self.min_host_job_blocks = job.host_blocks
        elif job.kv is KVLocation.SWAPPING_IN:
            self.host_used_blocks -= job.host_blocks
            job.host_blocks = 0
            job.kv = KVLocation.DEVICE
        else:
            raise ValueError(f"job {job.id}: no transfer in flight (KV is {job.kv.value})")

    def _host_job_leaves(self, blocks: int) -> None:
        counts = self._host_jobs_by_blocks
        left = counts[blocks] - 1
        if left:
            counts[blocks] = left
            return
        del counts[blocks]
        if blocks == self.min_host_job_blocks:  # one pass over the distinct sizes, not the jobs
            self.min_host_job_blocks = min(counts, default=math.inf)
