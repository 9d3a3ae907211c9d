"""Forward calibration on engine rows: the typical pass (median of reused plans' passes), the
clock-noise groups around it, a new plan's first-pass excess at the mean pass, and the mixed
pass's shared cost net of that excess; exact values on constructed rows."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from executor.calibration import calibrate, noise_groups
from profiles import EngineOverhead, cost_model
from tests.profiles.builders import small_profile


def test_noise_groups_are_means_of_equal_count_groups():
    assert noise_groups(np.array([3.0, 1.0, 2.0, 4.0, 6.0, 5.0]), 3) == (1.5, 3.5, 5.5)
    assert noise_groups(np.array([1.0, 2.0, 3.0, 4.0, 5.0]), 2) == (2.0, 4.5)  # first group one longer


def test_calibration_from_the_engine_rows():
    overhead = EngineOverhead(1e-3, 1e-3, 1e-3)
    profile = small_profile(decode_context="max", overhead=overhead, policy_overhead={"fcfs": overhead})
    bare = cost_model(small_profile(decode_context="max"))  # the overhead is not part of the forward
    tp, td = bare.iteration_s([32, 32], []), bare.iteration_s([], [100, 100, 100])
    # 20 passes of reused plans: 11 at 1.1 x the grid (typical), 9 at 1.65 x (noise 1.5);
    # one 10 x slower (a lost time slice: left out)
    ratios = [1.1] * 11 + [1.1 * 1.5] * 9 + [10.0]
    mean_scale = 1.1 * (11 * 1.0 + 9 * 1.5) / 20
    decode = {"batch_size": 3, "num_prefills": 0, "prefill_tokens": 0, "decode_context_tokens": 300,
              "decode_max_context_tokens": 100}
    mixed = {"batch_size": 5, "num_prefills": 2, "prefill_tokens": 64, "decode_context_tokens": 250,
             "decode_max_context_tokens": 100, "new_plan": True}
    rows = pd.DataFrame(
        [{**decode, "new_plan": False, "forward_s": r * td} for r in ratios]
        # first passes of new plans: 2 ms and 4 ms over the mean pass
        + [{**decode, "new_plan": True, "forward_s": mean_scale * td + x} for x in (0.002, 0.004)]
        # mixed passes (new plans: they pay the 3 ms first-pass excess too) sharing 4 and 6 ms
        + [{**mixed, "forward_s": 1.1 * (tp + td) - s + 0.003} for s in (0.004, 0.006)]
        + [{**mixed, "batch_size": 2, "decode_context_tokens": 0, "decode_max_context_tokens": 0,
            "forward_s": 1.7 * tp}])  # a cold prefill-only pass: left out
    got = calibrate(profile, rows)
    assert got.forward_scale == pytest.approx(1.1, rel=1e-12)
    assert got.forward_noise == pytest.approx((1.0,) * 11 + (1.5,) * 9, rel=1e-12)
    assert got.overhead.first_pass_s == pytest.approx(0.003, rel=1e-9)
    assert got.policy_overhead["fcfs"].first_pass_s == got.overhead.first_pass_s
    assert got.mixed_shared_s == pytest.approx(0.005, rel=1e-9)
    assert got.overhead.iteration_s == 1e-3 and got.prefill == profile.prefill
    # no mixed row: the shared cost stays as it was; slower rows cannot make it negative
    assert calibrate(profile, rows.iloc[:23]).mixed_shared_s is None
    slow = rows.iloc[:24].copy()
    slow.loc[23, "forward_s"] = 10.0  # a mixed pass far slower than its parts
    assert calibrate(profile, slow).mixed_shared_s == 0.0
    # fewer reused passes than noise groups: no noise, the median alone
    few = calibrate(profile, rows.iloc[[0, 1, 2, 12, 13]])
    assert few.forward_noise == () and few.forward_scale == pytest.approx(1.1, rel=1e-12)


def test_scale_curve_by_batch_size():
    """Reused decode passes 1.0x the grid at 1 job, 1.1x at 2, 1.2x at 3-4 and 1.5x at 8; the
    bucket (4, 8] has too few rows for a point (MIN_CURVE_ROWS = 30), so 8 jobs clamp to 1.2."""
    profile = small_profile(decode_context="max")
    bare = cost_model(profile)
    rows = []
    for batch, ratio, count in ((1, 1.0, 40), (2, 1.1, 40), (3, 1.2, 30), (4, 1.2, 10), (8, 1.5, 29)):
        td = bare.iteration_s([], [100] * batch)
        rows += [{"batch_size": batch, "num_prefills": 0, "prefill_tokens": 0, "decode_context_tokens": 100 * batch,
                  "decode_max_context_tokens": 100, "new_plan": False, "forward_s": ratio * td}] * count
    got = calibrate(profile, pd.DataFrame(rows))
    assert got.forward_scale_by_batch == ((1.0, 1.0), (2.0, 1.1), (3.0, 1.2))  # (median batch, median ratio)
    assert got.forward_scale == 1.1  # the median over every row
    # the noise is relative to each batch's own scale: only the 8-job passes lie above it
    assert len(got.forward_noise) == 20 and got.forward_noise[0] == 1.0
    assert got.forward_noise[-1] == pytest.approx(1.5 / 1.2, rel=1e-12)
    scaled = cost_model(got)
    assert scaled.forward_scale_at(2) == 1.1 and scaled.forward_scale_at(8) == 1.2
    # one bucket only: no curve
    assert calibrate(profile, pd.DataFrame(rows[:40])).forward_scale_by_batch == ()
