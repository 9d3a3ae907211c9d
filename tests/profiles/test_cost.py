"""The table cost model: exact at grid points, monotonic between, extrapolation, mixed batches,
and the bit-identity of `decode_iterations_s` that the simulator's event skipping relies on."""

import warnings

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import profiles
from policy import CostModel
from profiles.grid_exits import ExtrapolationWarning
from profiles.interp import Table2D
from profiles.schema import LatencyCurve
from tests.profiles.builders import DECODE, PREFILL, quiet, small_profile

BUNDLED = profiles.load_profile(profiles.DEFAULT_PROFILE)


def test_satisfies_the_policy_protocol():
    cm = profiles.cost_model(BUNDLED)
    assert isinstance(cm, CostModel)
    assert (cm.tp, cm.pp, cm.kv_bytes_per_token) == (1, 1, 819_200)
    assert (cm.device_kv_tokens, cm.host_kv_tokens) == (BUNDLED.device_kv_tokens, BUNDLED.host_kv_tokens)


@pytest.mark.parametrize("profile", [small_profile(), BUNDLED], ids=["small", "bundled"])
def test_exact_at_every_grid_point(profile):
    cm = profiles.cost_model(profile)
    for grid, is_prefill in ((profile.prefill, True), (profile.decode, False)):
        for b, row in zip(grid.batch_sizes, grid.latency_s, strict=True):
            for x, value in zip(grid.tokens, row, strict=True):
                batch = [x] * b
                got = cm.iteration_s(batch, []) if is_prefill else cm.iteration_s([], batch)
                assert got == value, (is_prefill, b, x)
    assert cm.num_extrapolations == 0


finite = st.floats(allow_nan=False, allow_infinity=False)


@settings(max_examples=300, deadline=None)
@given(b=finite.filter(lambda v: 1 <= v <= 8), x1=finite.filter(lambda v: 1 <= v <= 1000),
       x2=finite.filter(lambda v: 1 <= v <= 1000))
def test_monotonic_between_grid_points_along_tokens(b, x1, x2):
    table = Table2D(DECODE.batch_sizes, DECODE.tokens, DECODE.latency_s)
    lo, hi = sorted((x1, x2))
    assert table.scalar(b, lo)[0] <= table.scalar(b, hi)[0]


@settings(max_examples=300, deadline=None)
@given(x=finite.filter(lambda v: 16 <= v <= 256), b1=finite.filter(lambda v: 1 <= v <= 4),
       b2=finite.filter(lambda v: 1 <= v <= 4))
def test_monotonic_between_grid_points_along_batch(x, b1, b2):
    table = Table2D(PREFILL.batch_sizes, PREFILL.tokens, PREFILL.latency_s)
    lo, hi = sorted((b1, b2))
    assert table.scalar(lo, x)[0] <= table.scalar(hi, x)[0]


def test_linear_between_grid_points():
    cm = profiles.cost_model(small_profile())
    # halfway between contexts 100 and 1000 at batch 2: (0.012 + 0.030) / 2
    assert cm.iteration_s([], [550, 550]) == pytest.approx(0.021, abs=1e-15)
    # the mean context decides: 50 and 1050 average to 550 as well
    assert cm.iteration_s([], [50, 1050]) == cm.iteration_s([], [550, 550])
    # batch 3 at context 100: halfway between 0.012 (batch 2) and 0.016 (batch 4)
    assert cm.iteration_s([], [100] * 3) == pytest.approx(0.014, abs=1e-15)
    # two prompts of 32 and 96 tokens cost like two of 64
    assert cm.iteration_s([32, 96], []) == cm.iteration_s([64, 64], []) == 0.035
    assert cm.prefill_s(64) == cm.iteration_s([64], []) == 0.020


def test_mixed_batch_counts_the_weight_read_once():
    tp, td = 0.020, 0.012  # prefill 1 x 64 tokens; decode 2 jobs at context 100
    fixed = 0.009 - 1 * (0.010 - 0.009) / (2 - 1)  # decode grid extrapolated to zero jobs: 0.008
    fused = profiles.cost_model(small_profile())
    assert fused.fixed_s == fixed
    assert fused.iteration_s([64], [100, 100]) == max(tp, td, tp + td - fixed) == pytest.approx(0.024)
    sequential = profiles.cost_model(small_profile(mixed_batch="sequential"))
    assert sequential.iteration_s([64], [100, 100]) == tp + td
    assert fused.iteration_s([], []) == 0.0


def test_extrapolation_warns_once_and_counts_every_lookup():
    cm = profiles.cost_model(small_profile())
    with pytest.warns(ExtrapolationWarning) as caught:
        past_end = cm.iteration_s([], [2000, 2000])
    assert str(caught[0].message) == ("profile tiny-llama_cpu_tp1: decode of 2 jobs at mean context 2000.0 tokens: the measured "
                                      "context tokens are 1..1000; extrapolating (warned once; the run counts every "
                                      "extrapolated lookup)")
    assert past_end == pytest.approx(0.030 + (0.030 - 0.012) / 900 * 1000)  # the last segment's slope continues
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a second warning would raise
        assert cm.iteration_s([], [100] * 16) == pytest.approx(0.024 + (0.024 - 0.016) / 4 * 8)
        assert cm.iteration_s([1000], []) > 0.060  # prompt past 256 tokens
        cm.decode_iterations_s([999], 3)  # 999, 1000 inside; 1001 outside
    assert cm.num_extrapolations == 4
    # how far past each axis's top the lookups went (below a grid's bottom is not recorded)
    assert cm.exits.furthest == {"context tokens": 2000.0, "decode batch": 16, "prompt tokens": 1000.0}


