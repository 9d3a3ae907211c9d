"""`decode_iterations_lazy`: the values of `decode_iterations_s`, bit for bit, one at a time,
wherever it serves (one grid segment, inside the grid), with the curve, the overhead and both
decode-context rules; None where the numpy path must serve."""

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

import profiles
from tests.profiles.builders import CURVE, OVERHEAD, quiet, small_profile

BUNDLED = profiles.load_profile(profiles.DEFAULT_PROFILE)


def models():
    yield profiles.cost_model(BUNDLED)
    for context in ("mean", "max"):
        yield profiles.cost_model(small_profile(decode_context=context))
        yield profiles.cost_model(small_profile(decode_context=context, forward_scale_by_batch=CURVE,
                                                overhead=OVERHEAD))


@settings(max_examples=300, deadline=None)
@given(ctx=st.lists(st.integers(1, 3000), min_size=1, max_size=80), k=st.integers(0, 60))
def test_lazy_values_are_decode_iterations_s_bit_for_bit(ctx, k):
    for cm in models():
        cm = quiet(cm)
        lazy = cm.decode_iterations_lazy(ctx, k)
        many = cm.decode_iterations_s(ctx, k)
        if lazy is None:
            continue
        values = list(lazy)
        assert all(type(v) is float for v in values)
        assert np.array(values, dtype=np.float64).tobytes() == many.tobytes()
        assert cm.num_extrapolations == 0  # it serves only inside the grid


def test_lazy_serves_one_segment_inside_the_grid_only():
    cm = quiet(profiles.cost_model(BUNDLED))
    tokens = BUNDLED.decode.tokens  # ..., 1024, 1536, 2048
    inside = 1100
    assert cm.decode_iterations_lazy([inside], 3) is not None
    assert cm.decode_iterations_lazy([inside, inside + 2], 3) is not None  # mean 1101..1103
    assert cm.decode_iterations_lazy([1535], 3) is None  # crosses a grid point
    assert cm.decode_iterations_lazy([int(tokens[-1])], 2) is None  # leaves the grid
    assert cm.decode_iterations_lazy([inside] * (max(BUNDLED.decode.batch_sizes) + 1), 2) is None  # batch past it
    assert cm.decode_iterations_lazy([], 3) is None
    assert cm.decode_iterations_lazy([inside], 0) is None  # nothing to price


def test_a_lazy_run_can_stop_early():
    cm = profiles.cost_model(BUNDLED)
    ctx = [1100, 1200, 1300, 1401]
    lazy = cm.decode_iterations_lazy(ctx, 5)
    assert [next(lazy), next(lazy)] == cm.decode_iterations_s(ctx, 2).tolist()
