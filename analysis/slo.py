"""SLO attainment, goodput, and the throughput a policy sustains under a latency SLO.

Definitions (FastServe section 6 evaluates the same quantities):
- A request meets the SLO when it finished, its TTFT <= `ttft_slo_s` and its time per output
  token (TPOT) <= `tpot_slo_s`. A one-token output has no TPOT and meets the per-token limit.
  Rejected and unfinished requests count as misses: they stay in the denominator, so a
  policy cannot raise its attainment by refusing or abandoning work.
- SLO attainment = requests meeting the SLO / all requests (finished, rejected, unfinished).
- Goodput = requests meeting the SLO / (last finish - first arrival), the span that
  `throughput_rps` uses, in requests per second.
- Throughput at SLO = the largest arrival rate whose mean over seeds of the p95 (or mean)
  normalized latency stays <= `slo_s`, scanning rates upward and stopping at the first rate
  that exceeds it. Between that rate and the last one under the SLO the latency is
  interpolated linearly. A cell with no finished request has no latency and counts as over.
  `slo_bracket` says how the value was found: "interpolated"; "at_least" (every swept rate
  was under the SLO, the value is the largest rate swept, a lower bound); "below_range" (the
  lowest rate swept was already over, the value is NaN).
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from analysis.metrics import SUMMARY_KEYS, add_derived
from analysis.sweep import line_keys, mean_over_seeds, panel_keys

NORM_LATENCY_COLUMNS = {"p95": "norm_latency_p95_s", "p99": "norm_latency_p99_s", "mean": "norm_latency_mean_s"}


def meets_slo(requests: pd.DataFrame, ttft_slo_s: float, tpot_slo_s: float) -> pd.Series:
    """Per request: finished and within both limits (see the module docstring)."""
    for name, value in (("ttft_slo_s", ttft_slo_s), ("tpot_slo_s", tpot_slo_s)):
        if not value > 0:
            raise ValueError(f"{name} must be > 0, got {value}")
    df = requests if "ttft_s" in requests else add_derived(requests)
    tpot_ok = df["tpot_s"].isna() | (df["tpot_s"] <= tpot_slo_s)
    return (df["status"] == "finished") & (df["ttft_s"] <= ttft_slo_s) & tpot_ok


def slo_attainment(requests: pd.DataFrame, ttft_slo_s: float, tpot_slo_s: float) -> pd.DataFrame:
    """One row per (policy, swap): num_total, num_meeting_slo, slo_attainment, goodput_rps."""
    df = requests if "ttft_s" in requests else add_derived(requests)
    df = df.assign(_ok=meets_slo(df, ttft_slo_s, tpot_slo_s))
    rows = []
    for (policy, swap), g in df.groupby(SUMMARY_KEYS, sort=False, dropna=False):
        num_ok = int(g["_ok"].sum())
        span_s = g["finish_s"].max() - g["arrival_s"].min()
        rows.append({
            "policy": policy, "swap": swap, "num_total": len(g), "num_meeting_slo": num_ok,
            "slo_attainment": num_ok / len(g),
            "goodput_rps": num_ok / span_s if span_s > 0 else np.nan,
        })
    return pd.DataFrame(rows)


def _crossing(rates: np.ndarray, values: np.ndarray, slo_s: float) -> tuple[float, str]:
    over = ~(values <= slo_s)  # NaN (nothing finished) counts as over
    if not over.any():
        return float(rates[-1]), "at_least"
    k = int(np.argmax(over))
    if k == 0:
        return math.nan, "below_range"
    r0, r1, m0, m1 = rates[k - 1], rates[k], values[k - 1], values[k]
    if not math.isfinite(m1):  # no latency to interpolate towards: the last rate under holds
        return float(r0), "interpolated"
    return float(r0 + (slo_s - m0) * (r1 - r0) / (m1 - m0)), "interpolated"


def throughput_at_slo(summary: pd.DataFrame, slo_s: float, stat: str = "p95") -> pd.DataFrame:
    """Per line (policy, swap if it varies) and panel (other varying parameters) of a sweep
    summary: throughput_at_slo_rps and slo_bracket. See the module docstring."""
    if not slo_s > 0:
        raise ValueError(f"slo_s must be > 0, got {slo_s}")
    if stat not in NORM_LATENCY_COLUMNS:
        raise ValueError(f"stat must be one of {', '.join(NORM_LATENCY_COLUMNS)}, got {stat!r}")
    column = NORM_LATENCY_COLUMNS[stat]
    for c in ("rate", column):
        if c not in summary:
            raise ValueError(f"sweep summary has no column {c}")
    means = mean_over_seeds(summary, "rate", [column])
    keys = line_keys(summary, "rate") + panel_keys(summary, "rate")
    rows = []
    for key, g in means.groupby(keys, dropna=False, sort=False):
        g = g.sort_values("rate")
        rate, bracket = _crossing(g["rate"].to_numpy(float), g[column].to_numpy(float), slo_s)
        values = key if isinstance(key, tuple) else (key,)
        rows.append({**dict(zip(keys, values, strict=True)), "throughput_at_slo_rps": rate, "slo_bracket": bracket})
    return pd.DataFrame(rows)
