"""The physical KV cache: a device pool, a host swap pool, and which blocks each job holds.

Layout (block-major, so that one job's KV for all layers moves as whole blocks):
    device_pool  [num_device_blocks, num_layers, 2 (K, V), block_size, num_kv_heads, head_dim]
    host_pool    [num_host_blocks,   num_layers, 2 (K, V), block_size, num_kv_heads, head_dim]
The host pool is pinned when the device is CUDA, so swaps are real asynchronous DMA.
Attention reads one layer's K (or V) as the strided view `pool[:, layer, 0]` ([blocks, block,
heads, dim]) and gathers a job's blocks from it. Both pools start zeroed: padding slots are
masked out of attention, but a masked NaN would still poison the softmax-weighted sum.

The store is built from the SAME `KVCapacity` that the policy plans with (`check_capacity`
raises `KVCapacityMismatch` otherwise) and mirrors the policy's per-job block counts exactly;
running out of blocks raises `KVCapacityError`, never overflows.

Each job's KV lives in exactly one place: a job's state is one of device / host /
swapping_out / swapping_in, and every operation checks the state it starts from. During a
transfer both ends hold blocks (the copy needs both); the source is freed when it lands.
`audit` cross-checks everything against the policy's `Job`s (tests run it every iteration).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

import torch

from executor.blocks import BlockAllocator, KVStoreError
from executor.models import KVLayout
from policy import Job, KVCapacity, KVLocation


class KVCapacityMismatch(KVStoreError):
    """The policy plans with different KV capacities than the store was built with."""


@dataclass(slots=True)
class JobKV:
    where: KVLocation
    device_blocks: list[int] = field(default_factory=list)
    host_blocks: list[int] = field(default_factory=list)
    row: int = -1  # block-table row while the job holds device blocks


class KVStore:
    def __init__(self, layout: KVLayout, capacity: KVCapacity, max_seq_tokens: int,
                 device: str | torch.device = "cpu", pin_host: bool | None = None) -> None:
        self.layout = layout
        self.capacity = capacity
        self.device = torch.device(device)
        self.block_size = capacity.block_size_tokens
        self.max_blocks_per_seq = -(-max_seq_tokens // self.block_size)
        block_shape = (layout.num_layers, 2, self.block_size, layout.num_kv_heads, layout.head_dim)
        pin = self.device.type == "cuda" if pin_host is None else pin_host
        self.device_pool = torch.zeros((capacity.device_blocks, *block_shape), dtype=layout.dtype, device=self.device)
        self.host_pool = torch.zeros((capacity.host_blocks, *block_shape), dtype=layout.dtype, pin_memory=pin)
        self.bytes_per_block = self.block_size * layout.bytes_per_token
        self._layer_views = [(self.device_pool[:, i, 0], self.device_pool[:, i, 1]) for i in range(layout.num_layers)]
        self.device_alloc = BlockAllocator(capacity.device_blocks, "device")
        self.host_alloc = BlockAllocator(capacity.host_blocks, "host")
        self.jobs: dict[int, JobKV] = {}
        # Block tables on the CPU: row r holds the device blocks of one job, in token order.
        self.table = torch.zeros((16, self.max_blocks_per_seq), dtype=torch.int64)
        self._free_rows = list(range(15, -1, -1))

    def check_capacity(self, capacity: KVCapacity) -> None:
        if capacity != self.capacity:
            raise KVCapacityMismatch(
                f"policy plans with {capacity.device_blocks} device / {capacity.host_blocks} host blocks of "
                f"{capacity.block_size_tokens} tokens, but the KV store holds {self.capacity.device_blocks} / "
                f"{self.capacity.host_blocks} blocks of {self.capacity.block_size_tokens} tokens"
            )

    def layer_views(self, layer: int) -> tuple[torch.Tensor, torch.Tensor]:
        """K and V of one layer: [device_blocks, block_size, num_kv_heads, head_dim] strided views."""
        return self._layer_views[layer]

    @property
    def is_empty(self) -> bool:
        return not self.jobs and self.device_alloc.num_used == 0 and self.host_alloc.num_used == 0

    def _state(self, job_id: int, *allowed: KVLocation) -> JobKV:
        kv = self.jobs.get(job_id)
        where = kv.where if kv is not None else KVLocation.NONE
        if where not in allowed:
            names = "/".join(a.value for a in allowed)
            raise KVStoreError(f"job {job_id}: KV is {where.value}, expected {names}")
        return kv

    # -- device residency --------------------------------------------------------------------
    def grow(self, job_id: int, num_blocks: int) -> None:
        """Give the job `num_blocks` device blocks in all (prefill or growth; never shrinks)."""
        kv = self.jobs.get(job_id)
        if kv is None:
            kv = self.jobs[job_id] = JobKV(KVLocation.DEVICE)
        elif kv.where not in (KVLocation.DEVICE, KVLocation.SWAPPING_IN):
            raise KVStoreError(f"job {job_id}: cannot grow device KV while it is {kv.where.value}")
        extra = num_blocks - len(kv.device_blocks)
        if extra < 0:
            raise KVStoreError(f"job {job_id}: holds {len(kv.device_blocks)} device blocks, asked to shrink to {num_blocks}")
        if num_blocks > self.max_blocks_per_seq:
            raise KVStoreError(f"job {job_id}: {num_blocks} blocks exceed one sequence's {self.max_blocks_per_seq}")
        if extra:
            self._add_device_blocks(job_id, kv, self.device_alloc.allocate(extra, f"job {job_id}"))
        elif not kv.device_blocks:
            del self.jobs[job_id]

    def _add_device_blocks(self, job_id: int, kv: JobKV, blocks: list[int]) -> None:
        if kv.row < 0:
            kv.row = self._take_row()
        start = len(kv.device_blocks)
        kv.device_blocks.extend(blocks)
        if len(blocks) == 1:  # growth during decode: one block at a time, keep it cheap
            self.table[kv.row, start] = blocks[0]
        else:
            self.table[kv.row, start:start + len(blocks)] = torch.tensor(blocks, dtype=torch.int64)

    def drop(self, job_id: int) -> None:
        """Free the job's KV without copying: on the device (recompute, or the job finished), or
        on the host (an aborted request)."""
        kv = self._state(job_id, KVLocation.DEVICE, KVLocation.HOST)
        if kv.where is KVLocation.DEVICE:
            self._release_device(job_id, kv)
        else:
            self.host_alloc.free(kv.host_blocks, f"job {job_id}")
        del self.jobs[job_id]

    def _release_device(self, job_id: int, kv: JobKV) -> None:
        self.device_alloc.free(kv.device_blocks, f"job {job_id}")
        kv.device_blocks = []
        self._free_rows.append(kv.row)
        kv.row = -1

    def _take_row(self) -> int:
        if not self._free_rows:
            n = self.table.shape[0]
            self.table = torch.cat([self.table, torch.zeros_like(self.table)])
            self._free_rows = list(range(2 * n - 1, n - 1, -1))
        return self._free_rows.pop()

    def row(self, job_id: int) -> int:
        return self._state(job_id, KVLocation.DEVICE).row

    def num_device_blocks(self, job_id: int) -> int:
        kv = self.jobs.get(job_id)
        return len(kv.device_blocks) if kv is not None else 0

    # -- transfers (the copies themselves are in executor.transfer) --------------------------
    def begin_swap_out(self, job_id: int, num_host_blocks: int) -> tuple[list[int], list[int]]:
        """Claim host blocks; returns (device source blocks, host destination blocks)."""
        kv = self._state(job_id, KVLocation.DEVICE)
        if num_host_blocks > len(kv.device_blocks):
            raise KVStoreError(f"job {job_id}: swap out of {num_host_blocks} blocks, holds {len(kv.device_blocks)}")
        kv.host_blocks = self.host_alloc.allocate(num_host_blocks, f"job {job_id}")
        kv.where = KVLocation.SWAPPING_OUT
        return kv.device_blocks[:num_host_blocks], kv.host_blocks

    def end_swap_out(self, job_id: int) -> None:
        kv = self._state(job_id, KVLocation.SWAPPING_OUT)
        self._release_device(job_id, kv)
        kv.where = KVLocation.HOST

    def begin_swap_in(self, job_id: int, num_device_blocks: int) -> tuple[list[int], list[int]]:
        """Claim `num_device_blocks` device blocks (the policy may add room to grow into);
        returns (host source blocks, the device blocks they land in)."""
        kv = self._state(job_id, KVLocation.HOST)
        if num_device_blocks < len(kv.host_blocks):
            raise KVStoreError(f"job {job_id}: swap in of {len(kv.host_blocks)} blocks into {num_device_blocks}")
        self._add_device_blocks(job_id, kv, self.device_alloc.allocate(num_device_blocks, f"job {job_id}"))
        kv.where = KVLocation.SWAPPING_IN
        return kv.host_blocks, kv.device_blocks[:len(kv.host_blocks)]

    def end_swap_in(self, job_id: int) -> None:
        kv = self._state(job_id, KVLocation.SWAPPING_IN)
        self.host_alloc.free(kv.host_blocks, f"job {job_id}")
        kv.host_blocks = []
        kv.where = KVLocation.DEVICE

    # -- consistency -------------------------------------------------------------------------
    def audit(self, jobs: Iterable[Job]) -> None:
        """Raise `KVStoreError` unless the store matches the policy's jobs block for block and
        every block has exactly one owner."""
        expected = {j.id: j for j in jobs if j.kv is not KVLocation.NONE}
        if expected.keys() != self.jobs.keys():
            raise KVStoreError(
                f"KV store holds jobs {sorted(self.jobs)}, the policy places KV for {sorted(expected)}"
            )
        owned_device: set[int] = set()
        owned_host: set[int] = set()
        for job_id, kv in self.jobs.items():
            job = expected[job_id]
            if kv.where is not job.kv:
                raise KVStoreError(f"job {job_id}: store says {kv.where.value}, policy says {job.kv.value}")
            if len(kv.device_blocks) != job.device_blocks or len(kv.host_blocks) != job.host_blocks:
                raise KVStoreError(
                    f"job {job_id}: store holds {len(kv.device_blocks)} device / {len(kv.host_blocks)} host "
                    f"blocks, policy counts {job.device_blocks} / {job.host_blocks}"
                )
            in_two_places = kv.device_blocks and kv.host_blocks
            if in_two_places and kv.where not in (KVLocation.SWAPPING_IN, KVLocation.SWAPPING_OUT):
                raise KVStoreError(f"job {job_id}: KV on device and host while {kv.where.value}")
            for blocks, owned, name in ((kv.device_blocks, owned_device, "device"), (kv.host_blocks, owned_host, "host")):
                if owned.intersection(blocks) or len(set(blocks)) != len(blocks):
                    raise KVStoreError(f"job {job_id}: shares a {name} block with another job")
                owned.update(blocks)
        if len(owned_device) != self.device_alloc.num_used or len(owned_host) != self.host_alloc.num_used:
            raise KVStoreError(
                f"KV store leaks blocks: {self.device_alloc.num_used} device / {self.host_alloc.num_used} host "
                f"in use, jobs own {len(owned_device)} / {len(owned_host)}"
            )

    def reset(self) -> None:
        """Free every block (after a run stopped early, so the next run starts empty)."""
        for job_id, kv in list(self.jobs.items()):
            if kv.device_blocks:
                self._release_device(job_id, kv)
            self.host_alloc.free(kv.host_blocks, f"job {job_id}")
        self.jobs.clear()
