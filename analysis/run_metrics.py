"""Every metric of one run directory, one row per (policy, swap).

Starts from `summary.csv` (JCT, TTFT, TPOT, normalized latency, throughput, preemption
counts) and adds what needs the other files: swap traffic (when `iterations.parquet`
exists), replica load imbalance, and SLO attainment and goodput (when both SLO limits are
given). Invariant: the result has exactly the summary's rows, in the summary's order.
"""

from __future__ import annotations

import pandas as pd

from analysis.load import InputError, RunData, find_config_value
from analysis.metrics import SUMMARY_KEYS
from analysis.slo import slo_attainment
from analysis.traffic import load_imbalance, swap_traffic


def kv_bytes_per_token(run: RunData) -> float | None:
    value = find_config_value(run.config, "kv_bytes_per_token")
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value <= 0:
        raise InputError(f"{run.path / 'config.json'}: kv_bytes_per_token must be a positive number, got {value!r}")
    return float(value)


def num_replicas(run: RunData) -> int | None:
    """The run's replica count from config.json (`replicas` or `num_replicas`), if it says."""
    for key in ("num_replicas", "replicas"):
        value = find_config_value(run.config, key)
        if isinstance(value, int) and not isinstance(value, bool) and value > 0:
            return value
    return None


def run_metrics(run: RunData, ttft_slo_s: float | None = None, tpot_slo_s: float | None = None) -> pd.DataFrame:
    out = run.summary.copy()
    extras = []
    if run.iterations is not None:
        extras.append(swap_traffic(run.iterations, kv_bytes_per_token(run)))
    try:
        extras.append(load_imbalance(run.requests, num_replicas(run)))
    except ValueError as exc:
        raise InputError(f"{run.path / 'requests.parquet'}: {exc}") from None
    if ttft_slo_s is not None and tpot_slo_s is not None:
        extras.append(slo_attainment(run.requests, ttft_slo_s, tpot_slo_s))
    for extra in extras:
        new = [c for c in extra.columns if c not in out.columns]
        out = out.merge(extra[SUMMARY_KEYS + new], on=SUMMARY_KEYS, how="left")
    return out
