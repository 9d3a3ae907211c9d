"""`forward_scale_by_batch`: a pass is priced at the scale of its job count, interpolated on the
curve and clamped at its ends; skipped decode runs stay bit-identical to stepping; the JSON
round trip and the schema errors."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import profiles
from profiles.schema import ProfileError
from profiles.store import profile_from_dict, profile_to_dict
from tests.profiles.builders import CURVE, OVERHEAD, quiet, small_profile, small_profile_dict


def test_scale_is_interpolated_at_the_job_count_and_clamped():
    cm = profiles.cost_model(small_profile(forward_scale=1.05, forward_scale_by_batch=CURVE))
    assert [cm.forward_scale_at(n) for n in (1, 2, 3, 5, 7, 40)] == [1.0, 1.1, 1.2, 1.25, 1.3, 1.3]
    assert cm.forward_scale_at(0) == 1.0  # below the curve: its first point
    assert profiles.cost_model(small_profile(forward_scale=1.05)).forward_scale_at(5) == 1.05  # no curve


def test_both_parts_of_a_pass_take_the_whole_pass_scale():
    base = quiet(profiles.cost_model(small_profile(mixed_shared_s=0.005)))
    cm = quiet(profiles.cost_model(small_profile(mixed_shared_s=0.005, forward_scale_by_batch=CURVE,
                                                 overhead=OVERHEAD)))
    tp, td = base.iteration_s([64], []), base.iteration_s([], [100, 100])
    assert cm.iteration_s([64], []) == tp * 1.0 + OVERHEAD.s(1, 1)
    assert cm.iteration_s([], [100, 100]) == td * cm.forward_scale_at(2) + OVERHEAD.s(2, 0)
    s3 = cm.forward_scale_at(3)
    assert s3 == 1.2
    assert cm.iteration_s([64], [100, 100]) == max(tp * s3, td * s3, tp * s3 + td * s3 - 0.005) + OVERHEAD.s(3, 1)


@settings(max_examples=100, deadline=None)
@given(ctx=st.lists(st.integers(1, 3000), min_size=1, max_size=12), k=st.integers(0, 100),
       with_overhead=st.booleans())
def test_decode_iterations_bit_identical_with_a_curve(ctx, k, with_overhead):
    cm = quiet(profiles.cost_model(small_profile(decode_context="max", forward_scale_by_batch=CURVE,
                                                 overhead=OVERHEAD if with_overhead else None)))
    many = cm.decode_iterations_s(ctx, k)
    one_by_one = np.array([cm.iteration_s([], [c + i for c in ctx]) for i in range(k)], dtype=np.float64)
    assert many.tobytes() == one_by_one.tobytes()


def test_json_round_trip():
    p = small_profile(forward_scale=1.05, forward_scale_by_batch=((1, 1.0), (4, 1.1)))
    d = profile_to_dict(p)
    assert d["forward_scale_by_batch"] == [[1.0, 1.0], [4.0, 1.1]]
    assert profile_from_dict(d) == p
    assert p.forward_scale_by_batch == ((1.0, 1.0), (4.0, 1.1))  # normalized to float pairs
    assert "forward_scale_by_batch" not in small_profile_dict()
    assert profile_from_dict(small_profile_dict()).forward_scale_by_batch == ()


PAIRS_MESSAGE = "field 'forward_scale_by_batch': must list at least 2 [batch_size >= 1, scale > 0] pairs (or none), got "


@pytest.mark.parametrize(("value", "message"), [
    ([[1, 1.0]], PAIRS_MESSAGE + "[[1, 1.0]]"),
    ([[1, 1.0], [2, 0.0]], PAIRS_MESSAGE + "[[1, 1.0], [2, 0.0]]"),
    ([[0, 1.0], [2, 1.1]], PAIRS_MESSAGE + "[[0, 1.0], [2, 1.1]]"),
    ([[1, 1.0], [2, float("nan")]], PAIRS_MESSAGE + "[[1, 1.0], [2, nan]]"),
    ([[1, 1.0, 3], [2, 1.1]], PAIRS_MESSAGE + "[[1, 1.0, 3], [2, 1.1]]"),
    ([[1, True], [2, 1.1]], PAIRS_MESSAGE + "[[1, True], [2, 1.1]]"),
    ("1.0", PAIRS_MESSAGE + "'1.0'"),
    ([[2, 1.0], [2, 1.1]], "field 'forward_scale_by_batch': batch sizes must be strictly ascending"),
])
def test_schema_errors_name_the_field(value, message):
    d = small_profile_dict()
    d["forward_scale_by_batch"] = value
    with pytest.raises(ProfileError) as info:
        profile_from_dict(d)
    assert str(info.value) == f"profile: {message}"
