"""Synthetic traces: an arrival process plus a length distribution, from one seed.

`synthesize` draws lengths and arrivals from independent seeded streams (traces.rng), so the
same seed gives the same arrival times whatever the length distribution. Request ids are
0..N-1 in arrival order. The trace's `source` is a `synth:` spec string that `traces.resolve`
turns back into the same trace.

`synthesize_filtered` applies length filters the way the FastServe/vLLM benchmarks do (filter
the length population, then assign arrivals): it draws lengths in rounds until `num_requests`
pass the filters, and reports every rejected draw per reason. The arrival process then runs
on the kept requests, so the requested rate is the rate of the final trace.
"""

from __future__ import annotations

import numpy as np

from traces.arrivals import ArrivalSpec, parse_arrivals
from traces.errors import SpecError
from traces.filters import FilterReport, Filters, filter_mask
from traces.lengths import LengthSpec, parse_lengths
from traces.rng import seeded_generators
from traces.trace import Trace

# Give up when fewer than 1 in MAX_DRAWS_PER_REQUEST draws pass the filters.
MAX_DRAWS_PER_REQUEST = 1000


def _check_count(num_requests: int) -> None:
    if (
        isinstance(num_requests, bool)
        or not isinstance(num_requests, (int, np.integer))
        or num_requests <= 0
    ):
        raise SpecError(f"num_requests must be a positive integer, got {num_requests!r}")


def synth_spec(
    num_requests: int,
    arrivals: ArrivalSpec,
    lengths: LengthSpec,
    seed: int,
    filters: Filters | None = None,
) -> str:
    """The `synth:` spec string that reproduces a synthetic trace."""
    spec = f"synth:num_requests={num_requests},arrivals={arrivals},lengths={lengths},seed={seed}"
    return f"{spec},{filters}" if filters is not None and filters.active else spec


def synthesize(
    num_requests: int, arrivals: ArrivalSpec | str, lengths: LengthSpec | str, seed: int = 0
) -> Trace:
    """`num_requests` requests with arrivals from `arrivals` and lengths from `lengths`."""
    trace, _ = synthesize_filtered(num_requests, arrivals, lengths, seed, Filters())
    return trace


def synthesize_filtered(
    num_requests: int,
    arrivals: ArrivalSpec | str,
    lengths: LengthSpec | str,
    seed: int,
    filters: Filters,
) -> tuple[Trace, FilterReport]:
    """Exactly `num_requests` requests whose lengths pass `filters`, and the rejection report."""
    _check_count(num_requests)
    arrivals, lengths = parse_arrivals(arrivals), parse_lengths(lengths)
    arrivals_rng, lengths_rng = seeded_generators(seed)
    report = FilterReport(filters, 0)
    kept_prompt, kept_output, num_kept = [], [], 0
    while num_kept < num_requests:
        missing = num_requests - num_kept
        # Draw enough for the acceptance rate seen so far, plus slack, to need few rounds.
        acceptance = report.num_kept / report.num_requests if report.num_requests else 1.0
        batch = missing if not filters.active else int(missing / max(acceptance, 0.01) * 1.1) + 16
        prompt_tokens, output_tokens = lengths.sample(batch, lengths_rng)
        kept_rows = np.flatnonzero(filter_mask(prompt_tokens, output_tokens, filters)[0])
        if kept_rows.size >= missing:
            # Stop at the N-th kept draw: later draws are never examined, so never reported.
            cut = kept_rows[missing - 1] + 1
            prompt_tokens, output_tokens = prompt_tokens[:cut], output_tokens[:cut]
        keep, batch_report = filter_mask(prompt_tokens, output_tokens, filters)
        report += batch_report
        kept_prompt.append(prompt_tokens[keep])
        kept_output.append(output_tokens[keep])
        num_kept += kept_prompt[-1].size
        if num_kept < num_requests and report.num_requests >= MAX_DRAWS_PER_REQUEST * num_requests:
            raise SpecError(
                f"filters {filters} keep only {report.num_kept} of {report.num_requests} "
                f"draws from '{lengths}'; relax them"
            )
    arrival_s = arrivals.generate(num_requests, arrivals_rng)
    trace = Trace(
        arrival_s,
        np.concatenate(kept_prompt),
        np.concatenate(kept_output),
        None,
        synth_spec(num_requests, arrivals, lengths, seed, filters),
    )
    return trace, report
