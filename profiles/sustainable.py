"""The request rate a replica set can sustain on a workload, estimated from a cost model.

A steady server keeps B jobs decoding: B is the batch limit, or fewer when the device KV cannot
hold that many jobs at their mean footprint (prompt plus half the output: a job's KV grows from
its prompt to prompt + output over its life, so on average it holds the midpoint). Each request
costs one prefill of the mean prompt plus its mean output length in decode iterations of B jobs
at the mean mid-life context, shared by the B jobs. The estimate prices paged KV (every
policy's best case; Orca's whole-context reservation sustains less), so a trace offered above it
overloads every policy: queues then grow with the trace's length and latency comparisons depend
on where the trace happens to stop. It is an estimate, not a bound: prefill batching and
swapping move the true knee by tens of percent either way.

Pure arithmetic on the cost model; lookups outside the profile's grids extrapolate silently
here (the estimate is a ballpark, and the run itself reports its own extrapolations).
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence

import numpy as np

from profiles.grid_exits import ExtrapolationWarning


def sustainable_rate_rps(cost, prompt_tokens: Sequence[int], output_tokens: Sequence[int], max_batch_size: int,
                         device_kv_tokens: int, num_replicas: int = 1) -> float:
    """Requests/s that `num_replicas` replicas of `cost` can finish on these lengths."""
    prompts = np.asarray(prompt_tokens, dtype=np.float64)
    outputs = np.asarray(output_tokens, dtype=np.float64)
    if len(prompts) == 0:
        return float("inf")
    mean_prompt, mean_output = float(prompts.mean()), float(outputs.mean())
    context = max(1, round(mean_prompt + mean_output / 2))
    batch = int(max(1, min(max_batch_size, device_kv_tokens // context)))
    # the estimate's lookups are not the run's: leave its count and its one warning untouched
    exits = getattr(cost, "exits", None)  # profiles/grid_exits.py (a table cost model's)
    saved = exits.copy() if exits is not None else None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ExtrapolationWarning)
        prefill_s = cost.prefill_s(max(1, round(mean_prompt)))
        decode_s = cost.iteration_s((), (context,) * batch)
    if saved is not None:
        cost.exits = saved
    per_request_s = prefill_s + max(mean_output - 1, 0.0) * decode_s / batch
    return num_replicas / per_request_s if per_request_s > 0 else float("inf")
