"""Line labels for rows that carry `policy`, `swap` and optionally `run` (a run directory's name).

Invariant: a label shows only what tells rows apart: the policy always, the swap mode when
some policy appears with several swap modes (FCFS always recomputes, so a swap mode tied to
its policy says nothing), and the run (as a "run:" prefix) when rows come from several runs.
"""

from __future__ import annotations

import pandas as pd


def swap_varies(df: pd.DataFrame) -> bool:
    """True when some policy appears with more than one swap mode."""
    return "swap" in df and bool((df.groupby("policy")["swap"].nunique(dropna=False) > 1).any())


def policy_labels(df: pd.DataFrame) -> pd.Series:
    several_runs = "run" in df and df["run"].nunique() > 1
    several_swaps = swap_varies(df)
    text = df["policy"].astype(str)
    if several_swaps:
        text = text + " (" + df["swap"].astype(str) + ")"
    if several_runs:
        text = df["run"].astype(str) + ":" + text
    return text
