"""Piecewise-linear lookup in latency tables, with one scalar and one vector code path.

A table is latency sampled over a strictly increasing axis (1-D), or over (batch size, tokens)
(2-D, bilinear). Invariants the cost model relies on:

- exact at grid points: a grid point starts its own segment, where the offset is 0.0, so the
  table value comes back untouched;
- monotonic between grid points where the table is: each segment is `v + t * dv` with
  `t = (x - a) / width`, built only from correctly rounded, monotone operations, then clamped
  to the segment's end values (this removes the 1-ulp overshoot `v + 1.0 * dv` can have);
- outside the grid: below the first point the value is held (clamped); past the last point the
  last segment's slope continues, never decreasing (a noisy measured tail must not make a
  bigger batch cheaper). Lookups report whether they left the grid;
- bit-identical paths: `*_scalar` uses Python floats and `bisect`, `*_many` numpy float64 arrays
  and `searchsorted`, with the same operations in the same order. IEEE-754 +, -, *, / and
  min/max give the same bits either way; tests check it with hypothesis. `Table2D.increasing_lazy`
  is the scalar path with the segment looked up once, for runs a caller may cut short.
"""

from __future__ import annotations

import math
from bisect import bisect_right
from collections.abc import Iterator, Sequence

import numpy as np


class Axis:
    """Segments over strictly increasing points; segment n-1 extrapolates past the end."""

    def __init__(self, points: Sequence[float]) -> None:
        a = np.asarray(points, dtype=np.float64)
        if a.ndim != 1 or a.size < 2 or not np.all(np.diff(a) > 0):
            raise ValueError("an axis needs at least 2 strictly increasing points")
        widths = np.diff(a)
        self.points = a
        self.widths = np.append(widths, widths[-1])  # the extrapolation segment reuses the last width
        self.first, self.last = float(a[0]), float(a[-1])
        self._points, self._widths = a.tolist(), self.widths.tolist()

    def locate_scalar(self, x: float) -> tuple[int, float, bool]:
        """Segment index, offset in segment widths, and whether x lies outside [first, last]."""
        outside = x < self.first or x > self.last
        if x < self.first:
            x = self.first
        j = bisect_right(self._points, x) - 1
        return j, (x - self._points[j]) / self._widths[j], outside

    def locate_many(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray, int]:
        num_outside = int(np.count_nonzero((x < self.first) | (x > self.last)))
        x = np.maximum(x, self.first)
        j = np.searchsorted(self.points, x, side="right") - 1
        return j, (x - self.points[j]) / self.widths[j], num_outside


