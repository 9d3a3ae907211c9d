"""Event skipping's run length: how many iterations of a plan a replica runs back to back, the
total duration, and each one's end (sim/replica.py asks once per decision).

A run stops at the scheduler's `horizon`, before the batch's first finish and at
`SimConfig.max_skip_iterations`, and each of its iterations ends strictly before the next
arrival the replica must see (sim/arrival_stream.py), unless the policy says arrivals wait
(`Horizon.arrivals_wait`): then the run goes past them, but never ends at an instant where one
arrives (`_cross_arrivals`).
A plan with prefills runs them in its first iteration, priced by the replica (`step_us`); in
the others every job decodes, one token longer. Durations are integer microseconds, element
for element those of stepping (`cost.decode_iterations_s`; `decode_iterations_lazy` for short
runs, `noisy_decode_iterations_s` with clock noise).
"""

from __future__ import annotations

import math

import numpy as np

from policy import CostModel, Plan, Scheduler
from sim.arrival_stream import ArrivalStream
from sim.clock import US_PER_S, duration_us, durations_us, to_s

# Runs of at most this many iterations are priced one iteration at a time in Python
# (`decode_iterations_lazy`), which stops at the first bound; longer ones with numpy, whose
# fixed cost (17-45 us a call, against ~0.8 us an iteration here) is then spread over enough
# iterations to win.
LAZY_MAX_ITERATIONS = 40

Run = tuple[int, int, list[int] | None]  # (iterations, total us, each one's end since the first began)


