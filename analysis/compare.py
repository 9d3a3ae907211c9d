"""Side-by-side comparison of policies, with every metric as a ratio to a baseline policy.

Input: (run label, per-run metrics frame) pairs, the frames from `run_metrics`. Each row's
baseline is the baseline policy's row in the same run; when that run lacks the baseline, the
one run that has it. Several candidate rows are disambiguated by equal `swap`; if that
still leaves several (or none), the comparison refuses rather than guess. Ratios are
row / baseline, so below 1.0 means lower than the baseline (better for latencies, worse for
throughput, goodput and SLO attainment).
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from analysis.labels import policy_labels

METRIC_NAMES = {
    "jct_mean_s": "mean JCT", "jct_p50_s": "p50 JCT", "jct_p90_s": "p90 JCT",
    "jct_p95_s": "p95 JCT", "jct_p99_s": "p99 JCT", "ttft_mean_s": "mean TTFT",
    "ttft_p99_s": "p99 TTFT", "tpot_mean_s": "mean TPOT",
    "norm_latency_mean_s": "mean normalized latency", "norm_latency_p95_s": "p95 normalized latency",
    "throughput_rps": "throughput", "goodput_rps": "goodput", "slo_attainment": "SLO attainment",
    "num_preemptions": "preemptions", "num_swaps": "swaps", "num_recomputes": "recomputes",
    "swap_tokens": "swap traffic", "swap_bytes": "swap traffic",
    "request_imbalance": "request imbalance", "token_imbalance": "token imbalance",
}
DEFAULT_METRICS = (
    "jct_mean_s", "jct_p50_s", "jct_p99_s", "ttft_mean_s", "tpot_mean_s",
    "norm_latency_mean_s", "throughput_rps",
)
COUNT_COLUMNS = ("num_offered", "num_finished", "num_rejected", "num_unfinished")


def _same_swap(column: pd.Series, value) -> pd.Series:
    return column.isna() if pd.isna(value) else column == value


def _baseline_index(table: pd.DataFrame, row: pd.Series, baseline: str) -> int:
    is_base = table["policy"] == baseline
    candidates = table[is_base & (table["run"] == row["run"])]
    if candidates.empty:
        candidates = table[is_base]
    if candidates.empty:
        policies = ", ".join(dict.fromkeys(table["policy"].astype(str)))
        raise ValueError(f"baseline policy {baseline!r} is in none of the runs (policies: {policies})")
    if len(candidates) > 1:
        candidates = candidates[_same_swap(candidates["swap"], row["swap"])]
    if len(candidates) != 1:
        runs = ", ".join(dict.fromkeys(table.loc[is_base, "run"].astype(str)))
        raise ValueError(
            f"baseline {baseline!r} is ambiguous for {row['run']}:{row['policy']} ({row['swap']}); "
            f"it appears in runs {runs}: compare fewer runs at a time"
        )
    return int(candidates.index[0])


def compare(runs: list[tuple[str, pd.DataFrame]], baseline: str = "fcfs",
            metrics: list[str] | tuple[str, ...] = DEFAULT_METRICS) -> pd.DataFrame:
    """Columns: run, label, policy, swap, baseline (its label), the count columns present,
    then each metric and `<metric>_x`, its ratio to the baseline row's value."""
    if not runs:
        raise ValueError("no runs to compare")
    table = pd.concat([df.assign(run=name) for name, df in runs], ignore_index=True)
    missing = [m for m in metrics if m not in table]
    if missing:
        available = ", ".join(c for c in table.columns if pd.api.types.is_numeric_dtype(table[c]))
        raise ValueError(f"unknown metric(s) {', '.join(missing)}; available: {available}")
    table["label"] = policy_labels(table)
    base = [_baseline_index(table, row, baseline) for _, row in table.iterrows()]
    table["baseline"] = table.loc[base, "label"].to_numpy()
    counts = [c for c in (*COUNT_COLUMNS, "overloaded") if c in table]
    out = table[["run", "label", "policy", "swap", "baseline", *counts]].copy()
    for m in metrics:
        values = table[m].astype(float)
        base_values = values.loc[base].to_numpy()
        out[m] = values
        with np.errstate(divide="ignore", invalid="ignore"):
            out[f"{m}_x"] = np.where(base_values != 0, values.to_numpy() / base_values, np.nan)
    return out


def _cell(value: float, ratio: float, is_base: bool) -> str:
    if math.isnan(value):
        return "n/a"
    if is_base:
        return f"{value:.4g} (base)"
    return f"{value:.4g} ({ratio:.2f}x)" if math.isfinite(ratio) else f"{value:.4g} (n/a)"


def format_table(table: pd.DataFrame, metrics: list[str] | tuple[str, ...]) -> str:
    """The table as text: a column per policy (side by side), a row per count and metric,
    each metric as 'value (ratio x)'; rows stay narrow however many metrics are asked for."""
    counts = [c for c in COUNT_COLUMNS if c in table]
    columns = {}
    for _, row in table.iterrows():
        is_base = row["label"] == row["baseline"]
        cells = {c: str(int(row[c])) if pd.notna(row[c]) else "n/a" for c in counts}
        if "overloaded" in row:
            cells["overloaded"] = "YES" if row["overloaded"] is True or row["overloaded"] == 1 else "no"
        cells.update({m: _cell(row[m], row[f"{m}_x"], is_base) for m in metrics})
        columns[row["label"]] = cells
    frame = pd.DataFrame(columns)
    frame.index.name = "metric"
    return frame.to_string()


def ratio_lines(table: pd.DataFrame, metrics: list[str] | tuple[str, ...]) -> list[str]:
    """'skip-join-mlfq vs fcfs: mean JCT 0.21x, p99 JCT 0.35x' for every non-baseline row."""
    lines = []
    for _, row in table.iterrows():
        if row["label"] == row["baseline"]:
            continue
        parts = []
        for m in metrics:
            ratio = row[f"{m}_x"]
            text = f"{ratio:.2f}x" if math.isfinite(ratio) else "n/a"
            parts.append(f"{METRIC_NAMES.get(m, m)} {text}")
        lines.append(f"{row['label']} vs {row['baseline']}: {', '.join(parts)}")
    return lines