def _segments(values: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per segment along the last axis: step dv and clamp bounds lo, hi (same shape as values)."""
    step = np.diff(values, axis=-1)
    tail = np.maximum(step[..., -1:], 0.0)  # extrapolate with the last slope, never downwards
    dv = np.concatenate([step, tail], axis=-1)
    lo = np.concatenate([np.minimum(values[..., :-1], values[..., 1:]), values[..., -1:]], axis=-1)
    hi = np.concatenate([np.maximum(values[..., :-1], values[..., 1:]),
                         np.full(values.shape[:-1] + (1,), math.inf)], axis=-1)
    return dv, lo, hi


class Table1D:
    """latency(x): piecewise linear in x."""

    def __init__(self, xs: Sequence[float], values: Sequence[float]) -> None:
        self.axis = Axis(xs)
        v = np.asarray(values, dtype=np.float64)
        dv, lo, hi = _segments(v)
        self._v, self._dv, self._lo, self._hi = v.tolist(), dv.tolist(), lo.tolist(), hi.tolist()

    def scalar(self, x: float) -> tuple[float, bool]:
        j, t, outside = self.axis.locate_scalar(x)
        return min(max(self._v[j] + t * self._dv[j], self._lo[j]), self._hi[j]), outside


class Table2D:
    """latency(batch, x): bilinear; rows are batch sizes, columns points of x."""

    def __init__(self, batch_sizes: Sequence[int], xs: Sequence[float], values) -> None:
        self.batch = Axis(batch_sizes)
        self.x = Axis(xs)
        v = np.asarray(values, dtype=np.float64)
        if v.shape != (self.batch.points.size, self.x.points.size):
            raise ValueError(f"table shape {v.shape} does not match the axes")
        self._v = v
        self._dv, self._lo, self._hi = _segments(v)
        self._rows = [tuple(a.tolist() for a in (r, d, lo, hi))
                      for r, d, lo, hi in zip(v, self._dv, self._lo, self._hi, strict=True)]
        self._last_row = v.shape[0] - 1

    # -- scalar path ----------------------------------------------------------------------
    def _row_scalar(self, k: int, j: int, t: float) -> float:
        v, dv, lo, hi = self._rows[k]
        return min(max(v[j] + t * dv[j], lo[j]), hi[j])

    def scalar(self, batch: float, x: float) -> tuple[float, bool]:
        j, t, out_x = self.x.locate_scalar(x)
        k, w, out_b = self.batch.locate_scalar(batch)
        if k < self._last_row:
            f0, f1 = self._row_scalar(k, j, t), self._row_scalar(k + 1, j, t)
            f = min(max(f0 + w * (f1 - f0), min(f0, f1)), max(f0, f1))
        else:
            f0, f1 = self._row_scalar(k - 1, j, t), self._row_scalar(k, j, t)
            f = f1 + w * max(f1 - f0, 0.0)
        return f, out_x or out_b

    # -- vector path: one batch size, many x ----------------------------------------------
    def _row_many(self, k: int, j: np.ndarray, t: np.ndarray) -> np.ndarray:
        return np.minimum(np.maximum(self._v[k, j] + t * self._dv[k, j], self._lo[k, j]), self._hi[k, j])

    def many(self, batch: float, x: np.ndarray) -> tuple[np.ndarray, int]:
        """Same values as `scalar(batch, xi)` for each xi, bit for bit; and how many left the grid."""
        j, t, num_out = self.x.locate_many(x)
        k, w, out_b = self.batch.locate_scalar(batch)
        if k < self._last_row:
            f0, f1 = self._row_many(k, j, t), self._row_many(k + 1, j, t)
            f = np.minimum(np.maximum(f0 + w * (f1 - f0), np.minimum(f0, f1)), np.maximum(f0, f1))
        else:
            f0, f1 = self._row_many(k - 1, j, t), self._row_many(k, j, t)
            f = f1 + w * np.maximum(f1 - f0, 0.0)
        return f, (x.size if out_b else num_out)

    def many_increasing(self, batch: float, x: np.ndarray) -> tuple[np.ndarray, int]:
        """`many` for nondecreasing `x` (a decode run's contexts). When all of x lies inside
        the grid in one segment, which is the common case, the segment's values are Python
        floats and the fancy indexing goes: the same operations on the same values, so the
        same bits."""
        ax = self.x
        if not x.size:
            return self.many(batch, x)
        first_x, last_x = float(x[0]), float(x[-1])
        if first_x < ax.first or last_x > ax.last:
            return self.many(batch, x)
        j = bisect_right(ax._points, first_x) - 1
        if j != bisect_right(ax._points, last_x) - 1:
            return self.many(batch, x)
        t = (x - ax._points[j]) / ax._widths[j]
        k, w, out_b = self.batch.locate_scalar(batch)
        rows = self._rows
        if k < self._last_row:
            f0, f1 = _row_segment(rows[k], j, t), _row_segment(rows[k + 1], j, t)
            f = np.minimum(np.maximum(f0 + w * (f1 - f0), np.minimum(f0, f1)), np.maximum(f0, f1))
        else:
            f0, f1 = _row_segment(rows[k - 1], j, t), _row_segment(rows[k], j, t)
            f = f1 + w * np.maximum(f1 - f0, 0.0)
        return f, (x.size if out_b else 0)

    # -- lazy path: one batch size, x growing in one segment ----------------------------------
    def increasing_lazy(self, batch: float, start: int, step: int, divisor: int, count: int,
                        scale: float, offset: float) -> Iterator[float] | None:
        """`scalar(batch, x)[0] * scale + offset` for x = (start + step * i) / divisor, i = 0 ..
        count - 1 (ints, step >= 0: a decode run's contexts), one at a time, for a caller that may
        stop after a few: numpy's fixed cost per call (17-45 us) is many times a short run's
        own. None unless count > 0, every x lies inside the grid in one segment and `batch`
        inside its axis (nothing to count as extrapolated): the segment's constants are then
        looked up once."""
        ax = self.x
        first_x, last_x = start / divisor, (start + step * (count - 1)) / divisor
        if count <= 0 or first_x < ax.first or last_x > ax.last:
            return None
        j = bisect_right(ax._points, first_x) - 1
        if j != bisect_right(ax._points, last_x) - 1:
            return None
        k, w, out_b = self.batch.locate_scalar(batch)
        if out_b:
            return None
        return self._increasing_lazy(j, k, w, start, step, divisor, count, scale, offset)

    def _increasing_lazy(self, j: int, k: int, w: float, start: int, step: int, divisor: int, count: int,
                         scale: float, offset: float) -> Iterator[float]:
        # `scalar`'s operations, in its order, on the segment's constants; int / int is correctly
        # rounded, as numpy's float64 division of the same (exactly representable) ints
        p, width = self.x._points[j], self.x._widths[j]
        last = k >= self._last_row
        r0, r1 = (self._rows[k - 1], self._rows[k]) if last else (self._rows[k], self._rows[k + 1])
        v0, dv0, lo0, hi0 = (a[j] for a in r0)
        v1, dv1, lo1, hi1 = (a[j] for a in r1)
        for top in range(start, start + step * count, step) if step else [start] * count:
            # min(max(a, lo), hi) as comparisons (lo <= hi: the same value), a third of the time
            t = (top / divisor - p) / width
            f0 = v0 + t * dv0
            f0 = lo0 if f0 < lo0 else hi0 if f0 > hi0 else f0
            f1 = v1 + t * dv1
            f1 = lo1 if f1 < lo1 else hi1 if f1 > hi1 else f1
            if last:
                yield (f1 + w * (f1 - f0 if f1 > f0 else 0.0)) * scale + offset
            else:
                f = f0 + w * (f1 - f0)
                lo, hi = (f0, f1) if f0 <= f1 else (f1, f0)
                yield (lo if f < lo else hi if f > hi else f) * scale + offset


def _row_segment(row: tuple[list, list, list, list], j: int, t: np.ndarray) -> np.ndarray:
    """`Table2D._row_many` within segment j of one row."""
    v, dv, lo, hi = row
    return np.minimum(np.maximum(v[j] + t * dv[j], lo[j]), hi[j])
