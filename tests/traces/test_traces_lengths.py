"""Length distributions: means and bounds match their parameters; specs parse and fail clearly."""

from __future__ import annotations

import math

import numpy as np
import pytest

import traces
from traces import (
    ALPACA_LIKE,
    FixedLengths,
    LogNormalLengths,
    SpecError,
    UniformLengths,
    parse_lengths,
)

N = 200_000


def draw(spec, seed=0, n=N):
    prompt, output = parse_lengths(spec).sample(n, np.random.default_rng(seed))
    assert prompt.dtype == output.dtype == np.int64
    assert prompt.shape == output.shape == (n,)
    assert prompt.min() >= 1 and output.min() >= 1
    return prompt, output


def test_fixed_is_exact():
    prompt, output = draw("fixed:prompt=17,output=5", n=10)
    assert prompt.tolist() == [17] * 10 and output.tolist() == [5] * 10


def test_uniform_covers_inclusive_range_with_right_mean():
    prompt, output = draw("uniform:prompt=8-64,output=4-64")
    assert (prompt.min(), prompt.max(), output.min(), output.max()) == (8, 64, 4, 64)
    assert prompt.mean() == pytest.approx(36.0, rel=0.01)
    assert output.mean() == pytest.approx(34.0, rel=0.01)


def test_lognormal_mean_is_the_values_mean():
    prompt, output = draw(
        "lognormal:prompt_mean=500,prompt_sigma=1,output_mean=200,output_sigma=0.5", seed=2
    )
    assert prompt.mean() == pytest.approx(500, rel=0.02)
    assert output.mean() == pytest.approx(200, rel=0.02)
    # sigma is the spread of the log: the median is mean * exp(-sigma^2 / 2).
    assert np.median(prompt) == pytest.approx(500 * math.exp(-0.5), rel=0.02)


def test_alpaca_like_has_short_documented_means():
    prompt, output = draw("alpaca-like", seed=4)
    assert prompt.mean() == pytest.approx(19.31, rel=0.03)
    assert output.mean() == pytest.approx(58.45, rel=0.03)
    assert str(ALPACA_LIKE) == "alpaca-like"


def test_sharegpt_like_is_much_longer_than_alpaca_like():
    prompt, output = draw("sharegpt-like", n=20_000)
    assert prompt.mean() > 50 * 19.31 and output.mean() > 5 * 58.45


def test_empirical_resamples_pairs_of_a_table(write):
    path = write("lengths.csv", "num_prefill_tokens,num_decode_tokens\n10,1\n20,2\n30,3\n")
    prompt, output = draw(f"empirical:{path}", n=3000)
    assert set(zip(prompt.tolist(), output.tolist(), strict=True)) == {(10, 1), (20, 2), (30, 3)}
    assert prompt.mean() == pytest.approx(20, rel=0.03)


@pytest.mark.parametrize(
    "spec, expected",
    [
        ("fixed:prompt=8,output=4", FixedLengths(8, 4)),
        ("uniform:prompt=8-64,output=4", UniformLengths(8, 64, 4, 4)),
        (
            "lognormal:prompt_mean=100,prompt_sigma=0.5,output_mean=50,output_sigma=1",
            LogNormalLengths(100, 0.5, 50, 1),
        ),
    ],
)
def test_spec_strings_parse_and_round_trip(spec, expected):
    assert parse_lengths(spec) == expected
    assert parse_lengths(str(expected)) == expected


@pytest.mark.parametrize(
    "spec, message",
    [
        ("fixed:prompt=8", "missing key 'output'"),
        ("fixed:prompt=0,output=4", "key 'prompt' must be a positive integer, got 0"),
        ("fixed:prompt=x,output=4", "key 'prompt' must be an integer, got 'x'"),
        ("uniform:prompt=64-8,output=4-8", "key 'prompt' range 64-8 is empty"),
        ("uniform:prompt=8-x,output=4-8", "key 'prompt' must be an integer range A-B, got '8-x'"),
        (
            "lognormal:prompt_mean=10,prompt_sigma=-1,output_mean=5,output_sigma=1",
            "key 'prompt_sigma' must be >= 0",
        ),
        ("lognormal:prompt_mean=10,prompt_sigma=1,output_mean=5", "missing key 'output_sigma'"),
        ("fixed:prompt=8,output=4,input=3", "unknown key 'input' (expected output, prompt)"),
        ("sharegpt-like:rate=2", "unknown key 'rate' (expected no keys)"),
        ("zipf:prompt=3", "unknown kind 'zipf'"),
        ("empirical:", "missing PATH"),
    ],
)
def test_bad_specs_name_the_key(spec, message):
    with pytest.raises(SpecError) as err:
        parse_lengths(spec)
    assert message in str(err.value)


def test_sharegpt_like_is_a_deprecated_alias_of_the_multiturn_model(capsys):
    from traces import lengths

    lengths._warned.discard("sharegpt-like")
    old = traces.parse_lengths("sharegpt-like")
    again = traces.parse_lengths("sharegpt-like")
    assert old is again is traces.parse_lengths("sharegpt-multiturn-like")
    assert str(old) == "sharegpt-multiturn-like"
    err = capsys.readouterr().err
    assert err.count("\n") == 1  # one line, and only on first use
    assert err.startswith("warning: lengths 'sharegpt-like' is deprecated, use 'sharegpt-multiturn-like'")


def test_chat_single_turn_shipped_quantiles():
    from traces import chat_params

    spec = traces.parse_lengths("chat-single-turn")
    assert str(spec) == "chat-single-turn"
    assert chat_params.NUM_ROWS == 19_366
    # ends of the tables are the trace's min and max (ContextTokens 2..14050, GeneratedTokens 7..1000)
    assert (chat_params.PROMPT_QUANTILES[0], chat_params.PROMPT_QUANTILES[-1]) == (2.0, 14050.0)
    assert (chat_params.OUTPUT_QUANTILES[0], chat_params.OUTPUT_QUANTILES[-1]) == (7.0, 1000.0)
