"""Summary statistics of a trace and their text table.

`trace_stats` returns a plain dict (JSON-friendly floats and ints):
`num_requests`, `start_s`, `duration_s` (last arrival minus first), `rate_rps`
((n - 1) / duration: n arrivals span n - 1 gaps), `interarrival_mean_s`, `interarrival_cv`
(population std / mean of the gaps; 1 for Poisson, larger is burstier), and for each of
`prompt_tokens`, `output_tokens`, `total_tokens` a dict with `mean`, `min`, `p50`, `p90`,
`p95`, `p99`, `max` (linear-interpolated percentiles). Undefined values are NaN.
"""

from __future__ import annotations

import math

import numpy as np

PERCENTILES = (50, 90, 95, 99)
LENGTH_KEYS = ("mean", "min", *(f"p{p}" for p in PERCENTILES), "max")


def length_stats(tokens: np.ndarray) -> dict[str, float]:
    if tokens.size == 0:
        return dict.fromkeys(LENGTH_KEYS, math.nan)
    stats = {"mean": float(tokens.mean()), "min": float(tokens.min())}
    stats.update(
        {
            f"p{p}": float(v)
            for p, v in zip(PERCENTILES, np.percentile(tokens, PERCENTILES), strict=True)
        }
    )
    stats["max"] = float(tokens.max())
    return stats


def trace_stats(
    arrival_s: np.ndarray, prompt_tokens: np.ndarray, output_tokens: np.ndarray
) -> dict:
    num_requests = int(arrival_s.size)
    gaps_s = np.diff(arrival_s)
    duration_s = float(arrival_s[-1] - arrival_s[0]) if num_requests else math.nan
    gap_mean_s = float(gaps_s.mean()) if gaps_s.size else math.nan
    return {
        "num_requests": num_requests,
        "start_s": float(arrival_s[0]) if num_requests else math.nan,
        "duration_s": duration_s,
        "rate_rps": (num_requests - 1) / duration_s
        if num_requests > 1 and duration_s > 0
        else math.nan,
        "interarrival_mean_s": gap_mean_s,
        "interarrival_cv": float(gaps_s.std() / gap_mean_s)
        if gaps_s.size and gap_mean_s > 0
        else math.nan,
        "prompt_tokens": length_stats(prompt_tokens),
        "output_tokens": length_stats(output_tokens),
        "total_tokens": length_stats(prompt_tokens + output_tokens),
    }


def _fmt(value: float, digits: int = 1) -> str:
    if isinstance(value, float) and math.isnan(value):
        return "-"
    return f"{value:,.{digits}f}"


def format_stats(stats: dict, title: str) -> str:
    """A readable fixed-width table of `trace_stats` output."""
    lines = [
        title,
        f"  requests          {stats['num_requests']:,}",
        f"  duration_s        {_fmt(stats['duration_s'], 3)}",
        f"  rate_rps          {_fmt(stats['rate_rps'], 3)}",
        f"  interarrival_cv   {_fmt(stats['interarrival_cv'], 3)}",
        "",
        "  tokens  " + "".join(f"{key:>10}" for key in LENGTH_KEYS),
    ]
    for name in ("prompt", "output", "total"):
        row = stats[f"{name}_tokens"]
        lines.append(
            f"  {name:<8}"
            + "".join(f"{_fmt(row[key], 1 if key == 'mean' else 0):>10}" for key in LENGTH_KEYS)
        )
    return "\n".join(lines)