class SkipRuns:
    """One replica's run lengths. `beyond_live_reuse`: the replica may make the skips the live
    engine does not (see `Replica`); `noisy`: the cost model has clock noise."""

    def __init__(self, cost: CostModel, scheduler: Scheduler, arrivals: ArrivalStream, max_skip_iterations: int,
                 beyond_live_reuse: bool, noisy: bool) -> None:
        self.cost = cost
        self.scheduler = scheduler
        self.arrivals = arrivals  # the requests the replica's runs stop at
        self.max_skip_iterations = max_skip_iterations
        self.beyond_live_reuse = beyond_live_reuse
        self.noisy = noisy
        self._lazy_decode = getattr(cost, "decode_iterations_lazy", None) if not noisy else None

    def length(self, plan: Plan, step_us: int, decode_context: list[int], now_us: int, first_index: int) -> Run:
        """The run of `plan` starting at `now_us`: its first iteration lasts `step_us` and is the
        replica's `first_index`-th (clock noise); `decode_context` is that iteration's."""
        limit = min(min([j.output_tokens - j.generated_tokens for j in plan.batch]), self.max_skip_iterations)
        priced = 1 if plan.prefill_ids else 0  # iterations `step_us` prices: the decodes follow
        if priced:
            decode_context = [j.prompt_tokens + j.generated_tokens + 1 for j in plan.batch]
        next_arrival_us = self.arrivals.next_us
        may_cross = self.beyond_live_reuse and self.arrivals.sorted  # see `_cross_arrivals`
        if next_arrival_us < math.inf and not may_cross:
            limit = min(limit, self._arrival_limit(plan, step_us, decode_context, priced, next_arrival_us - now_us))
        if limit < 2:  # settled before asking the policy, which costs more
            return 1, step_us, None
        horizon = self.scheduler.horizon(plan, to_s(now_us), limit)
        crossing = may_cross and horizon.arrivals_wait
        if next_arrival_us < math.inf and may_cross and not crossing:
            limit = min(limit, self._arrival_limit(plan, step_us, decode_context, priced, next_arrival_us - now_us))
        limit = min(limit, horizon.max_iterations)
        if limit < 2:
            return 1, step_us, None
        gap_us = math.inf if crossing else next_arrival_us - now_us
        deadline_us = round(horizon.deadline_s * 1_000_000) if horizon.deadline_s < math.inf else math.inf
        run = None
        if self._lazy_decode is not None and limit <= LAZY_MAX_ITERATIONS:
            values = self._lazy_decode(decode_context, limit - priced)
            if values is not None:
                run = cut_run(values, step_us, gap_us, deadline_us, bool(priced))
        if run is None:
            run = self._priced_run(step_us, decode_context, priced, limit, gap_us, deadline_us, first_index)
        return self._cross_arrivals(run, now_us) if crossing and next_arrival_us < math.inf else run

    def _arrival_limit(self, plan: Plan, step_us: int, decode_context: list[int], priced: int, gap_us: int) -> int:
        """At most this many iterations end strictly before an arrival `gap_us` from now. Iterations
        only lengthen as contexts grow: this bounds the work, not the result. With clock noise a
        later iteration may be shorter than this one: bound with the shortest it can be (the
        smallest noise group, which is at most 1)."""
        shortest_us = step_us if not priced else duration_us(self.cost.iteration_s([], decode_context))
        if self.noisy:
            shortest_us = max(1, int(self.cost.iteration_s([] if priced else plan.prefill_tokens, decode_context)
                                     * min(1.0, self.cost.forward_noise[0]) * 1_000_000))
        gap_left_us = gap_us - priced * step_us
        return gap_left_us // shortest_us + 1 + priced if gap_left_us > 0 else 1

    def _priced_run(self, step_us: int, decode_context: list[int], priced: int, limit: int, gap_us: float,
                    deadline_us: float, first_index: int) -> Run:
        """The run with numpy: every iteration up to `limit` priced at once."""
        if self.noisy:
            steps = durations_us(self.cost.noisy_decode_iterations_s(decode_context, limit - priced,
                                                                     first_index + priced))
        else:
            steps = durations_us(self.cost.decode_iterations_s(decode_context, limit - priced))
        if priced:
            steps = np.concatenate(([step_us], steps))
        elif steps[0] != step_us:
            raise RuntimeError(
                f"cost model: decode_iterations_s()[0] = {steps[0]} us differs from iteration_s() = "
                f"{step_us} us; event skipping needs them bit-identical"
            )
        ends_rel = np.cumsum(steps)
        n = int(np.searchsorted(ends_rel, gap_us, side="left")) if gap_us < math.inf else limit
        if deadline_us < math.inf:
            n = min(n, int(np.searchsorted(ends_rel, deadline_us, side="left")) + 1)
        n = min(n, limit)
        if n < 2:
            return 1, step_us, None
        return n, int(ends_rel[n - 1]), ends_rel[:n].tolist()  # a list: policies bisect it

    def _cross_arrivals(self, run: Run, now_us: int) -> Run:
        """A run past arrivals the policy says wait, ending where none arrives: the decision after
        it must see the same arrivals as a stepped run's, and at an instant an arrival shares,
        which of the two SimPy takes first depends on when each was scheduled, which differs
        between the two runs."""
        n, _, ends = run
        if ends is None:
            return run
        while n > 1 and self.arrivals.arrives_at(now_us + ends[n - 1]):
            n -= 1
        if n < 2:
            return 1, ends[0], None
        return (n, ends[n - 1], ends[:n]) if n < len(ends) else run


def cut_run(values, step_us: int, gap_us: float, deadline_us: float, first_priced: bool = False) -> Run:
    """A run from iteration durations in seconds, taken one at a time: the iterations that end
    strictly before the next arrival, up to the first that ends at or after the policy's deadline
    (the numpy path's searchsorted bounds, without pricing the iterations past them).
    `first_priced`: the first iteration is `step_us` (a prefill's), and `values` price the ones
    after it."""
    ends: list[int] = []
    total_us = 0
    if first_priced:
        if step_us >= gap_us or step_us >= deadline_us:
            return 1, step_us, None
        ends.append(step_us)
        total_us = step_us
    for seconds in values:
        us = round(seconds * US_PER_S)  # duration_us
        total_us += us if us > 0 else 1
        if not ends and total_us != step_us:
            raise RuntimeError(
                f"cost model: decode_iterations_lazy() first value = {total_us} us differs from "
                f"iteration_s() = {step_us} us; event skipping needs them bit-identical"
            )
        if total_us >= gap_us:
            break
        ends.append(total_us)
        if total_us >= deadline_us:
            break
    if len(ends) < 2:
        return 1, step_us, None
    return len(ends), ends[-1], ends
