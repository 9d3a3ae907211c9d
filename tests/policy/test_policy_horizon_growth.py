"""The KV bound of event skipping (`policy.horizon._most_iterations`): the closed form for
slacks within one block, and the search otherwise, equal a scan of every iteration count; the
shortcut that spares the search when the engine's own limit fits is never wrong."""

from hypothesis import given, settings
from hypothesis import strategies as st

from policy import Job
from policy.horizon import _most_iterations, growth_fits


def scan(block: int, batch: list[Job], room: int) -> int:
    slacks = [j.device_blocks * block - j.prompt_tokens - j.generated_tokens for j in batch]

    def growth(i: int) -> int:
        return sum(max(0, -((s - i) // block)) for s in slacks)

    cap = block * (room // len(batch) + 2)
    return max((i for i in range(cap + 1) if growth(i) <= room), default=0)


def batch_of(contexts: list[int], extra_blocks: list[int], block: int) -> list[Job]:
    jobs = []
    for k, (c, extra) in enumerate(zip(contexts, extra_blocks, strict=False)):
        job = Job(k, 0.0, c, 10_000, generated_tokens=0)
        # as allocation leaves it (the blocks for c - 1 tokens: the newest token's KV is written
        # by the next step), or holding more
        job.device_blocks = max(0, -(-(c - 1) // block)) + extra
        jobs.append(job)
    return jobs


@settings(max_examples=400, deadline=None)
@given(block=st.integers(2, 32), contexts=st.lists(st.integers(1, 3000), min_size=1, max_size=40),
       extra=st.lists(st.sampled_from([0, 0, 0, 1]), min_size=40, max_size=40), room=st.integers(0, 300))
def test_most_iterations_is_the_largest_count_that_fits(block, contexts, extra, room):
    batch = batch_of(contexts, extra, block)
    assert _most_iterations(block, batch, room) == scan(block, batch, room)


@settings(max_examples=300, deadline=None)
@given(block=st.integers(2, 32), contexts=st.lists(st.integers(1, 3000), min_size=1, max_size=256),
       room=st.integers(0, 2_000))
def test_the_closed_form_serves_slacks_as_allocation_leaves_them(block, contexts, room):
    batch = batch_of(contexts, [0] * len(contexts), block)  # every slack in [-1, block - 1)
    assert _most_iterations(block, batch, room) == scan(block, batch, room)


@settings(max_examples=300, deadline=None)
@given(block=st.integers(2, 32), contexts=st.lists(st.integers(1, 3000), min_size=1, max_size=256),
       iterations=st.integers(0, 200), room=st.integers(0, 2_000))
def test_growth_fits_only_when_the_search_would_allow_as_many(block, contexts, iterations, room):
    batch = batch_of(contexts, [0] * len(contexts), block)  # every slack in [-1, block - 1)
    if growth_fits(block, len(batch), iterations, room):
        assert _most_iterations(block, batch, room) >= iterations


def test_growth_fits_at_the_boundary():
    # 4 jobs, block 16: 15 more iterations need at most one block each, 16 need two
    assert growth_fits(16, 4, 15, 4) and not growth_fits(16, 4, 16, 4) and growth_fits(16, 4, 16, 8)
    batch = batch_of([17] * 4, [0] * 4, 16)  # each holds 1 block for 16 tokens: slack -1
    assert _most_iterations(16, batch, 4) == 15
