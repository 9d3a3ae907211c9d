"""A run's state over time, binned, from `iterations.parquet` and the request arrivals.

One policy (and swap mode) at a time, summed over replicas. Conventions:
- Gauges (`num_queued`, `queue_level_<i>`, `device_kv_blocks_used`, `host_kv_blocks_used`)
  are sampled at an iteration's start and hold until that replica's next iteration starts
  (the last row holds until its own end); before a replica's first iteration they are 0.
  A bin reports the time-weighted mean over the bin, so a bin is exact however many
  iterations (or runs of skipped ones) fall in it.
- Traffic (`swap_out_tokens`, `swap_in_tokens`) is counted when its iteration starts, the
  moment the transfer is issued, and a bin reports tokens per second. So are arrivals
  (requests per second).
- Bins are equal, from 0 s to the last iteration end or arrival.
Columns the run lacks are absent from the result (not applicable, e.g. queue levels for
FCFS); queue levels that stay empty all run long are left out and listed in `unused_levels`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np
import pandas as pd

GAUGE_COLUMNS = ("num_queued", "device_kv_blocks_used", "host_kv_blocks_used")
TRAFFIC_COLUMNS = ("swap_out_tokens", "swap_in_tokens")
LEVEL_PATTERN = re.compile(r"^queue_level_(\d+)$")


@dataclass(frozen=True)
class Timeline:
    series: pd.DataFrame  # one row per bin: time_s (bin start), bin_s, then the series
    levels: list[str]  # queue_level_<i> columns shown, in level order
    unused_levels: list[int]  # levels that never held a job


def level_columns(df: pd.DataFrame) -> list[str]:
    found = [(int(m.group(1)), c) for c in df.columns if (m := LEVEL_PATTERN.match(c))]
    return [c for _, c in sorted(found)]


def _gauge_integral(rows: pd.DataFrame, columns: list[str], edges: np.ndarray) -> np.ndarray:
    """Integral over [0, edge] of one replica's held gauges: shape [len(edges), len(columns)]."""
    rows = rows.sort_values("start_s", kind="stable")
    start = rows["start_s"].to_numpy(float)
    hold_end = np.append(start[1:], rows["end_s"].to_numpy(float)[-1])
    length = np.maximum(hold_end - start, 0.0)
    values = rows[columns].fillna(0).to_numpy(float)  # [N, C]
    before = np.vstack([np.zeros(len(columns)), np.cumsum(values * length[:, None], axis=0)])  # [N+1, C]
    k = np.searchsorted(start, edges, side="right") - 1  # row in force at each edge; -1: none yet
    inside = np.clip(edges - start[np.maximum(k, 0)], 0.0, length[np.maximum(k, 0)])
    out = before[np.maximum(k, 0)] + values[np.maximum(k, 0)] * inside[:, None]
    out[k < 0] = 0.0
    return out


def timeline(iterations: pd.DataFrame, arrivals_s: np.ndarray, num_bins: int = 200) -> Timeline:
    """`iterations`: one policy's rows (all replicas). `arrivals_s`: its requests' arrivals."""
    if num_bins < 1:
        raise ValueError(f"num_bins must be >= 1, got {num_bins}")
    if iterations.empty:
        raise ValueError("no iterations to draw a timeline from")
    present = [c for c in iterations.columns if iterations[c].notna().any()]
    levels = [c for c in level_columns(iterations) if c in present]
    gauges = [c for c in GAUGE_COLUMNS if c in present] + levels
    traffic = [c for c in TRAFFIC_COLUMNS if c in present]
    end_s = max(float(iterations["end_s"].max()), float(np.max(arrivals_s, initial=0.0)))
    edges = np.linspace(0.0, end_s if end_s > 0 else 1.0, num_bins + 1)
    bin_s = edges[1] - edges[0]
    out = pd.DataFrame({"time_s": edges[:-1], "bin_s": bin_s})
    counts, _ = np.histogram(arrivals_s, bins=edges)
    with np.errstate(over="ignore"):  # a run microseconds long: a huge rate is the right answer
        out["arrivals_rps"] = counts / bin_s
    if gauges:
        integral = sum(
            _gauge_integral(rows, gauges, edges) for _, rows in iterations.groupby("replica", sort=True)
        )
        # rounding drops the float noise of differencing a cumulative sum (1.0 - 1e-12 jobs)
        means = np.round(np.diff(integral, axis=0) / bin_s, 9)
        for i, c in enumerate(gauges):
            out[c] = means[:, i]
    for c in traffic:
        tokens, _ = np.histogram(iterations["start_s"], bins=edges, weights=iterations[c].fillna(0))
        out[f"{c}_per_s"] = tokens / bin_s
    unused = [c for c in levels if not (iterations[c].fillna(0) > 0).any()]
    used = [c for c in levels if c not in unused]
    out = out.drop(columns=unused)
    return Timeline(out, used, [int(LEVEL_PATTERN.match(c).group(1)) for c in unused])
