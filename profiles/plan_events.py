"""Which recorded live iterations started or ended a plan, how many requests were admitted before
it and how many it finished.

The live engine (executor/engine.py) records an iteration that reuses the previous plan with
`start_s` equal to the previous iteration's `end_s`, bit for bit (it starts where the last one
ended); an iteration of a new plan starts at the loop's `now`, read after the previous
iteration's bookkeeping, so strictly later. Before every new plan the loop admits the requests
that arrived by that `now` (its `start_s`). So, over one run's iterations sorted by start:

    new_plan[i]  = i == 0 or start_s[i] != end_s[i - 1]
    admitted[i]  = arrivals in (start of the previous new plan, start_s[i]] for a new plan, else 0

A plan ends at the iteration before the next new plan: the engine then reports the plan's
iterations to the policy and retires the requests that finished (their `finish_s` is that
iteration's `end_s`, bit for bit; a reused plan stops before any job's last token, so only a
plan's last iteration finishes requests). That work lies between the iteration's end and the
next start, so the run's last iteration, whose period ends at its own end, is not counted:

    ends_plan[i] = i < n - 1 and new_plan[i + 1]
    finished[i]  = requests with finish_s == end_s[i]

Both the profiler's overhead fit (executor/overhead.py) and `fastserve validate`'s pricing of live
iterations (analysis/validation.py) read iterations this way, and price a row's KV copies alike
(`swap_copies_s`), so they live here, on numpy only.
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


def plan_ends(start_s, end_s, finish_s) -> tuple[np.ndarray, np.ndarray]:
    """(ends_plan bool[n], finished int64[n]) for iterations sorted by `start_s` (see above)."""
    new_plan, _ = plan_events(start_s, end_s, [])
    ends_plan = np.zeros(len(new_plan), dtype=bool)
    ends_plan[:-1] = new_plan[1:]
    end = np.asarray(end_s, dtype=np.float64)
    finish = np.sort(np.asarray(finish_s, dtype=np.float64))
    finished = np.searchsorted(finish, end, side="right") - np.searchsorted(finish, end, side="left")
    return ends_plan, finished.astype(np.int64)


def swap_copies_s(num_swaps, swap_tokens, swap_s, direction: str) -> np.ndarray:
    """Per iteration row, the copies of the transfers its plan made in one `direction`, each at
    the row's mean transfer size: a row records their count and summed tokens, and the swap
    curve `swap_s(tokens, direction)` prices each (it is nearly linear in size)."""
    counts = np.asarray(num_swaps, dtype=np.int64)
    tokens = np.asarray(swap_tokens, dtype=np.float64)
    return np.array([k * swap_s(round(t / k), direction) if k else 0.0 for k, t in zip(counts, tokens, strict=True)],
                    dtype=np.float64)
