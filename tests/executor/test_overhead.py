"""Engine overhead: the period arithmetic, the two-stage fit (exact on exact data, clamped,
robust to a lost time slice), and a real measurement through the engine, per policy, that
lands in the profile."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from executor.overhead import OverheadConfig, fit_overhead, measure_engine_overhead, overhead_rows
from executor.profiler import ProfileConfig, profile_model
from profiles import EngineOverhead
from tests.executor.conftest import tiny

TRUTH = EngineOverhead(iteration_s=1e-5, per_job_s=2e-6, per_prefill_s=4e-5, per_plan_s=3e-5, per_admission_s=6e-5,
                       per_plan_end_s=2e-5, per_finish_s=1.5e-5, per_decode_plan_s=7e-5, per_plan_job_s=3e-6,
                       per_plan_end_job_s=1e-6, per_swap_s=2.5e-5)


def rows(batch, prefills=0, new_plan=False, ends_plan=False, finished=0, admitted=0, overhead_s=None,
         forward_s=1e-3, truth=TRUTH, num_swaps=0):
    """Iteration rows whose overhead is exactly `truth`'s (plus `overhead_s` when given instead)."""
    df = pd.DataFrame({"batch_size": batch, "num_prefills": prefills, "new_plan": new_plan, "ends_plan": ends_plan,
                       "finished": finished, "admitted": admitted, "forward_s": forward_s, "num_swaps": num_swaps})
    df = df.astype({"new_plan": bool, "ends_plan": bool})
    df["decode_plan"] = df["new_plan"] & (df["num_prefills"] == 0)
    df["admit_s"] = truth.per_admission_s * df["admitted"]
    if overhead_s is None:
        overhead_s = [truth.s(r.batch_size, r.num_prefills)
                      + (truth.plan_s(0, r.decode_plan, r.batch_size) if r.new_plan else 0.0)
                      + (truth.plan_end_s(r.finished, r.batch_size) if r.ends_plan else 0.0)
                      + truth.per_swap_s * r.num_swaps for r in df.itertuples()]
    return df.assign(overhead_s=overhead_s)


def test_overhead_rows_charge_the_gap_to_the_next_start_less_the_admissions():
    it = pd.DataFrame({"start_s": [0.0, 0.9, 2.5], "end_s": [0.9, 2.0, 3.2], "forward_s": [0.8, 0.7, 0.6],
                       "admit_s": [0.05, 0.0, 0.02], "num_prefills": [1, 0, 0]})
    got = overhead_rows(it.iloc[[2, 0, 1]], [0.0, 0.0, 2.2], [2.0, 3.2])  # order does not matter
    # 0.9-0.8-0.05, 2.5-0.7, last: its own end 0.7-0.6-0.02
    assert got["overhead_s"].round(12).tolist() == [0.05, 0.9, 0.08]
    assert got["new_plan"].tolist() == [True, False, True] and got["admitted"].tolist() == [2, 0, 1]
    assert got["decode_plan"].tolist() == [False, False, True]  # the first plan holds a prefill
    # row 1 ends the first plan (the next starts a new one) and finished a request at 2.0; the
    # run's last row ends a plan too, but its wrap-up lies outside its period: not counted
    assert got["ends_plan"].tolist() == [False, True, False] and got["finished"].tolist() == [0, 1, 1]


def test_overhead_rows_take_out_the_swap_copies():
    """A row's transfers cost their copies (the swap curve, at each direction's mean size) plus
    the engine's own per-swap work: only the latter stays in overhead_s."""
    it = pd.DataFrame({"start_s": [0.0, 1.0], "end_s": [0.9, 1.8], "forward_s": [0.5, 0.6], "admit_s": [0.0, 0.0],
                       "num_prefills": [0, 0], "swap_out_tokens": [30, 0], "swap_in_tokens": [10, 0],
                       "num_swaps_out": [2, 0], "num_swaps_in": [1, 0]})
    seen = []

    def swap_s(tokens, direction):
        seen.append((tokens, direction))
        return {"out": 0.01, "in": 0.02}[direction] * tokens

    got = overhead_rows(it, [0.0], [1.8], swap_s)
    assert seen == [(15, "out"), (10, "in")]  # mean sizes; no call for a row without transfers
    assert got["overhead_s"].round(12).tolist() == [1.0 - 0.5 - 2 * 0.15 - 0.2, 0.2]
    assert got["num_swaps"].tolist() == [3, 0]
    assert overhead_rows(it, [0.0], [1.8])["overhead_s"].round(12).tolist() == [0.5, 0.2]  # no curve: kept


def test_fit_recovers_exact_coefficients():
    mid = rows([1, 2, 4, 8, 16, 3])
    plan = rows([1, 2, 4, 8, 16, 4, 1, 16, 3, 5, 6, 2, 9],
                prefills=[1, 0, 0, 2, 16, 4, 0, 0, 1, 0, 0, 0, 3],
                new_plan=[1, 1, 1, 1, 1, 1, 0, 0, 1, 1, 0, 1, 0],
                ends_plan=[0, 1, 0, 1, 1, 0, 1, 1, 1, 0, 1, 1, 1],
                finished=[0, 1, 0, 2, 0, 0, 1, 3, 1, 0, 0, 2, 4],
                admitted=[1, 0, 0, 3, 16, 2, 0, 0, 0, 1, 0, 0, 0],
                num_swaps=[0, 2, 0, 1, 0, 3, 0, 0, 4, 0, 1, 0, 0])
    fit, dropped = fit_overhead(pd.concat([mid, plan], ignore_index=True))
    assert dropped == 0
    for name in EngineOverhead.FIELDS:
        assert getattr(fit, name) == pytest.approx(getattr(TRUTH, name), rel=1e-8, abs=1e-15), name


