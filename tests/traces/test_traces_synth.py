"""synthesize / synthesize_filtered / resolve: reproducible, exact counts, spec strings."""

from __future__ import annotations

import numpy as np
import pytest

import traces
from traces import Filters, SpecError


def test_synthesize_is_reproducible_and_numbers_requests():
    a = traces.synthesize(500, "gamma:rate=4,cv=3", "sharegpt-like", seed=1)
    b = traces.synthesize(500, traces.GammaArrivals(4.0, 3.0), traces.SHAREGPT_LIKE, seed=1)
    assert a == b and len(a) == 500
    assert a.request_id.tolist() == list(range(500))
    # the deprecated name parses to the renamed distribution, so the source says the new name
    assert a.source == (
        "synth:num_requests=500,arrivals=gamma:rate=4,cv=3,lengths=sharegpt-multiturn-like,seed=1"
    )
    assert a != traces.synthesize(500, "gamma:rate=4,cv=3", "sharegpt-like", seed=2)


def test_arrival_and_length_streams_are_independent():
    a = traces.synthesize(100, "poisson:rate=2", "fixed:prompt=5,output=5", seed=3)
    b = traces.synthesize(100, "poisson:rate=2", "alpaca-like", seed=3)
    np.testing.assert_array_equal(a.arrival_s, b.arrival_s)


def test_large_synthetic_trace_matches_its_parameters():
    stats = traces.synthesize(
        200_000, "gamma:rate=4,cv=3", "uniform:prompt=8-64,output=4-64", seed=5
    ).stats()
    assert stats["rate_rps"] == pytest.approx(4.0, rel=0.03)
    assert stats["interarrival_cv"] == pytest.approx(3.0, rel=0.05)
    assert stats["prompt_tokens"]["mean"] == pytest.approx(36.0, rel=0.01)


def test_filtered_synthesis_gives_exactly_n_and_reports_every_draw():
    filters = Filters(max_prompt_tokens=1024, max_total_tokens=2048, min_tokens=4)
    trace, report = traces.synthesize_filtered(
        1000, "poisson:rate=1.5", "sharegpt-like", 1, filters
    )
    assert len(trace) == report.num_kept == 1000
    assert report.num_requests == report.num_kept + report.num_removed
    assert report.num_removed_max_prompt_tokens > 1000  # ~64% of ShareGPT prompts exceed 1024
    assert trace.prompt_tokens.max() <= 1024
    assert (trace.prompt_tokens + trace.output_tokens).max() <= 2048
    assert min(trace.prompt_tokens.min(), trace.output_tokens.min()) >= 4
    assert trace.source.endswith(
        ",seed=1,max_prompt_tokens=1024,max_total_tokens=2048,min_tokens=4"
    )


def test_impossible_filters_fail_clearly():
    with pytest.raises(
        SpecError,
        match=r"filters min_tokens=10 keep only 0 of \d+ draws from 'fixed:prompt=5,output=5'",
    ):
        traces.synthesize_filtered(
            3, "poisson:rate=1", "fixed:prompt=5,output=5", 0, Filters(min_tokens=10)
        )


@pytest.mark.parametrize(
    "bad, message",
    [
        ({"num_requests": 0}, "num_requests must be a positive integer, got 0"),
        ({"seed": -1}, "seed must be a non-negative integer, got -1"),
    ],
)
def test_bad_arguments(bad, message):
    kwargs = {
        "num_requests": 5,
        "arrivals": "poisson:rate=1",
        "lengths": "alpaca-like",
        "seed": 0,
    } | bad
    with pytest.raises(SpecError, match=message):
        traces.synthesize(**kwargs)


def test_resolve_reproduces_a_synthetic_trace_from_its_source():
    trace = traces.resolve("synth:num_requests=50,rate=4,cv=3,lengths=sharegpt-like,seed=1")
    assert trace == traces.synthesize(50, "gamma:rate=4,cv=3", "sharegpt-like", 1)
    assert traces.resolve(trace.source) == trace


def test_resolve_nested_specs_keep_their_keys():
    trace = traces.resolve(
        "synth:num_requests=4,arrivals=gamma:rate=4,cv=3,lengths=fixed:prompt=8,output=4,seed=2"
    )
    assert trace == traces.synthesize(4, "gamma:rate=4,cv=3", "fixed:prompt=8,output=4", 2)


def test_resolve_seed_argument_applies_without_seed_key():
    spec = "synth:num_requests=20,rate=2,lengths=alpaca-like"
    assert traces.resolve(spec, seed=7) == traces.synthesize(20, "poisson:rate=2", "alpaca-like", 7)


def test_resolve_filters_in_a_spec():
    trace = traces.resolve(
        "synth:num_requests=30,rate=2,lengths=sharegpt-like,max_prompt_tokens=512"
    )
    assert len(trace) == 30 and trace.prompt_tokens.max() <= 512


@pytest.mark.parametrize(
    "spec, message",
    [
        ("synth:rate=4,lengths=alpaca-like", "missing key 'num_requests'"),
        ("synth:num_requests=5,lengths=alpaca-like", "missing key 'rate' (or 'arrivals')"),
        ("synth:num_requests=5,rate=4", "missing key 'lengths'"),
        ("synth:num_requests=5,rate=4,lengths=alpaca-like,speed=3", "unknown key 'speed'"),
        (
            "synth:num_requests=x,rate=4,lengths=alpaca-like",
            "key 'num_requests' must be an integer, got 'x'",
        ),
        (
            "synth:num_requests=5,rate=4,arrivals=poisson:rate=2,lengths=alpaca-like",
            "key 'arrivals' cannot be combined",
        ),
        (
            "synth:num_requests=5,rate=4,lengths=fixed:prompt=0,output=1",
            "key 'prompt' must be a positive integer, got 0",
        ),
    ],
)
def test_resolve_bad_synth_specs_name_the_key(spec, message):
    with pytest.raises(SpecError) as err:
        traces.resolve(spec)
    assert message in str(err.value)


def test_resolve_samples_and_paths(tmp_path):
    assert traces.resolve("sample:bursty-small") == traces.load(traces.sample_path("bursty-small"))
    assert traces.resolve("bursty-small") == traces.resolve("sample:bursty-small")
    path = tmp_path / "t.parquet"
    traces.save(traces.resolve("sample:bursty-small"), path)
    assert (
        traces.resolve(str(path)) == traces.resolve(path) == traces.resolve("sample:bursty-small")
    )
    with pytest.raises(traces.TraceError, match="sample:nope: no such bundled sample"):
        traces.resolve("sample:nope")
