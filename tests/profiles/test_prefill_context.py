"""The profile's prefill-with-context term (chunked prefill): schema checks, store round trip,
the roofline's model of it, and how the cost model prices a chunk with and without it."""

from __future__ import annotations

import dataclasses

import pytest

from profiles import cost_model, load_profile
from profiles.grid_exits import ExtrapolationWarning
from profiles.ops import BatchShape
from profiles.roofline import iteration_time_s, roofline_profile
from profiles.schema import LatencyGrid, ProfileError
from profiles.store import profile_from_dict, profile_to_dict

GRID = LatencyGrid((8, 16), (0, 32, 64), ((1.0, 1.5, 2.0), (2.0, 3.0, 4.0)))


def with_grid(grid):
    return dataclasses.replace(load_profile("tiny-opt_cpu_tp1"), prefill_context=grid)


def test_round_trips_through_the_store():
    p = with_grid(GRID)
    d = profile_to_dict(p)
    assert d["prefill_context"] == {"chunk_tokens": [8, 16], "context_tokens": [0, 32, 64],
                                    "latency_s": [[1.0, 1.5, 2.0], [2.0, 3.0, 4.0]]}
    assert profile_from_dict(d) == p
    assert "prefill_context" not in profile_to_dict(with_grid(None))  # optional: absent stays absent


@pytest.mark.parametrize("grid,field", [
    (LatencyGrid((8, 16), (1, 32, 64), GRID.latency_s), "prefill_context.context_tokens"),  # must start at 0
    (LatencyGrid((8, 16), (0, 64, 32), GRID.latency_s), "prefill_context.context_tokens"),
    (LatencyGrid((0, 16), (0, 32, 64), GRID.latency_s), "prefill_context.chunk_tokens"),
    (LatencyGrid((8, 16), (0, 32, 64), ((1.0, 1.5), (2.0, 3.0, 4.0))), "prefill_context.latency_s[0]"),
    (LatencyGrid((8, 16), (0, 32, 64), ((1.0, 1.5, -2.0), (2.0, 3.0, 4.0))), "prefill_context.latency_s[0][2]"),
])
def test_schema_names_the_bad_field(grid, field):
    with pytest.raises(ProfileError) as err:
        with_grid(grid)
    assert err.value.field_path == field


def test_a_chunk_pays_for_the_context_it_attends_to():
    p = with_grid(GRID)
    cm = cost_model(p)
    # extra(n, c) = T(n, c) - T(n, 0): 8 tokens after 32: 0.5 s; 12 after 48: halfway in both axes
    assert cm.chunk_context_s([8], [32]) == 0.5
    assert cm.chunk_context_s([12], [48]) == pytest.approx(1.125)
    assert cm.chunk_context_s([8, 16], [0, 64]) == 2.0
    base = cm.iteration_s([8], [5, 9])
    assert cm.iteration_s([8], [5, 9], [0]) == base
    assert cm.iteration_s([8], [], [32]) > cm.iteration_s([8], [])


def test_a_chunk_outside_the_grid_is_counted_and_named_in_one_warning():
    cm = cost_model(with_grid(GRID))
    with pytest.warns(ExtrapolationWarning) as caught:
        cm.chunk_context_s([8], [100])  # context beyond 64
        cm.chunk_context_s([32], [32])  # chunk beyond 16
    assert cm.num_extrapolations == 2
    assert len(caught) == 1
    assert "prefill chunk of 8 tokens after 100: the measured context tokens are 0..64" in str(caught[0].message)


def test_without_the_grid_the_estimate_is_the_cross_attention_of_a_quadratic_prefill():
    cm = cost_model(with_grid(None))
    p = cm._prefill
    n, c = 16, 32
    want = p.scalar(1, c + n)[0] - p.scalar(1, c)[0] - p.scalar(1, n)[0] + cm._grid_fixed_s
    assert cm.chunk_context_s([n], [c]) == max(0.0, want)
    assert cm.chunk_context_s([n], [0]) == 0.0


def test_roofline_models_chunks_and_a_split_prompt_costs_about_the_whole():
    p = roofline_profile("opt-13b", "a100-80gb")
    g = p.prefill_context
    assert g.tokens[0] == 0 and g.batch_sizes[-1] == 2048
    assert all(row[0] < row[-1] for row in g.latency_s)  # more context, more work
    hw_spec = p.model
    from profiles.hardware import roofline_hardware
    hw = roofline_hardware("a100-80gb")
    assert g.latency_s[0][0] == iteration_time_s(hw_spec, hw, 1, BatchShape.chunk(g.batch_sizes[0], 0))
    # attention over a 2048-token prompt in 4 chunks: the chunks' attention adds up to the
    # whole prompt's causal attention, so the split prompt costs the whole plus ~3 fixed costs
    cm = cost_model(p)
    whole = cm.iteration_s([2048], [])
    split = sum(cm.iteration_s([512], [], [c]) for c in (0, 512, 1024, 1536))
    assert whole < split < whole * 1.2
