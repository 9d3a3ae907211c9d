"""The live engine's per-iteration and span records: `policy.timeline`'s shared recorders plus
six live-only iteration columns. `forward_s` is model time inside the iteration (the rest is
scheduling, bookkeeping and waits); `decode_max_context_tokens` is the longest decode context,
which the pooled attention pads every decode job to (`fastserve validate` prices live
iterations with it); `admit_s` is the time spent admitting the requests that arrived since the
previous recorded iteration (synthesized prompt ids, `scheduler.add`), which the profiler's
engine-overhead fit reads directly (executor/overhead.py); `num_swaps_out` and `num_swaps_in`
count the transfers the iteration's plan started (the fit's per-swap term);
`prefill_context_tokens` sums, over the iteration's prefill chunks, the KV tokens of earlier
chunks each attends to (chunked prefill; 0 otherwise), which `fastserve validate` prices too."""

from __future__ import annotations

import pandas as pd

from policy.timeline import IterationLog, SpanLog

LIVE_COLUMNS = ("forward_s", "decode_max_context_tokens", "admit_s", "num_swaps_out", "num_swaps_in",
                "prefill_context_tokens")


def live_iteration_log(num_levels: int) -> IterationLog:
    return IterationLog(num_levels, LIVE_COLUMNS, float_columns=("start_s", "end_s", "forward_s", "admit_s"))


def frame(log: IterationLog | SpanLog, policy: str, swap: str) -> pd.DataFrame:
    return pd.DataFrame(log.columns(policy, swap)).astype(log.dtypes())


__all__ = ["IterationLog", "SpanLog", "frame", "live_iteration_log"]
