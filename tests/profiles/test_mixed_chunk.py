"""The profile's mixed_chunk grid (what one prefill chunk adds to the decode pass it joins):
schema checks, store round trip, and how the cost model prices a chunked mixed iteration with it."""

from __future__ import annotations

import dataclasses

import pytest

from profiles import cost_model
from profiles.schema import LatencyGrid, ProfileError
from profiles.store import profile_from_dict, profile_to_dict
from tests.profiles.builders import small_profile

# chunk tokens 1, 8, 32 x context tokens 0, 64: seconds added to the decode pass
MIXED = LatencyGrid((1, 8, 32), (0, 64), ((1e-5, 2e-5), (1e-4, 2e-4), (3e-4, 5e-4)))


def test_round_trips_through_the_store():
    p = small_profile(mixed_chunk=MIXED)
    d = profile_to_dict(p)
    assert d["mixed_chunk"] == {"chunk_tokens": [1, 8, 32], "context_tokens": [0, 64],
                                "latency_s": [[1e-5, 2e-5], [1e-4, 2e-4], [3e-4, 5e-4]]}
    assert profile_from_dict(d) == p
    assert "mixed_chunk" not in profile_to_dict(small_profile())  # optional: absent stays absent


@pytest.mark.parametrize("grid,field", [
    (LatencyGrid((1, 8, 32), (16, 64), MIXED.latency_s), "mixed_chunk.context_tokens"),  # must start at 0
    (LatencyGrid((8, 1, 32), (0, 64), MIXED.latency_s), "mixed_chunk.chunk_tokens"),
    (LatencyGrid((1, 8, 32), (0, 64), ((1e-5, 0.0), (1e-4, 2e-4), (3e-4, 5e-4))), "mixed_chunk.latency_s[0][1]"),
])
def test_schema_names_the_bad_field(grid, field):
    with pytest.raises(ProfileError) as err:
        small_profile(mixed_chunk=grid)
    assert err.value.field_path == field


def test_a_chunk_beside_decodes_adds_its_measured_marginal_to_the_decode_pass():
    cm = cost_model(small_profile(mixed_chunk=MIXED))
    # the decode grid at 2 jobs of context 100 is 0.012 s; a chunk of 8 after 0 adds 1e-4
    assert cm.iteration_s([8], [100, 100], [0]) == 0.012 + 1e-4
    # two chunks, each its own marginal, beside one decode (0.010 s)
    assert cm.iteration_s([8, 32], [100], [64, 0]) == 0.010 + (2e-4 + 3e-4)
    # between grid points: bilinear (20 tokens after 32: halfway on both axes)
    assert cm.mixed_chunk_s([20], [32]) == pytest.approx(0.25 * (1e-4 + 2e-4 + 3e-4 + 5e-4), rel=1e-12)
    assert cm.num_extrapolations == 0


def test_the_forward_scale_multiplies_the_marginal_too():
    cm = cost_model(small_profile(mixed_chunk=MIXED, forward_scale=1.5))
    assert cm.iteration_s([8], [100, 100], [0]) == pytest.approx(1.5 * (0.012 + 1e-4), rel=1e-12)


def test_other_iterations_keep_the_fused_rule():
    with_grid, without = cost_model(small_profile(mixed_chunk=MIXED)), cost_model(small_profile())
    # no chunk contexts: a whole prefill joining decodes (a policy that does not chunk)
    assert with_grid.iteration_s([16], [100, 100]) == without.iteration_s([16], [100, 100])
    # chunks without decodes: the prefill grid (plus the context term)
    assert with_grid.iteration_s([16], [], [64]) == without.iteration_s([16], [], [64])
    assert with_grid.iteration_s([], [100, 100]) == without.iteration_s([], [100, 100])
    # an engine that runs the two parts as separate passes has no such marginal
    sequential = dataclasses.replace(small_profile(mixed_chunk=MIXED), mixed_batch="sequential")
    assert cost_model(sequential).iteration_s([16], [100], [0]) == \
        cost_model(dataclasses.replace(sequential, mixed_chunk=None)).iteration_s([16], [100], [0])


def test_the_noisy_iteration_scales_the_forward_part_alone():
    cm = cost_model(small_profile(mixed_chunk=MIXED, forward_noise=(0.5, 1.5)))
    expected = cm.iteration_s([8], [100, 100], [0])
    assert {cm.noisy_iteration_s([8], [100, 100], k, [0]) for k in range(4)} == {0.5 * expected, 1.5 * expected}