def test_the_warning_names_the_axis_that_was_left():
    cm = profiles.cost_model(small_profile())
    with pytest.warns(ExtrapolationWarning) as caught:
        cm.iteration_s([36] * 10, [])  # prompts inside the grid, batch 10 past it
    assert str(caught[0].message).startswith("profile tiny-llama_cpu_tp1: prefill of 10 prompts of mean 36.0 tokens: "
                                             "the measured batch is 1..")


def test_extrapolation_holds_below_the_grid_and_never_falls_past_it():
    # a noisy measured grid: batch 8 at context 1000 is cheaper than batch 4
    noisy_decode = DECODE.__class__(DECODE.batch_sizes, DECODE.tokens,
                                    DECODE.latency_s[:-1] + ((0.016, 0.024, 0.050),))
    cm = quiet(profiles.cost_model(small_profile(decode=noisy_decode)))
    assert cm.iteration_s([8], []) == 0.010  # prompt below the first point (16 tokens): held
    assert cm.num_extrapolations == 1 and cm.exits.furthest == {}  # nothing to measure further
    assert cm.iteration_s([], [1000] * 8) == 0.050
    assert cm.iteration_s([], [1000] * 16) == 0.050  # past the last batch: flat, never falling
    noisy_swap = LatencyCurve((1000, 10_000, 1_000_000), (0.001, 0.060, 0.050))
    cm = quiet(profiles.cost_model(small_profile(swap_out=noisy_swap, kv_bytes_per_token=1000)))
    assert cm.swap_s(1000, "out") == 0.050  # the last point
    assert cm.swap_s(5000, "out") == 0.050  # past the end: flat, not falling


def test_swap_lookup():
    cm = profiles.cost_model(small_profile(kv_bytes_per_token=1000))
    assert cm.swap_s(10, "out") == 0.002  # 10 tokens x 1000 bytes: a grid point
    assert cm.swap_s(10, "in") == 0.003
    assert cm.swap_s(0, "out") == 0.0
    with pytest.raises(ValueError, match="swap direction must be 'out' or 'in', got 'up'"):
        cm.swap_s(10, "up")


def test_pipeline_send_recv():
    assert profiles.cost_model(small_profile()).pp_send_recv_s(100) == 0.0  # pp = 1
    curve = LatencyCurve((256, 2560), (1e-5, 2e-5))  # tiny-llama: 64 hidden x 4 bytes = 256 bytes per token
    cm = profiles.cost_model(small_profile(pp=2, send_recv=curve))
    assert (cm.pp_send_recv_s(1), cm.pp_send_recv_s(10), cm.pp_send_recv_s(0)) == (1e-5, 2e-5, 0.0)


def test_decode_iterations_edge_cases():
    cm = profiles.cost_model(small_profile())
    assert cm.decode_iterations_s([], 3).tolist() == [0.0, 0.0, 0.0]
    assert cm.decode_iterations_s([5], 0).shape == (0,)
    with pytest.raises(ValueError, match="num_iterations must be >= 0, got -1"):
        cm.decode_iterations_s([5], -1)


contexts = st.lists(st.integers(1, 3000), min_size=1, max_size=600)


@settings(max_examples=200, deadline=None)
@given(ctx=contexts, k=st.integers(0, 400), which=st.sampled_from(["small", "bundled"]))
def test_decode_iterations_bit_identical_to_iteration_s(ctx, k, which):
    cm = quiet(profiles.cost_model(small_profile() if which == "small" else BUNDLED))
    many = cm.decode_iterations_s(ctx, k)
    one_by_one = np.array([cm.iteration_s([], [c + i for c in ctx]) for i in range(k)], dtype=np.float64)
    assert many.dtype == np.float64 and many.shape == (k,)
    assert many.tobytes() == one_by_one.tobytes()


@settings(max_examples=200, deadline=None)
@given(xs=st.lists(st.floats(-100.0, 5000.0, allow_nan=False), min_size=1, max_size=50),
       batch=st.floats(0.5, 80.0, allow_nan=False))
def test_many_increasing_is_many_bit_for_bit(xs, batch):
    # one segment (the fast path) or several, inside or outside the grid
    g = BUNDLED.decode
    table = Table2D(g.batch_sizes, g.tokens, g.latency_s)
    x = np.array(sorted(xs), dtype=np.float64)
    fast, fast_out = table.many_increasing(batch, x)
    slow, slow_out = table.many(batch, x)
    assert fast.tobytes() == slow.tobytes() and fast_out == slow_out
