"""The rows one run of a plan adds to iterations.parquet (DESIGN.md, "Results").

A stepped iteration is one row. A skipped run is one row for its iterations alike, two for a
plan with prefills (its first iteration, then every job decoding), and more for a run past
arrivals that wait (`Horizon.arrivals_wait`): it is cut where requests arrived, so that
`num_queued` counts each request from the iteration it arrived in, as a stepped run's rows do
(a row's gauges are read as it ends). An arrival at the instant an iteration ends counts in
that iteration's row; in a stepped run SimPy's event order decides that tie. The KV gauges of
every row of a run are those of its first iteration, which the decision allocated.
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right
from typing import NamedTuple


class Row(NamedTuple):
    start_us: int
    end_us: int
    num_iterations: int
    prefill_tokens: int
    decode_context_tokens: int  # the row's first iteration's
    num_prefills: int
    num_queued: int


def run_rows(start_us: int, end_us: int, ends_us: list[int] | None, batch_size: int, prefill_tokens: int,
             decode_context_tokens: int, num_prefills: int, queued_at_end: int, arrived_us: list[int]) -> list[Row]:
    """Rows of a run from `start_us` to `end_us`: one iteration (`ends_us` None) or several
    ending at `start_us + ends_us[i]`. Its first iteration prefills `prefill_tokens` over
    `num_prefills` jobs and decodes over `decode_context_tokens`; in the later ones all
    `batch_size` jobs decode, each one token longer per iteration. `queued_at_end`: jobs queued
    outside the batch when the run ended; `arrived_us`: when the requests that joined the
    replica since the decision arrived, in time order (those after a row's end are not queued
    in it)."""
    if ends_us is None or not (num_prefills or arrived_us):  # one row: most runs, priced per decision
        return [Row(start_us, end_us, len(ends_us) if ends_us else 1, prefill_tokens, decode_context_tokens,
                    num_prefills, queued_at_end)]
    n = len(ends_us)
    firsts = {0, 1} if num_prefills else {0}  # iterations that start a row
    for t in arrived_us:
        k = bisect_left(ends_us, t - start_us)  # the iteration it arrived in, or at whose end
        if 0 < k < n:
            firsts.add(k)
    bounds = sorted(firsts)
    rows = []
    for a, b in zip(bounds, [*bounds[1:], n], strict=True):
        row_end_us = start_us + ends_us[b - 1]
        later = len(arrived_us) - bisect_right(arrived_us, row_end_us)
        rows.append(Row(start_us + (ends_us[a - 1] if a else 0), row_end_us, b - a,
                        0 if a else prefill_tokens,
                        (prefill_tokens if a else 0) + decode_context_tokens + a * batch_size,
                        0 if a else num_prefills, queued_at_end - later))
    return rows
