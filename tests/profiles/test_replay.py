"""profiles/replay.py: the simulator over a measured run's clock, exactly, with and without skipping."""

from __future__ import annotations

import numpy as np
import pytest

import profiles
from analysis.validation import batch_of
from policy import SchedulerConfig
from profiles.replay import ReplayedClock
from sim import SimConfig, simulate
from tests.profiles.builders import small_profile
from tests.sim.toy import ListTrace, jobs_of

FACTORS = (1.5, 0.75, 1.0, 3.0, 0.5)
TRACE = ListTrace.of([(0.0, 16, 40), (0.0, 16, 30), (0.001, 64, 20), (0.004, 16, 25)])


def test_the_kth_iteration_costs_its_price_times_the_kth_factor_cycling():
    cost = profiles.cost_model(small_profile())
    clock = ReplayedClock(cost, FACTORS)
    for k in range(12):
        assert clock.noisy_iteration_s([32], [40, 7], k) == cost.iteration_s([32], [40, 7]) * FACTORS[k % 5]
    # a decode run is the scalar path, element for element and bit for bit
    run = clock.noisy_decode_iterations_s([40, 7], 9, 3)
    assert run.tolist() == [clock.noisy_iteration_s([], [40 + i, 7 + i], 3 + i) for i in range(9)]
    assert clock.forward_noise == (0.5, 3.0)  # the smallest factor bounds a skip (sim/replica.py)
    assert clock.device_kv_tokens == cost.device_kv_tokens  # everything else is the profile's


@pytest.mark.parametrize("factors", [[], [1.0, 0.0], [1.0, float("nan")], [[1.0]]])
def test_factors_must_be_finite_and_positive(factors):
    with pytest.raises(ValueError, match="factors must be a non-empty list of finite numbers > 0"):
        ReplayedClock(profiles.cost_model(small_profile()), factors)


def test_a_simulation_replays_the_factors_in_iteration_order_with_and_without_skipping():
    # the profile's own clock noise is replaced, not compounded
    cost = profiles.cost_model(small_profile(forward_noise=(0.9, 1.3)))
    clock = ReplayedClock(cost, FACTORS)
    runs = [simulate(TRACE, clock, "fcfs", SchedulerConfig(), SimConfig(skip=skip, record_iterations=True))
            for skip in (True, False)]
    assert jobs_of(runs[0]) == jobs_of(runs[1])
    assert runs[0].stats["num_skipped_iterations"] > 0
    it = runs[1].iterations
    got = np.round((it["end_s"] - it["start_s"]).to_numpy() * 1e6).astype(int).tolist()
    want = []
    for k, row in enumerate(it.itertuples()):
        prompts, contexts = batch_of(row.batch_size, row.num_prefills, row.prefill_tokens, row.decode_context_tokens)
        want.append(max(1, round(cost.iteration_s(prompts, contexts) * FACTORS[k % 5] * 1e6)))
    assert got == want


def test_a_clock_of_ones_is_the_profile_without_noise():
    noisy = small_profile(forward_noise=(0.9, 1.3))
    plain = profiles.cost_model(small_profile())
    replayed = simulate(TRACE, ReplayedClock(profiles.cost_model(noisy), [1.0]), "skip-join-mlfq", SchedulerConfig(),
                        SimConfig())
    assert jobs_of(replayed) == jobs_of(simulate(TRACE, plain, "skip-join-mlfq", SchedulerConfig(), SimConfig()))
