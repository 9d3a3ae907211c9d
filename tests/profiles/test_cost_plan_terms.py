"""The measured engine's per-plan terms, its per-policy overheads and the clock noise: exact
values, JSON round trip, schema errors, and the bit-identity event skipping relies on."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import profiles
from profiles.plan_events import plan_ends
from profiles.schema import EngineOverhead, ProfileError
from profiles.store import profile_from_dict, profile_to_dict
from tests.profiles.builders import small_profile, small_profile_dict

FULL = EngineOverhead(iteration_s=1e-4, per_job_s=2e-5, per_prefill_s=5e-4, per_plan_s=3e-4, per_admission_s=7e-5,
                      per_plan_end_s=4e-5, per_finish_s=6e-5, first_pass_s=9e-5, per_decode_plan_s=8e-5,
                      per_plan_job_s=1e-5, per_plan_end_job_s=3e-6)
FCFS = EngineOverhead(iteration_s=2e-4, per_job_s=0.0, per_prefill_s=0.0, per_decode_plan_s=5e-4)


def test_plan_terms_exact():
    assert FULL.plan_s(2) == 3e-4 + 1e-5 * 0 + 7e-5 * 2 + 9e-5  # not pure decode: no reuse check
    assert FULL.plan_s(0, pure_decode=True, num_jobs=4) == 3e-4 + 1e-5 * 4 + 0.0 + 9e-5 + 8e-5
    assert FULL.plan_end_s(3, num_jobs=5) == 4e-5 + 3e-6 * 5 + 6e-5 * 3
    cm = profiles.cost_model(small_profile(overhead=FULL))
    assert cm.plan_overhead_s(1, True, 3) == FULL.plan_s(1, True, 3)
    assert cm.plan_end_overhead_s(2, 7) == FULL.plan_end_s(2, 7)
    bare = profiles.cost_model(small_profile())
    assert bare.plan_overhead_s(5, True, 9) == 0.0 and bare.plan_end_overhead_s(5, 9) == 0.0


def test_for_policy_swaps_in_that_policys_overhead():
    cm = profiles.cost_model(small_profile(overhead=FULL, policy_overhead={"fcfs": FCFS}))
    fcfs = cm.for_policy("fcfs")
    assert fcfs.plan_overhead_s(0, True) == 5e-4 and fcfs.iteration_s([], [100]) == cm.iteration_s([], [100]) - FULL.s(
        1, 0) + FCFS.s(1, 0)
    assert cm.for_policy("mlfq") is cm  # not measured: the default
    assert profiles.cost_model(small_profile()).for_policy("fcfs").plan_overhead_s(3) == 0.0


def test_json_round_trip_of_the_new_fields_and_older_profiles():
    p = small_profile(overhead=FULL, policy_overhead={"fcfs": FCFS}, forward_noise=(0.95, 1.0, 1.2))
    d = profile_to_dict(p)
    assert d["engine_overhead_by_policy"]["fcfs"]["per_decode_plan_s"] == 5e-4
    assert d["forward_noise"] == [0.95, 1.0, 1.2]
    assert profile_from_dict(d) == p
    # a profile measured before these fields: they read as 0 / none
    old = small_profile_dict(overhead=FULL)
    for name in EngineOverhead.OPTIONAL_FIELDS:
        del old["engine_overhead"][name]
    loaded = profile_from_dict(old)
    assert loaded.overhead == EngineOverhead(1e-4, 2e-5, 5e-4, 3e-4, 7e-5)
    assert loaded.policy_overhead == {} and loaded.forward_noise == ()


@pytest.mark.parametrize(("changes", "message"), [
    ({"forward_noise": [1.0]}, "field 'forward_noise': must list at least 2 finite numbers > 0 (or none), got (1.0,)"),
    ({"forward_noise": [1.0, -1.0]}, "field 'forward_noise': must list at least 2 finite numbers > 0 (or none), "
                                     "got (1.0, -1.0)"),
    ({"forward_noise": [1.2, 1.0]}, "field 'forward_noise': must be ascending"),
    ({"engine_overhead_by_policy": {"fcfs": {"iteration_s": 0.0}}},
     "field 'engine_overhead_by_policy.fcfs.per_job_s': missing"),
])
def test_schema_errors_name_the_field(changes, message):
    d = small_profile_dict(overhead=FULL)
    d.update(changes)
    with pytest.raises(ProfileError) as info:
        profile_from_dict(d)
    assert str(info.value) == f"profile: {message}"


def test_per_policy_overheads_need_a_default():
    with pytest.raises(ProfileError, match="needs engine_overhead"):
        small_profile(policy_overhead={"fcfs": FCFS})


def test_noisy_iteration_multiplies_the_forward_part_by_its_group():
    noise = (0.9, 1.0, 1.1, 1.5)
    cm = profiles.cost_model(small_profile(overhead=FULL, forward_noise=noise))
    plain = profiles.cost_model(small_profile(overhead=FULL))
    for k in range(12):
        group = min(int((k * 0.6180339887498949) % 1.0 * 4), 3)  # 0, 2, 1, 3, 0, 3, 2, 1, ...
        o = FULL.s(3, 1)
        assert cm.noisy_iteration_s([64], [100, 100], k) == o + (plain.iteration_s([64], [100, 100]) - o) * noise[group]
    assert cm.iteration_s([64], [100]) == plain.iteration_s([64], [100])  # the typical iteration: no noise
    assert plain.noisy_iteration_s([64], [100], 5) == plain.iteration_s([64], [100])
    assert cm.noisy_iteration_s([], [], 3) == 0.0


@settings(max_examples=100, deadline=None)
@given(ctx=st.lists(st.integers(1, 3000), min_size=1, max_size=50), k=st.integers(0, 60),
       first=st.integers(0, 10**7), with_overhead=st.booleans())
def test_noisy_decode_iterations_bit_identical_to_noisy_iteration_s(ctx, k, first, with_overhead):
    cm = profiles.cost_model(small_profile(decode_context="max", overhead=FULL if with_overhead else None,
                                           forward_noise=(0.93, 0.99, 1.0, 1.02, 1.4)))
    cm.exits.warned = True
    many = cm.noisy_decode_iterations_s(ctx, k, first)
    one_by_one = np.array([cm.noisy_iteration_s([], [c + i for c in ctx], first + i) for i in range(k)])
    assert many.tobytes() == one_by_one.astype(np.float64).tobytes()


def test_plan_ends_from_live_iteration_times():
    # plans: rows 0-2 (reused), 3-4, 5; requests finish at 3.0 (row 2's end) and twice at 4.5
    ends, finished = plan_ends([0.0, 1.0, 2.0, 3.1, 4.0, 5.0], [1.0, 2.0, 3.0, 4.0, 4.5, 6.0], [3.0, 4.5, 4.5])
    assert ends.tolist() == [False, False, True, False, True, False]  # the run's last row: not counted
    assert finished.tolist() == [0, 0, 1, 0, 2, 0]
    assert [a.tolist() for a in plan_ends([], [], [])] == [[], []]
