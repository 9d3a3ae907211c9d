"""KV swaps between the device pool and the host pool: the real copies.

- CPU (device pool in host memory): synchronous copies. A transfer is complete when `start`
  returns. Each maximal run of consecutive destination blocks is one copy: a slice copy when the
  source is a run too, else `index_select(..., out=dst_run)`, a single pass either way; a
  destination fragmented into many small runs falls back to one gather + scatter.
- CUDA: asynchronous copies on one dedicated stream per direction (the paper's swap link),
  ordered after the compute issued so far (`wait_stream`), into a pinned host pool, so they
  overlap with the next forward passes. Swap-out gathers the job's device blocks into a device
  staging buffer, then DMAs each destination run to the host. Swap-in DMAs each host run into a
  device staging buffer (or straight into a contiguous destination), then scatters on the device.
  A CUDA event marks the end; `Transfer.done()` polls it, `wait()` blocks on it. The staging
  buffer lives as long as the transfer, so the caching allocator cannot reuse it early.

The source blocks are freed only when the transfer lands (`KVStore.end_swap_*`), by the engine.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass

import torch

from executor.blocks import runs
from executor.kv_store import KVStore

MAX_RUNS = 2  # more destination runs than this, each smaller than MIN_RUN_BYTES: gather + scatter
MIN_RUN_BYTES = 256 * 1024  # (index_copy_ costs ~3x a memcpy; each slice copy ~3 us of overhead)


@dataclass(slots=True)
class Transfer:
    job_id: int
    direction: str  # "out" (device -> host) or "in" (host -> device)
    num_bytes: int
    start_s: float  # perf_counter when it was issued
    event: torch.cuda.Event | None = None
    staging: torch.Tensor | None = None

    def done(self) -> bool:
        return self.event is None or self.event.query()

    def wait(self) -> None:
        if self.event is not None:
            self.event.synchronize()


def _index(blocks: Sequence[int], device: torch.device) -> torch.Tensor:
    return torch.tensor(blocks, dtype=torch.int64).to(device, non_blocking=True)


def copy_blocks(src: torch.Tensor, src_blocks: Sequence[int], dst: torch.Tensor, dst_blocks: Sequence[int]) -> None:
    """Synchronous block copy between two pools in host memory (dst[dst_blocks] = src[src_blocks])."""
    dst_runs = runs(dst_blocks)
    run_bytes = len(dst_blocks) * dst[0].numel() * dst.element_size() // max(1, len(dst_runs))
    if len(dst_runs) > MAX_RUNS and run_bytes < MIN_RUN_BYTES:
        dst.index_copy_(0, _index(dst_blocks, dst.device), src.index_select(0, _index(src_blocks, src.device)))
        return
    for i, first, n in dst_runs:
        part = src_blocks[i:i + n]
        if len(runs(part)) == 1:
            dst[first:first + n].copy_(src[part[0]:part[0] + n])
        else:
            torch.index_select(src, 0, _index(part, src.device), out=dst[first:first + n])


class Swapper:
    """Starts swaps for one `KVStore`; keeps no state beyond the CUDA streams."""

    def __init__(self, store: KVStore) -> None:
        self.store = store
        self.is_cuda = store.device.type == "cuda"
        if self.is_cuda:
            self.out_stream = torch.cuda.Stream(device=store.device)
            self.in_stream = torch.cuda.Stream(device=store.device)

    def swap_out(self, job_id: int, num_host_blocks: int) -> Transfer:
        src, dst = self.store.begin_swap_out(job_id, num_host_blocks)
        t = Transfer(job_id, "out", len(src) * self.store.bytes_per_block, time.perf_counter())
        if not src:
            return t
        if not self.is_cuda:
            copy_blocks(self.store.device_pool, src, self.store.host_pool, dst)
            return t
        self.out_stream.wait_stream(torch.cuda.current_stream(self.store.device))
        with torch.cuda.stream(self.out_stream):
            pool = self.store.device_pool
            src_runs = runs(src)
            staging = pool[src[0]:src[0] + len(src)] if len(src_runs) == 1 else pool.index_select(0, _index(src, pool.device))
            for i, first, n in runs(dst):
                self.store.host_pool[first:first + n].copy_(staging[i:i + n], non_blocking=True)
            t.staging, t.event = staging, torch.cuda.Event()
            t.event.record(self.out_stream)
        return t

    def swap_in(self, job_id: int, num_device_blocks: int) -> Transfer:
        src, dst = self.store.begin_swap_in(job_id, num_device_blocks)
        t = Transfer(job_id, "in", len(src) * self.store.bytes_per_block, time.perf_counter())
        if not src:
            return t
        if not self.is_cuda:
            copy_blocks(self.store.host_pool, src, self.store.device_pool, dst)
            return t
        self.in_stream.wait_stream(torch.cuda.current_stream(self.store.device))
        with torch.cuda.stream(self.in_stream):
            pool, host = self.store.device_pool, self.store.host_pool
            dst_runs = runs(dst)
            staging = pool[dst[0]:dst[0] + len(dst)] if len(dst_runs) == 1 else torch.empty(
                (len(dst), *pool.shape[1:]), dtype=pool.dtype, device=pool.device)
            for i, first, n in runs(src):
                staging[i:i + n].copy_(host[first:first + n], non_blocking=True)
            if len(dst_runs) > 1:
                pool.index_copy_(0, _index(dst, pool.device), staging)
            t.staging, t.event = staging, torch.cuda.Event()
            t.event.record(self.in_stream)
        return t

    def compute_waits_for(self, transfer: Transfer) -> None:
        """Make the compute stream wait for a swap-in without blocking the CPU."""
        if transfer.event is not None:
            torch.cuda.current_stream(self.store.device).wait_event(transfer.event)
