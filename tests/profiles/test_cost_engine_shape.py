"""The cost model's engine-shape options that `fastserve validate` brought in: decode looked up
at the longest context (`decode_context = "max"`), the measured engine overhead, their JSON
round trip and schema errors, and the bit-identity the simulator's event skipping relies on."""

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import profiles
from profiles.schema import ProfileError
from profiles.store import profile_from_dict, profile_to_dict
from tests.profiles.builders import OVERHEAD, quiet, small_profile, small_profile_dict

ZEROS = {"per_plan_s": 0.0, "per_admission_s": 0.0}


def test_max_mode_looks_decodes_up_at_the_longest_context():
    mean = profiles.cost_model(small_profile())
    longest = profiles.cost_model(small_profile(decode_context="max"))
    # DECODE grid (tests/profiles/builders.py): batch 2 at context 100 -> 0.012, at 1000 -> 0.030
    assert mean.iteration_s([], [100, 100]) == longest.iteration_s([], [100, 100]) == 0.012
    assert longest.iteration_s([], [1000, 1]) == 0.030  # padded to 1000 for both jobs
    assert mean.iteration_s([], [1000, 1]) < 0.030  # mean 500.5


def test_overhead_adds_per_iteration_job_and_prefill_terms():
    base = profiles.cost_model(small_profile())
    cm = profiles.cost_model(small_profile(overhead=OVERHEAD))
    assert OVERHEAD.s(3, 1) == 1e-4 + 2e-5 * 3 + 5e-4 * 1
    assert cm.iteration_s([], [100, 100]) == base.iteration_s([], [100, 100]) + OVERHEAD.s(2, 0)
    assert cm.iteration_s([64], []) == base.iteration_s([64], []) + OVERHEAD.s(1, 1)
    assert cm.iteration_s([64], [100]) == base.iteration_s([64], [100]) + OVERHEAD.s(2, 1)
    assert cm.prefill_s(64) == base.prefill_s(64) + OVERHEAD.s(1, 1)
    assert cm.iteration_s([], []) == 0.0  # no iteration, no overhead
    assert cm.plan_overhead_s(0) == 3e-4 and cm.plan_overhead_s(3) == 3e-4 + 7e-5 * 3
    assert base.plan_overhead_s(5) == 0.0


def test_measured_shared_cost_replaces_the_extrapolated_one():
    extrapolated = profiles.cost_model(small_profile())
    measured = profiles.cost_model(small_profile(mixed_shared_s=0.005))
    assert extrapolated.fixed_s == pytest.approx(0.008) and measured.fixed_s == 0.005
    tp, td = extrapolated.iteration_s([64], []), extrapolated.iteration_s([], [100, 100])
    assert measured.iteration_s([64], [100, 100]) == max(tp, td, tp + td - 0.005)
    assert measured.iteration_s([64], [100, 100]) > extrapolated.iteration_s([64], [100, 100])


def test_forward_scale_multiplies_the_grids_before_they_combine():
    base = profiles.cost_model(small_profile(mixed_shared_s=0.005))
    cm = profiles.cost_model(small_profile(mixed_shared_s=0.005, forward_scale=1.25, overhead=OVERHEAD))
    tp, td = base.iteration_s([64], []), base.iteration_s([], [100, 100])
    assert cm.iteration_s([64], []) == tp * 1.25 + OVERHEAD.s(1, 1)
    assert cm.iteration_s([], [100, 100]) == td * 1.25 + OVERHEAD.s(2, 0)
    assert cm.iteration_s([64], [100, 100]) == max(tp * 1.25, td * 1.25, tp * 1.25 + td * 1.25 - 0.005) + OVERHEAD.s(3, 1)
    # without a measured shared cost, the extrapolated one scales with the grids
    assert profiles.cost_model(small_profile(forward_scale=2.0)).fixed_s == pytest.approx(0.016)


