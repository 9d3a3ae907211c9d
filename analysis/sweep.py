"""Grouping a sweep summary: which grid parameters vary, and averages over seeds.

A sweep's `summary.csv` has one row per done cell and (policy, swap), with the grid's
parameter columns (`analysis.load.PARAM_COLUMNS`). Invariants: seeds are replicates, never a
line or a panel of their own; a parameter that takes one value in the sweep is constant and
never splits anything; missing values form their own group (`dropna=False`).
"""

from __future__ import annotations

import pandas as pd

from analysis.labels import swap_varies
from analysis.load import PARAM_COLUMNS


def varying_params(summary: pd.DataFrame, exclude: tuple[str, ...] = ()) -> list[str]:
    """Grid parameters with more than one value in `summary`, seeds and `exclude` left out."""
    return [
        c for c in PARAM_COLUMNS
        if c in summary and c != "seed" and c not in exclude
        and summary[c].nunique(dropna=False) > 1
    ]


def line_keys(summary: pd.DataFrame, x: str) -> list[str]:
    """The columns that tell lines apart: policy, and swap when a policy has several modes."""
    return ["policy"] + (["swap"] if swap_varies(summary) else [])


def panel_keys(summary: pd.DataFrame, x: str) -> list[str]:
    """The varying parameters that are neither `x` nor a line key: one figure per combination.
    `swap` is never one: it is a line key, or fixed by the policy (as FCFS's recompute)."""
    return varying_params(summary, exclude=(x, "policy", "swap"))


def mean_over_seeds(summary: pd.DataFrame, x: str, metrics: list[str]) -> pd.DataFrame:
    """Mean of `metrics` over seeds, per line key, panel key and `x` value."""
    keys = line_keys(summary, x) + panel_keys(summary, x) + [x]
    return summary.groupby(keys, dropna=False, sort=True)[metrics].mean().reset_index()


def num_seeds(summary: pd.DataFrame) -> int:
    return int(summary["seed"].nunique()) if "seed" in summary else 1


def label(row: pd.Series | dict, keys: list[str]) -> str:
    """'skip-join-mlfq' or 'skip-join-mlfq / proactive' or 'cv=2': the text of a line or panel."""
    parts = []
    for k in keys:
        value = row[k]
        parts.append(str(value) if k in ("policy", "swap") else f"{k}={value}")
    return " / ".join(parts)


def sweep_panels(summary: pd.DataFrame, x: str) -> list[tuple[str, pd.DataFrame]]:
    """(label, rows) per combination of the panel keys; [("", summary)] when none vary."""
    keys = panel_keys(summary, x)
    if not keys:
        return [("", summary)]
    return [
        (label(dict(zip(keys, key if isinstance(key, tuple) else (key,), strict=True)), keys), rows)
        for key, rows in summary.groupby(keys, dropna=False, sort=True)
    ]
