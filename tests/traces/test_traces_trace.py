"""Trace: jobs, filters with their report, time scaling, head and exact statistics."""

from __future__ import annotations

import math

import numpy as np
import pytest

from policy import Job, KVLocation
from traces import FilterReport, Filters, SpecError, Trace


def small() -> Trace:
    # prompts/outputs chosen so that each filter reason removes a known set of rows
    return Trace(
        np.array([0.0, 1.0, 3.0, 3.0, 7.0]),
        np.array([2, 100, 50, 10, 60]),
        np.array([5, 5, 80, 3, 10]),
        np.array([10, 11, 12, 13, 14]),
        source="small",
    )


def test_arrays_have_schema_dtypes_and_are_read_only():
    trace = small()
    assert trace.arrival_s.dtype == np.float64 and trace.request_id.dtype == np.int64
    assert trace.prompt_tokens.dtype == trace.output_tokens.dtype == np.int64
    with pytest.raises(ValueError):
        trace.prompt_tokens[0] = 9
    frame = trace.frame
    frame.loc[0, "prompt_tokens"] = 999  # a copy: the trace is unchanged
    assert trace.prompt_tokens[0] == 2 and len(trace) == 5


def test_request_ids_default_to_row_numbers():
    trace = Trace(np.array([0.0, 0.5]), np.array([1, 2]), np.array([3, 4]))
    assert trace.request_id.tolist() == [0, 1]
    assert repr(trace) == "Trace(2 requests from '<memory>')"


def test_jobs_are_fresh_policy_jobs():
    jobs = list(small().jobs())
    assert [(j.id, j.arrival_s, j.prompt_tokens, j.output_tokens) for j in jobs] == [
        (10, 0.0, 2, 5),
        (11, 1.0, 100, 5),
        (12, 3.0, 50, 80),
        (13, 3.0, 10, 3),
        (14, 7.0, 60, 10),
    ]
    assert all(type(j) is Job and j.generated_tokens == 0 and j.kv is KVLocation.NONE for j in jobs)
    assert type(jobs[0].id) is int and type(jobs[0].arrival_s) is float
    assert next(small().jobs()) is not jobs[0]


def test_filter_counts_each_removed_row_under_its_first_reason():
    kept, report = small().filter(max_prompt_tokens=64, max_total_tokens=100, min_tokens=4)
    # row 13 (output 3) -> min_tokens; row 11 (prompt 100) -> max_prompt; row 12 (50+80) -> max_total;
    # row 10 (prompt 2) -> min_tokens.
    assert kept.request_id.tolist() == [14]
    assert report == FilterReport(
        Filters(64, 100, 4),
        5,
        num_removed_min_tokens=2,
        num_removed_max_prompt_tokens=1,
        num_removed_max_total_tokens=1,
    )
    assert (report.num_kept, report.num_removed) == (1, 4)
    assert report.removed == {"min_tokens": 2, "max_prompt_tokens": 1, "max_total_tokens": 1}
    assert str(report) == (
        "kept 1 of 5 requests; removed 4: 2 with prompt or output < 4 tokens, "
        "1 with prompt > 64 tokens, 1 with prompt + output > 100 tokens"
    )


def test_filter_without_limits_keeps_everything():
    kept, report = small().filter()
    assert kept == small() and str(report) == "kept 5 of 5 requests (no filters)"


def test_filter_limits_are_validated():
    with pytest.raises(
        SpecError, match="filter 'max_prompt_tokens' must be a positive integer or None, got 0"
    ):
        small().filter(max_prompt_tokens=0)


def test_reports_add_up():
    a = FilterReport(Filters(min_tokens=4), 10, 3)
    b = FilterReport(Filters(min_tokens=4), 5, 1)
    assert a + b == FilterReport(Filters(min_tokens=4), 15, 4)


def test_head_scale_time_and_rescale_rate():
    trace = small()
    assert trace.head(2).request_id.tolist() == [10, 11]
    assert len(trace.head(99)) == 5
    assert trace.scale_time(2.0).arrival_s.tolist() == [0.0, 2.0, 6.0, 6.0, 14.0]
    # rate = (5 - 1) / 7 s; to 2 req/s the duration becomes 2 s.
    rescaled = trace.rescale_rate(2.0)
    assert rescaled.stats()["rate_rps"] == pytest.approx(2.0, rel=1e-12)
    assert rescaled.arrival_s[-1] == pytest.approx(2.0, rel=1e-12)
    assert rescaled.prompt_tokens.tolist() == trace.prompt_tokens.tolist()
    with pytest.raises(ValueError, match="factor must be > 0"):
        trace.scale_time(0)
    with pytest.raises(ValueError, match="no defined rate"):
        trace.head(1).rescale_rate(1.0)


def test_stats_are_exact_on_a_small_trace():
    stats = Trace(np.array([0.0, 1.0, 3.0]), np.array([10, 20, 30]), np.array([1, 2, 9])).stats()
    assert stats["num_requests"] == 3
    assert stats["duration_s"] == 3.0
    assert stats["rate_rps"] == pytest.approx(2 / 3)
    assert stats["interarrival_mean_s"] == 1.5
    assert stats["interarrival_cv"] == pytest.approx(0.5 / 1.5)  # gaps 1 and 2
    assert stats["prompt_tokens"] == {
        "mean": 20.0,
        "min": 10.0,
        "p50": 20.0,
        "p90": 28.0,
        "p95": 29.0,
        "p99": pytest.approx(29.8),
        "max": 30.0,
    }
    assert stats["total_tokens"]["max"] == 39.0 and stats["output_tokens"]["mean"] == 4.0


def test_stats_of_an_empty_trace_are_nan():
    empty, _ = small().filter(max_prompt_tokens=1)
    stats = empty.stats()
    assert stats["num_requests"] == 0
    assert math.isnan(stats["rate_rps"]) and math.isnan(stats["prompt_tokens"]["p50"])
