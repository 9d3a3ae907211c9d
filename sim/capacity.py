"""A policy's capacity on a trace: the requests per second it finishes when every request of
the trace arrives at once, so that its batch is as full as its memory and budgets allow.

`fastserve validate --load` offers a fixed fraction of this rate. A fixed arrival rate does not
give a fixed load: one CPU's speed drifts by up to 2x between minutes on a shared machine, so
the same trace is lightly loaded in one run and overloaded in the next. Near and past
saturation a mean JCT is mostly queueing, which amplifies a few percent of speed difference
between the profile and the live run into tens of percent (benchmarks/validate_targets.py).
Measuring the capacity from the profile taken moments before the live run keeps the load where
it was meant to be.
"""

from __future__ import annotations

import numpy as np

from policy.config import SchedulerConfig
from sim.cluster import simulate
from sim.config import SimConfig
from traces.trace import Trace


def burst_capacity_rps(trace: Trace, cost, policy: str, sched_config: SchedulerConfig) -> float:
    """Finished requests per second of the simulated makespan when all of `trace` arrives at
    its first arrival time. Raises ValueError when the policy finishes none of it."""
    source = trace.source
    if len(trace) == 0:
        raise ValueError(f"{source}: an empty trace has no capacity")
    start_s = float(trace.arrival_s[0])
    at_once = Trace(np.full(len(trace), start_s), trace.prompt_tokens, trace.output_tokens, trace.request_id,
                    source=f"{source} (all at once)")
    finish_s = np.asarray(simulate(at_once, cost, policy, sched_config, SimConfig()).log.floats["finish_s"])
    finished_s = finish_s[np.isfinite(finish_s)]
    if len(finished_s) == 0 or finished_s.max() <= start_s:
        raise ValueError(f"{policy} finishes no request of {source} (all rejected), so it has no capacity")
    return len(finished_s) / (float(finished_s.max()) - start_s)