def test_fit_clamps_negative_coefficients_to_zero():
    batch = np.array([1, 2, 4, 8])
    fit, _ = fit_overhead(rows(batch, overhead_s=1e-4 - 1e-6 * batch))  # falls with batch size
    assert fit.per_job_s == 0.0 and fit.per_prefill_s == 0.0 and fit.per_plan_s == 0.0
    assert fit.iteration_s == pytest.approx(np.mean(1e-4 - 1e-6 * batch))


def test_fit_drops_a_lost_time_slice():
    batch = np.array([1, 2, 4, 8, 1, 2, 4, 8, 16, 16])
    y = 1e-5 + 2e-6 * batch
    y[3] += 4e-3  # the process was descheduled for 4 ms: not engine work
    fit, dropped = fit_overhead(rows(batch, overhead_s=y))
    assert dropped == 1
    assert (fit.iteration_s, fit.per_job_s) == (pytest.approx(1e-5, rel=1e-6), pytest.approx(2e-6, rel=1e-6))


def test_config_validation():
    with pytest.raises(ValueError, match="batch_sizes must be positive and rounds >= 1"):
        OverheadConfig(batch_sizes=(0, 2))
    with pytest.raises(ValueError, match=r"prompt_tokens must be a range 0 < lo <= hi, got \(9, 8\)"):
        OverheadConfig(prompt_tokens=(9, 8))
    with pytest.raises(ValueError, match=r"unknown policy 'lifo'; choose one of fcfs, "):
        OverheadConfig(policies=("fcfs", "lifo"))
    with pytest.raises(ValueError, match=r"policies must be distinct, got \('fcfs', 'fcfs'\)"):
        OverheadConfig(policies=("fcfs", "fcfs"))
    assert OverheadConfig(policies=("fcfs", "mlfq"), batch_sizes=(1, 2), rounds=2).num_runs == 12
    assert OverheadConfig(policies=("fcfs",), batch_sizes=(1, 2), rounds=2, swap_rounds=0).num_runs == 4
    with pytest.raises(ValueError, match="swap_rounds must be >= 0, got -1"):
        OverheadConfig(swap_rounds=-1)


# the calibration profile is a small grid on purpose (speed); the engine runs past it
@pytest.mark.filterwarnings("ignore::profiles.grid_exits.ExtrapolationWarning")
def test_measured_through_the_engine_per_policy_and_recorded_in_the_profile():
    model = tiny("tiny-llama").model
    cfg = OverheadConfig(batch_sizes=(1, 3), rounds=1, output_tokens=(8, 16), policies=("mlfq", "fcfs"))
    fits, pooled, note, rows_ = measure_engine_overhead(model, cfg)
    assert set(fits) == {"mlfq", "fcfs"} and set(rows_["policy"]) == {"mlfq", "fcfs"}
    for fit in (*fits.values(), pooled):
        for name in EngineOverhead.FIELDS:
            assert math.isfinite(getattr(fit, name)) and getattr(fit, name) >= 0
        assert fit.first_pass_s == 0.0  # the calibration's, not the fit's
        assert fit.per_admission_s > 0  # timed by the engine: every request is admitted once
    for policy in ("mlfq", "fcfs"):  # both serve the same requests
        mine = rows_[rows_["policy"] == policy]
        # a roomy run of 2b requests and a tight one (swap_rounds) of 8b per batch size b
        assert mine["admitted"].sum() == (2 + 6) + (8 + 24) and mine["new_plan"].any() and not mine["new_plan"].all()
        assert mine["ends_plan"].any() and mine["finished"].sum() <= 40
    assert rows_[rows_["policy"] == "mlfq"]["num_swaps"].sum() > 0  # the tight runs swap
    assert rows_[rows_["policy"] == "fcfs"]["num_swaps"].sum() == 0 and fits["fcfs"].per_swap_s == 0.0
    assert note.startswith("engine runs of mlfq, fcfs, batch sizes [1, 3] x 1 rounds, b requests at t=0")
    quick = dict(prefill_batch_sizes=(1, 2), prompt_tokens=(8, 32), decode_batch_sizes=(1, 4),
                 context_tokens=(16, 64), swap_tokens=(16, 64), warmups=1, max_repeats=2, budget_s=2,
                 overhead=OverheadConfig(batch_sizes=(1, 2, 8), rounds=1, output_tokens=(8, 16),
                                         policies=("fcfs", "skip-join-mlfq")))  # skip-join needs the grids' estimate
    p = profile_model(model, "tiny-llama", ProfileConfig(**quick), "pytest", progress=False)
    assert p.decode_context == "max" and p.overhead is not None and p.mixed_shared_s >= 0 and p.forward_scale > 0
    assert set(p.policy_overhead) == {"fcfs", "skip-join-mlfq"}
    assert p.notes["engine_overhead"].startswith("engine runs of fcfs, skip-join-mlfq, batch sizes [1, 2] x 1 rounds")
