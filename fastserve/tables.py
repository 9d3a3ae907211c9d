"""Plain-text tables for the terminal."""

from __future__ import annotations

import click
import pandas as pd

SUMMARY_VIEW = [
    ("policy", "policy", "{}"), ("swap", "swap", "{}"), ("num_offered", "offered", "{:,}"),
    ("num_finished", "done", "{:,}"), ("num_rejected", "rejected", "{:,}"), ("num_unfinished", "unfinished", "{:,}"),
    ("jct_mean_s", "JCT mean s", "{:.3f}"), ("jct_p50_s", "p50 s", "{:.3f}"), ("jct_p99_s", "p99 s", "{:.3f}"),
    ("ttft_mean_s", "TTFT mean s", "{:.3f}"), ("norm_latency_mean_s", "s/token", "{:.4f}"),
    ("throughput_rps", "req/s", "{:.2f}"), ("num_preemptions", "preempt", "{:,}"), ("num_swaps", "swaps", "{:,}"),
    ("overloaded", "overloaded", lambda v: "YES" if v else "no"),
]


def format_table(df: pd.DataFrame, view=SUMMARY_VIEW) -> str:
    cols = [(c, title, fmt) for c, title, fmt in view if c in df.columns]
    cells = [[title for _, title, _ in cols]]
    for _, row in df.iterrows():
        cells.append([("-" if pd.isna(row[c]) else fmt(row[c]) if callable(fmt) else fmt.format(row[c]))
                      for c, _, fmt in cols])
    widths = [max(len(r[i]) for r in cells) for i in range(len(cols))]
    lines = ["  ".join(v.rjust(w) for v, w in zip(r, widths, strict=True)) for r in cells]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def print_summary(summary: pd.DataFrame | None) -> None:
    if summary is not None and len(summary):
        click.echo(format_table(summary))
