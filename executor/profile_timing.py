"""Timing for `fastserve profile`: a clock that shares the time budget among the points still
to measure, and grid points measured in interleaved sweeps.

The iteration grids are measured in `sweeps` interleaved sweeps: each sweep visits every
point of the four (prefill, decode, prefill_context, mixed_chunk; its own set-up, warm-ups and
its share of the repetitions). A point's value is the mean over its visits of each visit's
median (`swept_times`). Why both:
- On a shared VM the machine's speed moves between phases seconds long (tiny-opt, CPU: one fixed
  decode pass had 5-second medians from 0.80 to 1.61 ms over two minutes), so a point measured
  in one ~50 ms burst took the speed of the moment it landed in (in 20 validate profiles the
  prefill grid's one-prompt row and the prefill_context grid's chunks after 0 tokens, which time
  the same passes, disagreed by up to 2x). Sweeps spread every point over the profile's time.
- Within a visit the samples are back to back, in one phase: their median drops a time slice
  lost to another process. Across visits the mean is the phase average, which is what a served
  run's summed time sees. The median of all samples (this module's rule until 2026-12-03) sat
  at the typical phase instead, and live runs meet slow phases too. `validate_targets.py
  --kv chunked --repeats 10`, one afternoon, median mean-JCT errors (tiny-opt, tiny-llama): with
  that rule -21.0 % and -16.3 %; with the mean of 7 visits' medians +1.7 % and +3.9 %, then
  -10.2 % and -14.5 % on a second run. Between runs of one code this noise is as large as the change.
The mixed_chunk grid's samples are differences of two passes timed back to back, which keeps
the drift out of a chunk's price. (The swap curve and the distributed profiler measure each
point in one burst.)
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass

from tqdm import tqdm


class Clock:
    """Shares the time budget among the points still to measure."""

    def __init__(self, cfg, num_points: int, sync: Callable[[], None], bar: tqdm) -> None:
        self.cfg, self.left, self.sync, self.bar = cfg, num_points, sync, bar
        self.deadline = time.perf_counter() + cfg.budget_s

    def median_s(self, fn: Callable[[], None], reset: Callable[[], None] | None = None) -> float:
        """Median wall time of `fn` (`reset` runs untimed after each call)."""
        return statistics.median(self.samples_s(fn, self.cfg.max_repeats, self.cfg.warmups, reset))

    def samples_s(self, fn: Callable[[], None], max_repeats: int, warmups: int,
                  reset: Callable[[], None] | None = None, base: Callable[[], None] | None = None) -> list[float]:
        """Wall times of up to `max_repeats` calls of `fn` after `warmups` untimed ones (one
        visit of a point: fewer calls when its share of the budget left is smaller). With `base`,
        each sample is fn's time minus base's, the two timed back to back in alternating order
        (neither always runs on the caches the other left): a difference no drift of the
        machine's speed reaches, as two medians taken apart would."""
        def timed(f: Callable[[], None]) -> float:
            self.sync()
            t = time.perf_counter()
            f()
            self.sync()
            elapsed = time.perf_counter() - t
            if reset is not None:
                reset()
            return elapsed

        def once(k: int) -> tuple[float, float]:
            """(the sample, the wall time it took)"""
            if base is None:
                t = timed(fn)
                return t, t
            if k % 2:
                with_fn, without = timed(fn), timed(base)
            else:
                without, with_fn = timed(base), timed(fn)
            return with_fn - without, with_fn + without

        for k in range(warmups if time.perf_counter() < self.deadline else min(1, warmups)):
            once(k)
        sample, cost_s = once(0)
        share_s = max(0.0, self.deadline - time.perf_counter()) / max(1, self.left)
        repeats = min(max_repeats, max(1, int(share_s / max(cost_s, 1e-9))))
        samples = [sample] + [once(k)[0] for k in range(1, repeats)]
        self.left -= 1
        self.bar.update(1)
        return samples


@dataclass(frozen=True)
class Visit:
    """One visit of a grid point, as its set-up (KV grown, context written) returns it: the
    timed step, the clean-up that frees what the set-up took, and for a point that is a
    difference, the step it is paired with (`Clock.samples_s`'s `base`)."""
    step: Callable[[], None]
    clean_up: Callable[[], None]
    base: Callable[[], None] | None = None


@dataclass(frozen=True)
class Probe:
    setup: Callable[[], Visit]
    max_repeats: int  # samples, over all the sweeps


def swept_times(clock, probes: dict, sweeps: int, warmups: int) -> dict:
    """Each probe's time: its `max_repeats` samples split over `sweeps` sweeps that visit every
    probe in turn, and the mean over its visits of each visit's median (see the module
    docstring); `clock` is a `Clock`. Only the first sweep pays the full `warmups`: later visits
    need one pass to settle a shape back in, not the process's first-call costs."""
    visit_medians: dict = {key: [] for key in probes}
    for sweep in range(sweeps):
        for key, probe in probes.items():
            visit = probe.setup()
            samples = clock.samples_s(visit.step, -(-probe.max_repeats // sweeps),
                                      warmups if sweep == 0 else min(1, warmups), base=visit.base)
            visit.clean_up()
            visit_medians[key].append(statistics.median(samples))
    return {key: statistics.fmean(medians) for key, medians in visit_medians.items()}
