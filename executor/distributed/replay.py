"""Every rank applies the same KV store operations, in the same order (record on rank 0, replay).

The engine (rank 0) only ever changes its `KVStore` through a handful of calls: `grow`, `drop`,
`begin_swap_out` / `begin_swap_in` (made by its `Swapper`), `end_swap_out` / `end_swap_in`,
`reset`. `RecordingStore` forwards each to rank 0's real store and appends it to `ops`; the
next command carries the ops to every other rank, where `Replica.apply` performs the same calls
on that rank's own store, which holds its shard (its KV heads, its stage's layers):
- a begin-swap becomes that rank's own `Swapper.swap_out` / `swap_in`, so every rank moves
  its shard of the job's KV (asynchronously on CUDA, on each GPU's own copy streams);
- an end-swap first waits for that rank's own copy, then frees the source blocks.
The allocators are deterministic (lowest free block first), so identical call sequences give
identical block ids on every rank; `digest` lets a run check that (`check_invariants`).
Reads (`num_device_blocks`, `device_alloc`, pools, ...) go straight to rank 0's store.
"""

from __future__ import annotations

import json
import zlib

from executor.distributed.comm import DistributedError
from executor.kv_store import KVStore
from executor.transfer import Swapper, Transfer


class RecordingStore:
    """Rank 0's `KVStore` as the engine sees it: the real store, plus the log of its changes."""

    def __init__(self, store: KVStore) -> None:
        self._store = store
        self.ops: list[list] = []

    def __getattr__(self, name: str):  # reads: rank 0's own store
        return getattr(self._store, name)

    @property
    def inner(self) -> KVStore:
        return self._store

    def take_ops(self) -> list[list]:
        ops, self.ops = self.ops, []
        return ops

    def grow(self, job_id: int, num_blocks: int) -> None:
        self._store.grow(job_id, num_blocks)
        self.ops.append(["grow", job_id, num_blocks])

    def drop(self, job_id: int) -> None:
        self._store.drop(job_id)
        self.ops.append(["drop", job_id])

    def begin_swap_out(self, job_id: int, num_host_blocks: int):
        out = self._store.begin_swap_out(job_id, num_host_blocks)
        self.ops.append(["swap_out", job_id, num_host_blocks])
        return out

    def begin_swap_in(self, job_id: int, num_device_blocks: int):
        out = self._store.begin_swap_in(job_id, num_device_blocks)
        self.ops.append(["swap_in", job_id, num_device_blocks])
        return out

    def end_swap_out(self, job_id: int) -> None:
        self._store.end_swap_out(job_id)
        self.ops.append(["end_swap_out", job_id])

    def end_swap_in(self, job_id: int) -> None:
        self._store.end_swap_in(job_id)
        self.ops.append(["end_swap_in", job_id])

    def reset(self) -> None:
        self._store.reset()
        self.ops.append(["reset"])


class Replica:
    """A worker's KV store and swapper, and its copies in flight; applies rank 0's ops."""

    def __init__(self, store: KVStore) -> None:
        self.store = store
        self.swapper = Swapper(store)
        self.transfers: dict[int, Transfer] = {}

    def apply(self, ops: list[list]) -> None:
        store = self.store
        for op, *args in ops:
            if op == "grow":
                store.grow(*args)
            elif op == "drop":
                store.drop(*args)
            elif op == "swap_out":
                self.transfers[args[0]] = self.swapper.swap_out(*args)
            elif op == "swap_in":
                self.transfers[args[0]] = self.swapper.swap_in(*args)
            elif op in ("end_swap_out", "end_swap_in"):
                self.transfers.pop(args[0]).wait()
                (store.end_swap_out if op == "end_swap_out" else store.end_swap_in)(args[0])
            elif op == "reset":
                for transfer in self.transfers.values():
                    transfer.wait()
                self.transfers.clear()
                store.reset()
            else:
                raise DistributedError(f"unknown KV store operation {op!r} in the command stream")


def digest(store: KVStore) -> int:
    """A checksum of which blocks each job holds where (equal on every rank after the same ops)."""
    state = sorted((job_id, kv.where.value, kv.device_blocks, kv.host_blocks) for job_id, kv in store.jobs.items())
    text = json.dumps([state, store.device_alloc.num_used, store.host_alloc.num_used])
    return zlib.crc32(text.encode())