def test_json_round_trip_and_defaults():
    p = small_profile(decode_context="max", overhead=OVERHEAD, mixed_shared_s=0.004, forward_scale=1.05)
    d = profile_to_dict(p)
    assert d["decode_context"] == "max"
    assert d["engine_overhead"] == {"iteration_s": 1e-4, "per_job_s": 2e-5, "per_prefill_s": 5e-4,
                                    "per_plan_s": 3e-4, "per_admission_s": 7e-5, "per_plan_end_s": 0.0,
                                    "per_finish_s": 0.0, "first_pass_s": 0.0, "per_decode_plan_s": 0.0,
                                    "per_plan_job_s": 0.0, "per_plan_end_job_s": 0.0, "per_swap_s": 0.0}
    assert d["mixed_shared_s"] == 0.004 and d["forward_scale"] == 1.05
    assert profile_from_dict(d) == p
    plain = small_profile_dict()
    assert not {"decode_context", "engine_overhead", "mixed_shared_s", "forward_scale"} & plain.keys()  # absent: default
    loaded = profile_from_dict(plain)
    assert (loaded.decode_context, loaded.overhead, loaded.mixed_shared_s, loaded.forward_scale) == ("mean", None, None, 1.0)


@pytest.mark.parametrize(("changes", "message"), [
    ({"decode_context": "median"}, "field 'decode_context': must be one of ('mean', 'max'), got 'median'"),
    ({"mixed_shared_s": -0.1}, "field 'mixed_shared_s': must be a finite number >= 0, got -0.1"),
    ({"forward_scale": 0}, "field 'forward_scale': must be a finite number > 0, got 0"),
    ({"engine_overhead": {"iteration_s": -1e-6, "per_job_s": 0.0, "per_prefill_s": 0.0, **ZEROS}},
     "field 'engine_overhead.iteration_s': must be a finite number >= 0, got -1e-06"),
    ({"engine_overhead": {"iteration_s": 0.0, "per_job_s": math.inf, "per_prefill_s": 0.0, **ZEROS}},
     "field 'engine_overhead.per_job_s': must be a finite number >= 0, got inf"),
    ({"engine_overhead": {"iteration_s": 0.0, "per_job_s": 0.0, "per_prefill_s": 0.0, "per_plan_s": 0.0}},
     "field 'engine_overhead.per_admission_s': missing"),
])
def test_schema_errors_name_the_field(changes, message):
    d = small_profile_dict()
    d.update(changes)
    with pytest.raises(ProfileError) as info:
        profile_from_dict(d)
    assert str(info.value) == f"profile: {message}"


@settings(max_examples=150, deadline=None)
@given(ctx=st.lists(st.integers(1, 3000), min_size=1, max_size=200), k=st.integers(0, 200),
       mode=st.sampled_from(["mean", "max"]), with_overhead=st.booleans(), scale=st.sampled_from([1.0, 1.07, 0.93]))
def test_decode_iterations_bit_identical_to_iteration_s(ctx, k, mode, with_overhead, scale):
    cm = quiet(profiles.cost_model(small_profile(decode_context=mode, overhead=OVERHEAD if with_overhead else None,
                                                 forward_scale=scale)))
    many = cm.decode_iterations_s(ctx, k)
    one_by_one = np.array([cm.iteration_s([], [c + i for c in ctx]) for i in range(k)], dtype=np.float64)
    assert many.tobytes() == one_by_one.tobytes()


def test_plan_events_from_live_iteration_times():
    from profiles.plan_events import plan_events

    # a plan of 3 reused iterations (each starts where the last ended), then a new plan after a
    # gap, reused once, then a third plan; arrivals at 0, 0.5 (before the 2nd plan's start 3.1)
    # and 3.1 (exactly at it: admitted by it), 3.5 and 4.0 (by the 3rd plan at 5.0)
    new_plan, admitted = plan_events([0.0, 1.0, 2.0, 3.1, 4.0, 5.0], [1.0, 2.0, 3.0, 4.0, 4.5, 6.0],
                                     [0.0, 0.5, 3.1, 3.5, 4.0, 7.0])
    assert new_plan.tolist() == [True, False, False, True, False, True]
    assert admitted.tolist() == [1, 0, 0, 2, 0, 2]  # the request at 7.0 came after the last plan
    with pytest.raises(ValueError, match="sorted by start_s"):
        plan_events([1.0, 0.0], [1.5, 0.5], [])
