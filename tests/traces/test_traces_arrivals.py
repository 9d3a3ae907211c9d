"""Arrival processes: their statistics match their parameters; specs parse and fail clearly."""

from __future__ import annotations

import numpy as np
import pytest

import traces
from traces import ConstantArrivals, GammaArrivals, PoissonArrivals, SpecError, parse_arrivals

N = 200_000


def gaps(spec, seed=0, n=N):
    arrival_s = parse_arrivals(spec).generate(n, np.random.default_rng(seed))
    assert arrival_s.shape == (n,) and arrival_s.dtype == np.float64
    assert arrival_s[0] == 0.0 and np.all(np.diff(arrival_s) >= 0)
    return np.diff(arrival_s)


def test_poisson_hits_rate_and_cv_one():
    g = gaps("poisson:rate=4")
    assert 1 / g.mean() == pytest.approx(4.0, rel=0.01)
    assert g.std() / g.mean() == pytest.approx(1.0, abs=0.01)


@pytest.mark.parametrize("cv", [0.5, 2.0, 3.0])
def test_gamma_hits_rate_and_cv(cv):
    g = gaps(f"gamma:rate=2.5,cv={cv}", seed=3)
    assert 1 / g.mean() == pytest.approx(2.5, rel=0.02)
    assert g.std() / g.mean() == pytest.approx(cv, rel=0.03)


def test_constant_is_exact():
    arrival_s = ConstantArrivals(4.0).generate(5, np.random.default_rng(0))
    np.testing.assert_array_equal(arrival_s, [0.0, 0.25, 0.5, 0.75, 1.0])


def test_same_seed_same_arrivals_and_different_seed_differs():
    a = PoissonArrivals(3.0).generate(100, np.random.default_rng(7))
    b = PoissonArrivals(3.0).generate(100, np.random.default_rng(7))
    c = PoissonArrivals(3.0).generate(100, np.random.default_rng(8))
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)


def test_from_rate_maps_cv_one_to_poisson():
    assert traces.from_rate(4.0) == PoissonArrivals(4.0)
    assert traces.from_rate(4.0, 3.0) == GammaArrivals(4.0, 3.0)


@pytest.mark.parametrize(
    "spec", ["poisson:rate=4", "gamma:rate=2.5,cv=3", "constant:rate=0.5", "replay:x.csv"]
)
def test_spec_string_round_trips(spec):
    assert str(parse_arrivals(spec)) == spec
    assert parse_arrivals(str(parse_arrivals(spec))) == parse_arrivals(spec)


@pytest.mark.parametrize(
    "spec, message",
    [
        ("poisson:rate=abc", "key 'rate' must be a number, got 'abc'"),
        ("poisson:rate=-1", "key 'rate' must be > 0"),
        ("gamma:rate=4", "missing key 'cv'"),
        ("gamma:rate=4,cv=0", "key 'cv' must be > 0"),
        ("poisson:rate=4,cv=2", "unknown key 'cv' (expected rate)"),
        ("poisson:rate=4,rate=5", "key 'rate' given twice"),
        ("weibull:rate=4", "unknown kind 'weibull' (choose poisson, gamma, constant, replay)"),
        ("", "arrivals spec is empty"),
    ],
)
def test_bad_specs_name_the_key(spec, message):
    with pytest.raises(SpecError) as err:
        parse_arrivals(spec)
    assert message in str(err.value)
    assert "\n" not in str(err.value)


def test_replay_takes_recorded_times(tmp_path):
    path = tmp_path / "t.csv"
    traces.save(
        traces.Trace(np.array([1.0, 2.5, 4.0]), np.array([1, 2, 3]), np.array([1, 1, 1])), path
    )
    np.testing.assert_array_equal(parse_arrivals(f"replay:{path}").generate(2, None), [1.0, 2.5])
    with pytest.raises(SpecError, match="has 3 requests, fewer than the 4 asked for"):
        parse_arrivals(f"replay:{path}").generate(4, None)
