"""Summary metrics against values worked out by hand from tests/analysis/conftest.py.

Percentiles interpolate linearly: p of sorted x[0..n-1] sits at position (n-1)*p.
"""

import math

import pandas as pd
import pytest

from analysis.load import load_run
from analysis.metrics import summarize
from tests.analysis.fixtures import FCFS_ROWS, SJ_ROWS, requests_frame


def test_derived_columns_per_request():
    df = requests_frame("skip-join-mlfq", "proactive", SJ_ROWS)
    assert df["jct_s"].tolist()[:4] == [2.0, 1.5, 4.0, 0.5]
    assert df["ttft_s"].tolist() == [0.5, 0.5, 0.5, 0.5, 0.5]
    assert df["tpot_s"].iloc[0] == pytest.approx(1.5 / 4)  # (2.0 - 0.5) / (5 - 1)
    assert df["tpot_s"].iloc[2] == pytest.approx(3.5 / 3)
    assert math.isnan(df["tpot_s"].iloc[3])  # one output token: no TPOT
    assert df["norm_latency_s"].tolist()[:4] == pytest.approx([0.4, 0.5, 1.0, 0.5])
    assert math.isnan(df["jct_s"].iloc[4])  # unfinished


def test_summary_fcfs_by_hand():
    row = summarize(requests_frame("fcfs", "recompute", FCFS_ROWS)).iloc[0]
    # finished JCTs 5, 3, 8 -> sorted 3, 5, 8
    assert (row["num_finished"], row["num_rejected"], row["num_unfinished"]) == (3, 1, 1)
    assert row["jct_mean_s"] == pytest.approx(16 / 3)
    assert row["jct_p50_s"] == pytest.approx(5.0)
    assert row["jct_p90_s"] == pytest.approx(7.4)  # position 1.8: 5 + 0.8 * 3
    assert row["jct_p95_s"] == pytest.approx(7.7)
    assert row["jct_p99_s"] == pytest.approx(7.94)
    assert row["ttft_mean_s"] == pytest.approx(4 / 3)
    assert row["ttft_p99_s"] == pytest.approx(1.98)  # 1, 1, 2 at position 1.98
    assert row["tpot_mean_s"] == pytest.approx(4 / 3)  # 1, 1, 2
    assert row["norm_latency_mean_s"] == pytest.approx(4 / 3)  # 5/5, 3/3, 8/4
    assert row["norm_latency_p95_s"] == pytest.approx(1.9)
    assert row["throughput_rps"] == pytest.approx(3 / 10)  # 3 finished over 0 s .. 10 s


def test_summary_skip_join_by_hand():
    row = summarize(requests_frame("skip-join-mlfq", "proactive", SJ_ROWS)).iloc[0]
    # finished JCTs 2, 1.5, 4, 0.5 -> sorted 0.5, 1.5, 2, 4
    assert (row["num_finished"], row["num_rejected"], row["num_unfinished"]) == (4, 0, 1)
    assert row["jct_mean_s"] == pytest.approx(2.0)
    assert row["jct_p50_s"] == pytest.approx(1.75)
    assert row["jct_p90_s"] == pytest.approx(3.4)
    assert row["jct_p99_s"] == pytest.approx(3.94)
    assert row["tpot_mean_s"] == pytest.approx((0.375 + 0.5 + 3.5 / 3) / 3)  # one-token r3 has none
    assert row["norm_latency_mean_s"] == pytest.approx(0.6)
    assert row["norm_latency_p95_s"] == pytest.approx(0.925)  # 0.4, 0.5, 0.5, 1.0 at 2.85
    assert row["throughput_rps"] == pytest.approx(4 / 6)
    assert (row["num_preemptions"], row["num_swaps"], row["num_recomputes"]) == (4, 5, 1)


def test_missing_swap_keeps_its_own_group():
    df = requests_frame("fcfs", "recompute", FCFS_ROWS)
    df["swap"] = [None, None, "x", "x", "x"]
    summary = summarize(df)
    assert len(summary) == 2
    assert summary["num_finished"].sum() + summary["num_rejected"].sum() + summary["num_unfinished"].sum() == 5


def test_run_dir_summary_matches(run_dir):
    run = load_run(run_dir)
    assert run.summary["policy"].tolist() == ["fcfs", "skip-join-mlfq"]
    assert run.summary["jct_mean_s"].tolist() == pytest.approx([16 / 3, 2.0])
    assert isinstance(run.summary, pd.DataFrame) and run.config["replicas"] == 2
