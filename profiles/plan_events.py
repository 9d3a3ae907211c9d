"""Which recorded live iterations started a new plan, and how many requests were admitted before it.

The live engine (executor/engine.py) records an iteration that reuses the previous plan with
`start_s` equal to the previous iteration's `end_s`, bit for bit (it starts where the last one
ended); an iteration of a new plan starts at the loop's `now`, read after the previous
iteration's bookkeeping, so strictly later. Before every new plan the loop admits the requests
that arrived by that `now` (its `start_s`). So, over one run's iterations sorted by start:

    new_plan[i]  = i == 0 or start_s[i] != end_s[i - 1]
    admitted[i]  = arrivals in (start of the previous new plan, start_s[i]] for a new plan, else 0

Both the profiler's overhead fit (executor/overhead.py) and `fastserve validate`'s pricing of live
iterations (analysis/validation.py) read iterations this way, so they live here, on numpy only.
Admissions before a loop pass that ran no iteration (a transfer-only plan, an idle wait) count
toward the next new plan, which is where an engine that charges them per plan puts them too.
"""

from __future__ import annotations

import numpy as np


def plan_events(start_s, end_s, arrival_s) -> tuple[np.ndarray, np.ndarray]:
    """(new_plan bool[n], admitted int64[n]) for iterations sorted by `start_s` (see above)."""
    start = np.asarray(start_s, dtype=np.float64)
    end = np.asarray(end_s, dtype=np.float64)
    if len(start) and np.any(np.diff(start) < 0):
        raise ValueError("plan_events: iterations must be sorted by start_s")
    new_plan = np.ones(len(start), dtype=bool)
    new_plan[1:] = start[1:] != end[:-1]
    arrivals = np.sort(np.asarray(arrival_s, dtype=np.float64))
    # requests arrived by each new plan's start; the differences between consecutive new plans
    arrived = np.searchsorted(arrivals, start[new_plan], side="right")
    admitted = np.zeros(len(start), dtype=np.int64)
    admitted[new_plan] = np.diff(arrived, prepend=0)
    return new_plan, admitted
