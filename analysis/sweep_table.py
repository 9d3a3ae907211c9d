"""A sweep's summary as one table: a row per combination of the parameters it varies.

Invariants: seeds are replicates, so each row is the mean over seeds (`num_seeds` says how
many); parameters with one value in the sweep are constant and left out of the rows (they are
listed once, in `constant_params`); a metric's `<metric>_x` is its ratio to the baseline
policy's row with the same other parameters, NaN when the sweep has no such row.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from analysis.load import PARAM_COLUMNS
from analysis.sweep import varying_params


def sweep_table(summary: pd.DataFrame, metrics: list[str] | tuple[str, ...], baseline: str = "fcfs") -> pd.DataFrame:
    """Columns: the varying parameters (policy first), num_seeds, then each metric and its
    `<metric>_x` ratio to `baseline`."""
    missing = [m for m in metrics if m not in summary]
    if missing:
        available = ", ".join(c for c in summary.columns
                              if pd.api.types.is_numeric_dtype(summary[c]) and c not in PARAM_COLUMNS)
        raise ValueError(f"unknown metric(s) {', '.join(missing)}; available: {available}")
    keys = ["policy"] + [k for k in varying_params(summary) if k != "policy"]
    grouped = summary.groupby(keys, dropna=False, sort=True)
    table = grouped[list(metrics)].mean().reset_index()
    table.insert(len(keys), "num_seeds", grouped["seed"].nunique().to_numpy() if "seed" in summary else 1)
    if "overloaded" in summary:  # any seed overloaded marks the setting
        table.insert(len(keys) + 1, "overloaded", grouped["overloaded"].any().to_numpy())
    others = [k for k in keys if k not in ("policy", "swap")]
    base = table[table["policy"] == baseline]
    if others:
        base = base.drop_duplicates(others)  # one baseline row per setting (its own swap mode)
        merged = table[others].merge(base[others + list(metrics)], on=others, how="left", suffixes=("", "_base"))
    else:
        merged = pd.DataFrame({m: np.repeat(base[m].iloc[0] if len(base) else np.nan, len(table)) for m in metrics})
    for m in metrics:
        with np.errstate(divide="ignore", invalid="ignore"):
            ratio = table[m].to_numpy(float) / merged[m].to_numpy(float)
        table[f"{m}_x"] = np.where(np.isfinite(ratio), ratio, np.nan)
    return table


def constant_params(summary: pd.DataFrame) -> dict:
    """Parameters with one value in the whole sweep (shown once above the table)."""
    varying = set(varying_params(summary))
    return {c: summary[c].iloc[0] for c in PARAM_COLUMNS
            if c in summary and c != "seed" and c not in varying and summary[c].notna().any()}


def format_sweep_table(table: pd.DataFrame, metrics: list[str] | tuple[str, ...]) -> str:
    """'value (ratio x)' per metric; the ratio is left out where there is none."""
    out = table.drop(columns=[f"{m}_x" for m in metrics]).copy()
    if "overloaded" in out:
        out["overloaded"] = ["YES" if v else "no" for v in out["overloaded"]]
    for m in metrics:
        out[m] = [f"{v:.4g}" + (f" ({r:.2f}x)" if np.isfinite(r) else "") if np.isfinite(v) else "n/a"
                  for v, r in zip(table[m].to_numpy(float), table[f"{m}_x"].to_numpy(float), strict=True)]
    return out.to_string(index=False)
