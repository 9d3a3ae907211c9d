"""SLO attainment, goodput and throughput at SLO, against hand-computed values."""

import math

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from analysis.slo import meets_slo, slo_attainment, throughput_at_slo
from tests.analysis.fixtures import FCFS_ROWS, SJ_ROWS, requests_frame, sweep_summary


def requests_frame_both():
    return requests_frame("fcfs", "recompute", FCFS_ROWS), requests_frame("skip-join-mlfq", "proactive", SJ_ROWS)


def test_meets_slo_per_request():
    fcfs = requests_frame_both()[0]
    # r0 TTFT 1 TPOT 1 (limits are inclusive), r1 1/1, r2 TPOT 2, r3 rejected, r4 unfinished
    assert meets_slo(fcfs, 1.0, 1.0).tolist() == [True, True, False, False, False]
    sj = requests_frame_both()[1]
    # r2 TPOT 3.5/3 > 1; r3 has one output token, so no TPOT, and meets the per-token limit
    assert meets_slo(sj, 1.0, 1.0).tolist() == [True, True, False, True, False]


def test_attainment_counts_rejected_and_unfinished_as_misses():
    out = slo_attainment(pd.concat(requests_frame_both(), ignore_index=True), 1.0, 1.0)
    fcfs, sj = out.iloc[0], out.iloc[1]
    assert (fcfs["num_total"], fcfs["num_meeting_slo"]) == (5, 2)
    assert fcfs["slo_attainment"] == pytest.approx(0.4)
    assert fcfs["goodput_rps"] == pytest.approx(2 / 10)  # span: first arrival 0 .. last finish 10
    assert (sj["num_total"], sj["num_meeting_slo"]) == (5, 3)
    assert sj["slo_attainment"] == pytest.approx(0.6)
    assert sj["goodput_rps"] == pytest.approx(3 / 6)


def test_attainment_rejects_nonpositive_limits():
    with pytest.raises(ValueError, match="ttft_slo_s must be > 0"):
        meets_slo(requests_frame_both()[0], 0.0, 1.0)


def panel(cv):
    s = sweep_summary()
    return s[s["cv"] == cv]


def test_throughput_at_slo_interpolates_linearly():
    out = throughput_at_slo(panel(1.0), 0.4, "p95").set_index("policy")
    # fcfs: 0.3 at 1 req/s, 0.5 at 2 -> 1 + (0.4 - 0.3) / (0.5 - 0.3) * (2 - 1) = 1.5
    assert out.loc["fcfs", "throughput_at_slo_rps"] == pytest.approx(1.5)
    # skip-join: 0.2 at 2 req/s, 0.6 at 4 -> 2 + (0.4 - 0.2) / 0.4 * 2 = 3.0
    assert out.loc["skip-join-mlfq", "throughput_at_slo_rps"] == pytest.approx(3.0)
    assert set(out["slo_bracket"]) == {"interpolated"}


def test_throughput_at_slo_brackets():
    out = throughput_at_slo(panel(2.0), 0.4, "p95").set_index("policy")
    assert math.isnan(out.loc["fcfs", "throughput_at_slo_rps"])  # 0.5 already at 1 req/s
    assert out.loc["fcfs", "slo_bracket"] == "below_range"
    assert out.loc["skip-join-mlfq", "throughput_at_slo_rps"] == 4.0  # 0.3 at the top rate
    assert out.loc["skip-join-mlfq", "slo_bracket"] == "at_least"


def test_throughput_at_slo_mean_stat_and_panels():
    # norm_latency_mean_s is half the p95 value: the crossing of 0.2 equals p95's crossing of 0.4
    out = throughput_at_slo(sweep_summary(), 0.2, "mean")
    assert "cv" in out  # cv varies too: one result per (policy, cv)
    row = out[(out["policy"] == "skip-join-mlfq") & (out["cv"] == 1.0)].iloc[0]
    assert row["throughput_at_slo_rps"] == pytest.approx(3.0)


def test_throughput_at_slo_stops_at_first_crossing():
    s = panel(1.0).copy()
    sj = s["policy"] == "skip-join-mlfq"
    s.loc[sj & (s["rate"] == 4.0), "norm_latency_p95_s"] = 0.1  # back under after the crossing?
    s.loc[sj & (s["rate"] == 2.0), "norm_latency_p95_s"] += 0.5  # 0.7 at 2 req/s: crossed
    out = throughput_at_slo(s, 0.4, "p95").set_index("policy")
    # 0.1 at 1 req/s, 0.7 at 2 -> 1 + 0.3 / 0.6 = 1.5, not the 4 req/s point
    assert out.loc["skip-join-mlfq", "throughput_at_slo_rps"] == pytest.approx(1.5)


def test_throughput_at_slo_bad_arguments():
    with pytest.raises(ValueError, match="stat must be one of"):
        throughput_at_slo(panel(1.0), 0.4, "p50")
    with pytest.raises(ValueError, match="no column rate"):
        throughput_at_slo(panel(1.0).drop(columns="rate"), 0.4)


@settings(max_examples=60, deadline=None)
@given(values=st.lists(st.floats(0.01, 10.0), min_size=2, max_size=8), slo_s=st.floats(0.01, 10.0))
def test_throughput_at_slo_lies_on_the_line(values, slo_s):
    rates = [float(r) for r in range(1, len(values) + 1)]
    summary = pd.DataFrame({"policy": "mlfq", "swap": "proactive", "rate": rates, "norm_latency_p95_s": values})
    row = throughput_at_slo(summary, slo_s).iloc[0]
    rate = row["throughput_at_slo_rps"]
    if row["slo_bracket"] == "below_range":
        assert values[0] > slo_s and math.isnan(rate)
    elif row["slo_bracket"] == "at_least":
        assert max(values) <= slo_s and rate == rates[-1]
    else:  # every rate up to the bracket is under; the interpolated latency there equals the SLO
        k = int(np.floor(rate)) - 1
        assert all(v <= slo_s for v in values[: k + 1])
        k = min(k, len(values) - 2)
        lo, hi = values[k], values[k + 1]
        assert lo + (hi - lo) * (rate - rates[k]) == pytest.approx(slo_s, rel=1e-6, abs=1e-9)
