"""Binned timeline and Gantt segments against hand-computed values."""

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from analysis.gantt import gantt_segments
from analysis.timeline import timeline
from tests.analysis.fixtures import (
    FCFS_ROWS,
    FCFS_SPANS,
    SJ_ROWS,
    SJ_SPANS,
    SPAN_COLUMNS,
    iterations_frame,
    requests_frame,
)

COLUMNS = ("replica", "start_s", "end_s", "num_iterations", "num_queued", "device_kv_blocks_used",
           "swap_out_tokens", "swap_in_tokens", "queue_level_0", "queue_level_1", "queue_level_2")
ROWS = [
    (0, 0.0, 1.0, 1, 2, 10, 0, 0, 2, 0, 0),
    (0, 1.0, 2.0, 1, 1, 20, 30, 0, 0, 1, 0),
    (0, 3.0, 4.0, 1, 4, 40, 0, 10, 1, 3, 0),  # replica 0 idles 2 s .. 3 s: the row before holds
    (1, 0.5, 1.5, 1, 1, 5, 0, 0, 1, 0, 0),
]


def hand_timeline():
    return timeline(iterations_frame("mlfq", "proactive", ROWS, COLUMNS), np.array([0.0, 0.2, 1.1, 3.5]), num_bins=4)


def test_gauges_are_time_weighted_means_summed_over_replicas():
    s = hand_timeline().series
    assert s["time_s"].tolist() == [0.0, 1.0, 2.0, 3.0]
    # bin [0,1): replica 0 holds 2 all second, replica 1 holds 1 from 0.5 s: 2 + 0.5
    assert s["num_queued"].tolist() == pytest.approx([2.5, 1.5, 1.0, 4.0])
    assert s["device_kv_blocks_used"].tolist() == pytest.approx([12.5, 22.5, 20.0, 40.0])
    assert s["queue_level_0"].tolist() == pytest.approx([2.5, 0.5, 0.0, 1.0])
    assert s["queue_level_1"].tolist() == pytest.approx([0.0, 1.0, 1.0, 3.0])


def test_traffic_and_arrivals_are_rates_per_bin():
    s = hand_timeline().series
    assert s["arrivals_rps"].tolist() == [2.0, 1.0, 0.0, 1.0]
    assert s["swap_out_tokens_per_s"].tolist() == [0.0, 30.0, 0.0, 0.0]
    assert s["swap_in_tokens_per_s"].tolist() == [0.0, 0.0, 0.0, 10.0]


def test_unused_levels_and_absent_columns_are_left_out():
    tl = hand_timeline()
    assert tl.levels == ["queue_level_0", "queue_level_1"]
    assert tl.unused_levels == [2]
    assert "queue_level_2" not in tl.series and "host_kv_blocks_used" not in tl.series


def test_finer_bins_integrate_to_the_same_total():
    its = iterations_frame("mlfq", "proactive", ROWS, COLUMNS)
    coarse = timeline(its, np.array([0.0]), num_bins=4).series
    fine = timeline(its, np.array([0.0]), num_bins=400).series
    assert (fine["num_queued"] * fine["bin_s"]).sum() == pytest.approx((coarse["num_queued"] * coarse["bin_s"]).sum())
    assert (fine["swap_out_tokens_per_s"] * fine["bin_s"]).sum() == pytest.approx(30.0)


def test_timeline_rejects_empty_and_bad_bins():
    its = iterations_frame("mlfq", "proactive", ROWS, COLUMNS)
    with pytest.raises(ValueError, match="num_bins must be >= 1"):
        timeline(its, np.array([0.0]), num_bins=0)
    with pytest.raises(ValueError, match="no iterations"):
        timeline(its.iloc[:0], np.array([0.0]))


def segments(policy, swap, rows, spans):
    reqs = requests_frame(policy, swap, rows)
    sp = iterations_frame(policy, swap, spans, SPAN_COLUMNS)
    out = gantt_segments(reqs, sp)
    return {(r, k): list(zip(g["start_s"], g["end_s"], strict=True)) for (r, k), g in out.groupby(["request_id", "kind"])}


def test_gantt_segments_skip_join():
    seg = segments("skip-join-mlfq", "proactive", SJ_ROWS, SJ_SPANS)
    assert seg[(0, "running")] == [(0.0, 1.0), (1.5, 2.0)]  # touching spans merge
    assert seg[(0, "preempted")] == [(1.0, 1.5)]
    assert seg[(0, "swap_out")] == [(1.0, 1.2)] and seg[(0, "swap_in")] == [(1.4, 1.5)]
    assert seg[(1, "waiting")] == [(1.0, 1.2)] and seg[(1, "running")] == [(1.2, 2.5)]
    assert seg[(2, "preempted")] == [(3.0, 4.0)]
    assert seg[(4, "preempted")] == [(4.5, 6.0)]  # unfinished: until the run's end (last span, 6 s)
    assert (0, "waiting") not in seg and (3, "preempted") not in seg


def test_gantt_segments_fcfs_rejected_and_unfinished():
    seg = segments("fcfs", "recompute", FCFS_ROWS, FCFS_SPANS)
    assert seg[(0, "waiting")] == [(0.0, 0.5)]
    assert seg[(2, "waiting")] == [(2.0, 3.0)]
    assert not any(r == 3 for r, _ in seg)  # rejected: no bars
    assert seg[(4, "waiting")] == [(4.0, 7.0)] and seg[(4, "preempted")] == [(8.0, 10.0)]


def test_gantt_segments_bad_spans():
    reqs = requests_frame("fcfs", "recompute", FCFS_ROWS)
    bad = iterations_frame("fcfs", "recompute", [(0, 0, "sleeping", 0.0, 1.0)], SPAN_COLUMNS)
    with pytest.raises(ValueError, match="unknown span kind.* sleeping"):
        gantt_segments(reqs, bad)
    stray = iterations_frame("fcfs", "recompute", [(0, 99, "running", 0.0, 1.0)], SPAN_COLUMNS)
    with pytest.raises(ValueError, match=r"request\(s\) \[99\]"):
        gantt_segments(reqs, stray)
    assert isinstance(reqs, pd.DataFrame)


@settings(max_examples=60, deadline=None)
@given(
    durations=st.lists(st.floats(0.0, 5.0), min_size=1, max_size=12),
    values=st.lists(st.integers(0, 9), min_size=12, max_size=12),
    num_bins=st.integers(1, 37),
)
def test_binning_conserves_the_gauge_integral(durations, values, num_bins):
    # one replica, back-to-back rows: each value holds for its row's duration
    starts = np.concatenate([[0.0], np.cumsum(durations)[:-1]])
    rows = [(0, s, s + d, 1, v) for s, d, v in zip(starts, durations, values, strict=False)]
    its = iterations_frame("mlfq", "proactive", rows, ("replica", "start_s", "end_s", "num_iterations", "num_queued"))
    s = timeline(its, np.array([0.0]), num_bins=num_bins).series
    expected = sum(d * v for d, v in zip(durations, values, strict=False))
    assert (s["num_queued"] * s["bin_s"]).sum() == pytest.approx(expected, abs=1e-6)
