"""Engine overhead: the period arithmetic, the fit (exact on exact data, clamped, robust to a
lost time slice), and a real measurement through the engine that lands in the profile."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from executor.overhead import OverheadConfig, fit_overhead, measure_engine_overhead, overhead_rows
from executor.profiler import ProfileConfig, profile_model
from profiles import EngineOverhead
from tests.executor.conftest import tiny


def rows(batch, prefills, overhead_s, forward_s=1e-3, new_plan=0, admitted=0):
    return pd.DataFrame({"batch_size": batch, "num_prefills": prefills, "new_plan": new_plan, "admitted": admitted,
                         "overhead_s": overhead_s, "forward_s": forward_s})


def test_overhead_rows_charge_the_gap_to_the_next_start():
    it = pd.DataFrame({"start_s": [0.0, 0.9, 2.5], "end_s": [0.9, 2.0, 3.2], "forward_s": [0.8, 0.7, 0.6]})
    got = overhead_rows(it.iloc[[2, 0, 1]], [0.0, 0.0, 2.2])  # order does not matter
    assert got["overhead_s"].round(12).tolist() == [0.1, 0.9, 0.1]  # 0.9-0.8, 2.5-0.7, last: 0.7-0.6
    assert got["new_plan"].tolist() == [True, False, True] and got["admitted"].tolist() == [2, 0, 1]


def test_fit_recovers_exact_coefficients():
    batch = np.array([1, 2, 4, 8, 16, 4, 1, 16, 3, 5])
    prefills = np.array([1, 0, 0, 2, 16, 4, 0, 0, 1, 0])
    new_plan = np.array([1, 0, 1, 1, 1, 1, 0, 0, 1, 1])
    admitted = np.array([1, 0, 0, 3, 16, 2, 0, 0, 0, 1])
    truth = EngineOverhead(1e-5, 2e-6, 4e-5, 3e-5, 6e-5)
    y = [truth.s(int(b), int(p)) + (truth.plan_s(int(a)) if n else 0.0)
         for b, p, n, a in zip(batch, prefills, new_plan, admitted, strict=True)]
    fit, dropped = fit_overhead(rows(batch, prefills, y, new_plan=new_plan, admitted=admitted))
    assert dropped == 0
    for name in EngineOverhead.FIELDS:
        assert getattr(fit, name) == pytest.approx(getattr(truth, name), rel=1e-9), name


def test_fit_clamps_negative_coefficients_to_zero():
    batch = np.array([1, 2, 4, 8])
    fit, _ = fit_overhead(rows(batch, [0, 0, 0, 0], 1e-4 - 1e-6 * batch))  # falls with batch size
    assert fit.per_job_s == 0.0 and fit.per_prefill_s == 0.0 and fit.per_plan_s == 0.0
    assert fit.iteration_s == pytest.approx(np.mean(1e-4 - 1e-6 * batch))


def test_fit_drops_a_lost_time_slice():
    batch = np.array([1, 2, 4, 8, 1, 2, 4, 8, 16, 16])
    y = 1e-5 + 2e-6 * batch
    y[3] += 4e-3  # the process was descheduled for 4 ms: not engine work
    fit, dropped = fit_overhead(rows(batch, 0, y))
    assert dropped == 1
    assert (fit.iteration_s, fit.per_job_s) == (pytest.approx(1e-5, rel=1e-6), pytest.approx(2e-6, rel=1e-6))


def test_config_validation():
    with pytest.raises(ValueError, match="batch_sizes must be positive and rounds >= 1"):
        OverheadConfig(batch_sizes=(0, 2))
    with pytest.raises(ValueError, match=r"prompt_tokens must be a range 0 < lo <= hi, got \(9, 8\)"):
        OverheadConfig(prompt_tokens=(9, 8))


def test_measured_through_the_engine_and_recorded_in_the_profile():
    model = tiny("tiny-llama").model
    fit, note, rows = measure_engine_overhead(model, OverheadConfig(batch_sizes=(1, 3), rounds=1, output_tokens=(8, 16)))
    assert len(rows) and (rows["num_prefills"] > 0).any()
    for name in EngineOverhead.FIELDS:
        assert math.isfinite(getattr(fit, name)) and getattr(fit, name) >= 0
    assert rows["new_plan"].any() and not rows["new_plan"].all() and rows["admitted"].sum() == (1 + 1) + (3 + 3)  # every request admitted once
    # the engine does real work around every forward pass
    assert fit.s(1, 0) + fit.plan_s(1) > 0
    assert note.startswith("engine runs of mlfq, batch sizes [1, 3] x 1 rounds, b requests at t=0")
    quick = dict(prefill_batch_sizes=(1, 2), prompt_tokens=(8, 32), decode_batch_sizes=(1, 4),
                 context_tokens=(16, 64), swap_tokens=(16, 64), warmups=1, max_repeats=2, budget_s=2,
                 overhead=OverheadConfig(batch_sizes=(1, 2, 8), rounds=1, output_tokens=(8, 16)))
    p = profile_model(model, "tiny-llama", ProfileConfig(**quick), "pytest", progress=False)
    assert p.decode_context == "max" and p.overhead is not None and p.mixed_shared_s >= 0 and p.forward_scale > 0
    assert p.notes["engine_overhead"].startswith("engine runs of mlfq, batch sizes [1, 2] x 1 rounds")  # capped at 4



def test_calibration_from_the_engine_rows():
    from executor.overhead import calibrate
    from profiles import cost_model
    from tests.profiles.builders import small_profile

    profile = small_profile(decode_context="max", overhead=EngineOverhead(1e-3, 1e-3, 1e-3))
    bare = cost_model(small_profile(decode_context="max"))  # the overhead is not part of the forward
    tp, td = bare.iteration_s([32, 32], []), bare.iteration_s([], [100, 100, 100])
    # decode-only rows run 10 % slower than the grids say (ratio of sums);
    # two mixed rows share 4 and 6 ms of the scaled parts
    rows = pd.DataFrame({
        "batch_size": [5, 5, 3, 2], "num_prefills": [2, 2, 0, 2], "prefill_tokens": [64, 64, 0, 64],
        "decode_context_tokens": [250, 250, 300, 0], "decode_max_context_tokens": [100, 100, 100, 0],
        "forward_s": [1.1 * (tp + td) - 0.004, 1.1 * (tp + td) - 0.006, 1.1 * td, 1.7 * tp]})  # cold prefill: left out
    got = calibrate(profile, rows)
    assert got.forward_scale == pytest.approx(1.1, rel=1e-12)
    assert got.mixed_shared_s == pytest.approx(0.005, rel=1e-9)
    assert got.overhead == profile.overhead and got.prefill == profile.prefill
    # no mixed row: the shared cost stays as it was; slower rows cannot make it negative
    assert calibrate(profile, rows.iloc[2:]).mixed_shared_s is None
    assert calibrate(profile, rows.iloc[[0, 2, 3]].assign(forward_s=[10.0, 1.1 * td, 1.1 * tp])).mixed_shared_s == 0.0
