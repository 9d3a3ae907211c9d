"""Loaders on the real traces in ../shared/data/traces, and the sharegpt-like fit against its table.

Skipped, with the reason, when ../shared/data is absent. The expected numbers were computed
once from the files (pandas, independently of the loaders) and are asserted exactly.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import traces
from tests.traces.conftest import AZURE_CODE, SHAREGPT_LENGTHS, need
from traces import sharegpt_params
from traces.fit_sharegpt import SHARED_PREFIX, fit, render


def test_azure_code_trace():
    trace = traces.load(need(AZURE_CODE))
    stats = trace.stats()
    assert len(trace) == 8_819
    assert trace.arrival_s[:3].tolist() == pytest.approx([0.0, 0.052, 0.098189], abs=1e-9)
    assert stats["duration_s"] == pytest.approx(3435.948056, abs=1e-6)
    assert int(trace.prompt_tokens.sum()) == 18_059_974
    assert int(trace.output_tokens.sum()) == 245_896
    assert (stats["prompt_tokens"]["p50"], stats["prompt_tokens"]["max"]) == (1469.0, 7437.0)
    assert (stats["output_tokens"]["p50"], stats["output_tokens"]["max"]) == (13.0, 1899.0)
    assert stats["interarrival_cv"] == pytest.approx(13.1513, abs=1e-4)


def test_sharegpt_lengths_table():
    path = need(SHAREGPT_LENGTHS)
    with pytest.raises(traces.TraceError, match="format 'lengths' has no arrival times"):
        traces.load(path)
    trace = traces.load(path, arrivals="poisson:rate=2", seed=0)
    assert len(trace) == 30_731
    assert int(trace.prompt_tokens.sum()) == 71_911_571
    assert int(trace.output_tokens.sum()) == 13_481_988
    assert (int(trace.prompt_tokens.max()), int(trace.output_tokens.max())) == (8141, 1024)
    assert trace.stats()["rate_rps"] == pytest.approx(2.0, rel=0.03)


def test_shipped_sharegpt_parameters_are_reproduced_by_the_fit():
    fitted = fit(need(SHAREGPT_LENGTHS))
    assert (fitted["num_rows"], fitted["rho"]) == (sharegpt_params.NUM_ROWS, sharegpt_params.RHO)
    assert tuple(fitted["prompt_quantiles"]) == sharegpt_params.PROMPT_QUANTILES
    assert tuple(fitted["output_quantiles"]) == sharegpt_params.OUTPUT_QUANTILES
    # The whole module, text included, is what the documented command writes.
    expected = render(fitted, SHARED_PREFIX + SHAREGPT_LENGTHS.name)
    assert Path(sharegpt_params.__file__).read_text(encoding="utf-8") == expected


# Tolerances of the fitted generator against the table: mean 2%, p50/p90/p99 3%, max within 2%
# and never above the table's,
# Pearson correlation within 0.02 (absolute).
@pytest.mark.parametrize(
    "column, real_column",
    [("prompt_tokens", "num_prefill_tokens"), ("output_tokens", "num_decode_tokens")],
)
def test_sharegpt_like_matches_the_real_table(column, real_column):
    real_prompt, real_output = traces.load_lengths(need(SHAREGPT_LENGTHS))
    real = {"prompt_tokens": real_prompt, "output_tokens": real_output}[column]
    synthetic = getattr(
        traces.synthesize(200_000, "poisson:rate=1", "sharegpt-like", seed=0), column
    )
    assert synthetic.mean() == pytest.approx(real.mean(), rel=0.02)
    for q in (50, 90, 99):
        assert np.percentile(synthetic, q) == pytest.approx(np.percentile(real, q), rel=0.03), q
    # The tables end at the real extremes, reached only beyond z = 4.15: never exceeded.
    assert real.max() * 0.98 <= synthetic.max() <= real.max()
    assert synthetic.min() >= real.min()


def test_sharegpt_like_keeps_the_weak_correlation():
    real_prompt, real_output = traces.load_lengths(need(SHAREGPT_LENGTHS))
    trace = traces.synthesize(200_000, "poisson:rate=1", "sharegpt-like", seed=0)
    real_corr = np.corrcoef(real_prompt, real_output)[0, 1]
    assert np.corrcoef(trace.prompt_tokens, trace.output_tokens)[0, 1] == pytest.approx(
        real_corr, abs=0.02
    )


def test_shipped_chat_parameters_are_reproduced_by_the_fit():
    from tests.traces.conftest import AZURE_CONV
    from traces import chat_params, fit_chat

    fitted = fit(need(AZURE_CONV), fmt="azure")
    assert (fitted["num_rows"], fitted["rho"]) == (chat_params.NUM_ROWS, chat_params.RHO)
    assert tuple(fitted["prompt_quantiles"]) == chat_params.PROMPT_QUANTILES
    assert tuple(fitted["output_quantiles"]) == chat_params.OUTPUT_QUANTILES
    expected = fit_chat.render(fitted, SHARED_PREFIX + AZURE_CONV.name)
    assert Path(chat_params.__file__).read_text(encoding="utf-8") == expected


def test_chat_single_turn_matches_the_azure_chat_trace():
    from tests.traces.conftest import AZURE_CONV

    real_prompt, real_output = traces.load_lengths(need(AZURE_CONV))
    synthetic = traces.synthesize(200_000, "poisson:rate=1", "chat-single-turn", seed=0)
    for real, fake in ((real_prompt, synthetic.prompt_tokens), (real_output, synthetic.output_tokens)):
        assert fake.mean() == pytest.approx(real.mean(), rel=0.02)
        for q in (50, 90, 99):
            assert np.percentile(fake, q) == pytest.approx(np.percentile(real, q), rel=0.03), q
