"""RankIndex (the location indexes' sorted container) against a plain sorted model.

The index stores its entries in blocks that split and vanish as jobs come and go; these tests
drive it through adds, re-keys and discards (with tiny blocks, so that every split and every
emptied block happens) and compare every view with a dict sorted on the spot."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from policy import Job
from policy.queue import JobQueue, RankIndex


class TinyBlocks(RankIndex):
    __slots__ = ()
    _BLOCK = 2  # splits past 4 entries


def _job(i: int) -> Job:
    return Job(id=i, arrival_s=0.0, prompt_tokens=1, output_tokens=1)


ops = st.lists(st.tuples(st.sampled_from(["add", "discard"]), st.integers(0, 30), st.integers(0, 60)),
               max_size=200)


@settings(max_examples=300, deadline=None)
@given(ops)
def test_rank_index_matches_a_sorted_model(script):
    index, model, jobs = TinyBlocks(), {}, {i: _job(i) for i in range(31)}
    for op, job_id, key in script:
        job = jobs[job_id]
        if op == "add":
            taken_by = next((j for j, k in model.items() if k == key and j != job_id), None)
            if taken_by is not None:  # keys are unique: a second job may not take one
                with pytest.raises(ValueError, match=f"rank key {key} already indexed for job {taken_by}"):
                    index.add(job, key)
                continue
            index.add(job, key)
            model[job_id] = key
        else:
            index.discard(job)
            model.pop(job_id, None)
        order = sorted(model, key=model.get)
        assert [j.id for j in index] == order
        assert [j.id for j in reversed(index)] == order[::-1]
        assert sorted(j.id for j in index.values()) == sorted(order)
        assert len(index) == len(model)
        assert all((jobs[i] in index) == (i in model) for i in jobs)
        for probe in (0, key, key + 1, 61):  # the entry just below a key, across blocks
            below = [i for i in order if model[i] < probe]
            found = index.last_below(probe)
            assert (found.id if found is not None else None) == (below[-1] if below else None)


def test_blocks_split_and_empty_at_the_default_size():
    index = RankIndex()
    jobs = [_job(i) for i in range(1000)]
    for job in reversed(jobs):  # descending keys: every insert at the front
        index.add(job, job.id * 3)
    assert len(index._key_blocks) > 1  # noqa: SLF001 (the split this test is about)
    assert [j.id for j in index] == list(range(1000))
    for job in jobs[:900]:
        index.discard(job)
    assert [j.id for j in index] == list(range(900, 1000))
    index.add(jobs[950], -1)  # re-key to the front
    assert [j.id for j in index][:2] == [950, 900]
    for job in jobs:
        index.discard(job)
    assert len(index) == 0 and list(index) == [] and index._maxes == []  # noqa: SLF001


class TinyQueue(JobQueue):
    __slots__ = ()
    _BLOCK = 2


queue_ops = st.lists(st.tuples(st.sampled_from(["add", "add", "remove"]), st.integers(0, 30), st.integers(0, 60)),
                     max_size=200)


@settings(max_examples=300, deadline=None)
@given(queue_ops)
def test_job_queue_matches_a_sorted_model(script):
    """Adds (in and out of order), removals and positions against a dict sorted on the spot."""
    queue, model, jobs = TinyQueue(), {}, {i: _job(i) for i in range(31)}
    for op, job_id, seq in script:
        job = jobs[job_id]
        if op == "add":
            if job_id in model:
                continue  # a queued job's seq must not change
            job.seq = seq
            if seq in model.values():
                with pytest.raises(ValueError, match=f"job {job_id}: seq {seq} already queued"):
                    queue.add(job)
                continue
            queue.add(job)
            model[job_id] = seq
        elif job_id in model:
            queue.remove(job)
            del model[job_id]
        else:
            with pytest.raises(KeyError, match=f"job {job_id} is not in this queue"):
                queue.remove(job)
        order = sorted(model, key=model.get)
        assert [j.id for j in queue] == order and len(queue) == len(model)
        assert [j.seq for j in queue] == sorted(model.values())
        for probe in (0, seq, seq + 1, 61):
            assert queue.position(probe) == sum(1 for v in model.values() if v < probe)


bulk_script = st.tuples(st.lists(st.integers(0, 60), min_size=0, max_size=31, unique=True),  # keys of jobs 0..
                        st.lists(st.booleans(), min_size=31, max_size=31),  # which of them change
                        st.integers(-5, 70))  # re-keyed jobs' new keys start here, ascending


@settings(max_examples=300, deadline=None)
@given(bulk_script)
def test_many_at_once_matches_one_at_a_time(script):
    """`rekey_many`, `discard_many` and `remove_many` leave the entries one-at-a-time changes
    would, on either side of the bulk threshold (few changes go one at a time, many in a pass)."""
    keys, chosen, start = script
    jobs = [_job(i) for i in range(len(keys))]
    picked = [job for job, pick in zip(jobs, chosen, strict=False) if pick]
    stored = set(keys)
    new_key = {job.id: start + 100 * k for k, job in enumerate(picked)}  # ascending, may clash with kept keys
    clash = any(key in stored and keys.index(key) not in new_key for key in new_key.values())

    def filled(kind):
        index = kind()
        for job, key in zip(jobs, keys, strict=True):
            index.add(job, key)
        return index

    bulk, single = filled(TinyBlocks), filled(TinyBlocks)
    if clash:
        with pytest.raises(ValueError):
            bulk.rekey_many(picked, lambda job: new_key[job.id])
    else:
        bulk.rekey_many(picked, lambda job: new_key[job.id])
        for job in picked:  # one at a time, re-keyed last-first (earlier ones may take freed keys)
            single.discard(job)
        for job in picked:
            single.add(job, new_key[job.id])
        assert [(j.id, bulk._key_of[j.id]) for j in bulk] == [(j.id, single._key_of[j.id]) for j in single]  # noqa: SLF001
    bulk, single = filled(TinyBlocks), filled(TinyBlocks)
    bulk.discard_many(picked + [_job(99)])  # one not indexed: ignored, as by discard
    for job in picked:
        single.discard(job)
    assert [j.id for j in bulk] == [j.id for j in single] and len(bulk) == len(single)
    assert all((job in bulk) == (job in single) for job in jobs)

    queue = TinyQueue()
    for job, key in zip(jobs, keys, strict=True):
        job.seq = key
        queue.add(job)
    queue.remove_many(picked)
    assert [j.id for j in queue] == [j.id for j in sorted(jobs, key=lambda j: j.seq) if j not in picked]
    assert [queue.position(p) for p in range(62)] == [sum(1 for j in jobs if j not in picked and j.seq < p)
                                                      for p in range(62)]


def test_a_bulk_pass_refuses_keys_it_does_not_hold():
    index = RankIndex()
    jobs = [_job(i) for i in range(4)]
    for job in jobs[:3]:
        index.add(job, job.id)
    with pytest.raises(KeyError, match="1 of the keys to drop are not stored"):
        index._replace_many({0, 7}, [])  # noqa: SLF001
    assert [j.id for j in index] == [0, 1, 2]
