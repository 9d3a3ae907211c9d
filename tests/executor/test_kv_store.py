"""KV store: capacities as the policy's, one place per job, exact copies, clear errors."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from executor.blocks import BlockAllocator, KVCapacityError, KVStoreError, runs
from executor.kv_store import KVCapacityMismatch, KVStore
from executor.models import KVLayout
from executor.transfer import MAX_RUNS, Swapper, copy_blocks
from policy import Job, KVCapacity, KVLocation

LAYOUT = KVLayout(num_layers=2, num_kv_heads=2, head_dim=4, dtype=torch.float32)


def _store(device_blocks=8, host_blocks=4, block_size=2, max_seq=16) -> KVStore:
    return KVStore(LAYOUT, KVCapacity(device_blocks, host_blocks, block_size), max_seq)


def test_pools_have_the_policys_capacity_and_layout():
    store = _store()
    assert tuple(store.device_pool.shape) == (8, 2, 2, 2, 2, 4)
    assert tuple(store.host_pool.shape) == (4, 2, 2, 2, 2, 4)
    assert store.bytes_per_block == 2 * LAYOUT.bytes_per_token == 2 * (2 * 2 * 2 * 4 * 4)
    assert not store.host_pool.is_pinned()
    store.check_capacity(KVCapacity(8, 4, 2))
    with pytest.raises(KVCapacityMismatch, match="policy plans with 9 device / 4 host blocks of 2 tokens, but the KV store holds 8 / 4"):
        store.check_capacity(KVCapacity(9, 4, 2))


def test_running_out_of_blocks_is_an_error_not_an_overflow():
    store = _store(device_blocks=3)
    store.grow(1, 2)
    with pytest.raises(KVCapacityError, match="device KV pool exhausted: job 2 needs 2 blocks, 1 of 3 are free"):
        store.grow(2, 2)
    with pytest.raises(KVStoreError, match="16 blocks exceed one sequence's 8"):
        store.grow(1, 16)


def test_lifecycle_keeps_kv_in_one_place_and_frees_everything():
    store = _store()
    store.grow(7, 3)
    with pytest.raises(KVStoreError, match="asked to shrink"):
        store.grow(7, 2)
    src, dst = store.begin_swap_out(7, 2)  # kv_tokens fit 2 of its 3 blocks
    assert (src, dst) == ([0, 1], [0, 1])
    with pytest.raises(KVStoreError, match="job 7: KV is swapping_out, expected device"):
        store.drop(7)
    with pytest.raises(KVStoreError, match="cannot grow device KV while it is swapping_out"):
        store.grow(7, 4)
    store.end_swap_out(7)
    assert store.device_alloc.num_used == 0 and store.host_alloc.num_used == 2
    with pytest.raises(KVStoreError, match="job 7: swap in of 2 blocks into 1"):
        store.begin_swap_in(7, 1)
    src, dst = store.begin_swap_in(7, 3)  # the policy may claim room to grow into
    assert len(src) == len(dst) == 2 and len(store.jobs[7].device_blocks) == 3
    store.end_swap_in(7)
    store.grow(7, 4)
    store.drop(7)
    assert store.is_empty
    with pytest.raises(KVStoreError, match="job 7: KV is none, expected device"):
        store.drop(7)


def test_swaps_move_the_exact_bytes():
    store = _store(device_blocks=8, host_blocks=8)
    swapper = Swapper(store)
    store.grow(1, 1)
    store.grow(2, 3)  # blocks 1..3
    data = torch.randn(3, *store.device_pool.shape[1:])
    store.device_pool[1:4] = data
    t = swapper.swap_out(2, 3)
    assert t.done() and t.num_bytes == 3 * store.bytes_per_block
    store.end_swap_out(2)
    store.device_pool.zero_()
    store.grow(3, 2)  # takes blocks 0 and 2 .. so the swap-in lands elsewhere
    swapper.swap_in(2, 3)
    store.end_swap_in(2)
    blocks = store.jobs[2].device_blocks
    assert torch.equal(store.device_pool[blocks], data)


def _audit_jobs(store: KVStore, overrides: dict | None = None) -> list[Job]:
    jobs = []
    for job_id, kv in store.jobs.items():
        job = Job(id=job_id, arrival_s=0.0, prompt_tokens=1, output_tokens=1)
        job.kv, job.device_blocks, job.host_blocks = kv.where, len(kv.device_blocks), len(kv.host_blocks)
        for k, v in (overrides or {}).get(job_id, {}).items():
            setattr(job, k, v)
        jobs.append(job)
    return jobs


def test_audit_catches_every_disagreement():
    store = _store()
    store.grow(1, 2)
    store.grow(2, 1)
    store.begin_swap_out(2, 1)
    store.audit(_audit_jobs(store))
    with pytest.raises(KVStoreError, match="job 1: store holds 2 device / 0 host blocks, policy counts 3 / 0"):
        store.audit(_audit_jobs(store, {1: {"device_blocks": 3}}))
    with pytest.raises(KVStoreError, match="job 2: store says swapping_out, policy says host"):
        store.audit(_audit_jobs(store, {2: {"kv": KVLocation.HOST}}))
    with pytest.raises(KVStoreError, match=r"KV store holds jobs \[1, 2\], the policy places KV for \[1\]"):
        store.audit(_audit_jobs(store)[:1])
    store.jobs[1].where = KVLocation.HOST  # corrupt: device blocks while "host"
    store.jobs[1].host_blocks = [3]
    with pytest.raises(KVStoreError, match="job 1: KV on device and host while host"):
        store.audit(_audit_jobs(store))


def test_reset_frees_everything():
    store = _store()
    store.grow(1, 2)
    store.grow(2, 2)
    store.begin_swap_out(2, 2)
    store.reset()
    assert store.is_empty and store.device_alloc.num_free == 8 and store.host_alloc.num_free == 4


def test_allocator_hands_out_lowest_blocks_and_rejects_double_free():
    a = BlockAllocator(6, "device")
    assert a.allocate(3, "x") == [0, 1, 2]
    a.free([1], "x")
    assert a.allocate(2, "y") == [1, 3]
    with pytest.raises(KVStoreError, match="device KV pool: z frees block 5, which it does not own"):
        a.free([5], "z")


def test_runs():
    assert runs([]) == []
    assert runs([4, 5, 6, 9, 2, 3]) == [(0, 4, 3), (3, 9, 1), (4, 2, 2)]


@settings(max_examples=60, deadline=None)
@given(st.data())
def test_copy_blocks_equals_indexed_assignment(data):
    n_src, n_dst = 40, 40
    k = data.draw(st.integers(1, 30))
    src_blocks = data.draw(st.permutations(range(n_src)))[:k]
    dst_blocks = data.draw(st.permutations(range(n_dst)))[:k]
    if data.draw(st.booleans()):  # contiguous destinations are the common case
        start = data.draw(st.integers(0, n_dst - k))
        dst_blocks = list(range(start, start + k))
    src = torch.randn(n_src, 3, 2)
    dst = torch.zeros(n_dst, 3, 2)
    expected = dst.clone()
    expected[dst_blocks] = src[src_blocks]
    copy_blocks(src, src_blocks, dst, dst_blocks)
    assert torch.equal(dst, expected)


def test_fragmented_destination_of_small_blocks_uses_one_gather_scatter():
    src = torch.randn(64, 2)
    dst = torch.zeros(64, 2)
    dst_blocks = list(range(0, 2 * (MAX_RUNS + 1), 2))  # MAX_RUNS + 1 runs of one block
    src_blocks = list(range(len(dst_blocks)))
    copy_blocks(src, src_blocks, dst, dst_blocks)
    assert torch.equal(dst[dst_blocks], src[src_blocks])
    assert dst[1].abs().sum() == 0
