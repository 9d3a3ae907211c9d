"""Physical KV block allocation for one pool (device or host).

The policy (`policy.kv.KVSpace`) counts blocks; this allocator names them. It hands out the
lowest free block ids first, so a job that gets several blocks at once (a prefill, a swap)
usually gets one contiguous run, and a swap then moves as one copy (see `executor.transfer`).

Invariants: a block is either free or owned by exactly one allocation; `num_free` never goes
below zero and never above capacity. Running out is an error (`KVCapacityError`), never a
silent overflow: the policy's accounting must have prevented it.
"""

from __future__ import annotations

import heapq
from collections.abc import Sequence


class KVStoreError(ValueError):
    """The physical KV store disagrees with the policy's accounting, or was misused."""


class KVCapacityError(KVStoreError):
    """A pool ran out of blocks (the policy planned more than the store holds)."""


class BlockAllocator:
    def __init__(self, num_blocks: int, name: str) -> None:
        if num_blocks < 0:
            raise ValueError(f"{name}: number of blocks must be >= 0, got {num_blocks}")
        self.name = name
        self.num_blocks = num_blocks
        self._free = list(range(num_blocks))  # a heap; already sorted, so already a heap
        self._is_free = bytearray(b"\x01") * num_blocks

    @property
    def num_free(self) -> int:
        return len(self._free)

    @property
    def num_used(self) -> int:
        return self.num_blocks - len(self._free)

    def allocate(self, num: int, owner: object) -> list[int]:
        if num > len(self._free):
            raise KVCapacityError(
                f"{self.name} KV pool exhausted: {owner} needs {num} blocks, {len(self._free)} of "
                f"{self.num_blocks} are free"
            )
        blocks = [heapq.heappop(self._free) for _ in range(num)]
        for b in blocks:
            self._is_free[b] = 0
        return blocks

    def free(self, blocks: Sequence[int], owner: object) -> None:
        for b in blocks:
            if not 0 <= b < self.num_blocks or self._is_free[b]:
                raise KVStoreError(f"{self.name} KV pool: {owner} frees block {b}, which it does not own")
            self._is_free[b] = 1
            heapq.heappush(self._free, b)


def runs(blocks: Sequence[int]) -> list[tuple[int, int, int]]:
    """Split a block list into maximal runs of consecutive ids: (index in list, first id, length)."""
    out: list[tuple[int, int, int]] = []
    start = 0
    for i in range(1, len(blocks) + 1):
        if i == len(blocks) or blocks[i] != blocks[i - 1] + 1:
            out.append((start, blocks[start], i - start))
            start = i
    return out
