"""Latency against a swept parameter (arrival rate, burstiness CV, or a numeric scheduler field
such as alpha_s), one line per policy.

Three panels: mean JCT, p99 JCT, and normalized latency (p95 or mean, the SLO's statistic).
Each point is the mean over seeds; with several seeds a band shows their min-max spread.
The lines are drawn from `analysis.sweep.mean_over_seeds`, the very numbers that
`analysis.slo.throughput_at_slo` interpolates, so a marker sits exactly on its line. With an
SLO, the normalized-latency panel shows it as a dashed line; against rate it also marks each
policy's throughput at SLO with a star on that line (a lower bound "≥" when every rate met it).
A panel turns logarithmic in y when its values span more than two decades.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
from matplotlib import transforms
from matplotlib.figure import Figure

from analysis.load import SCHEDULER_PARAM_COLUMNS
from analysis.plots.style import colors, new_figure
from analysis.slo import NORM_LATENCY_COLUMNS, throughput_at_slo
from analysis.sweep import label, line_keys, num_seeds, panel_keys

X_LABELS = {"rate": "Arrival rate (req/s)", "cv": "Burstiness: inter-arrival CV",
            **{name: f"Scheduler {name}" for name in SCHEDULER_PARAM_COLUMNS}}
X_TITLES = {"rate": "arrival rate", "cv": "burstiness (CV)", **{name: name for name in SCHEDULER_PARAM_COLUMNS}}
LOG_SPAN_RATIO = 100.0
STAR_STACK_PT = 12.0  # stars of equal throughput at SLO are stacked this far apart, upwards


def _panels(stat: str) -> list[tuple[str, str]]:
    return [
        ("jct_mean_s", "Mean JCT (s)"),
        ("jct_p99_s", "p99 JCT (s)"),
        (NORM_LATENCY_COLUMNS[stat], f"{stat} normalized latency (s/token)"),
    ]


def plot_vs(summary: pd.DataFrame, x: str, slo_s: float | None = None, stat: str = "p95",
            subtitle: str = "") -> Figure:
    """`summary`: a sweep summary in which only policy, swap, `x` and seed vary (split the
    rest with `analysis.sweep.sweep_panels`)."""
    if x not in X_LABELS:
        raise ValueError(f"x must be one of {', '.join(X_LABELS)}, got {x!r}")
    if stat not in NORM_LATENCY_COLUMNS:
        raise ValueError(f"stat must be one of {', '.join(NORM_LATENCY_COLUMNS)}, got {stat!r}")
    panels = _panels(stat)
    missing = [c for c in [x] + [m for m, _ in panels] if c not in summary]
    if missing:
        raise ValueError(f"sweep summary has no column(s) {', '.join(missing)}")
    extra = panel_keys(summary, x)
    if extra:
        raise ValueError(f"{', '.join(extra)} vary too: split the summary with sweep_panels first")
    keys = line_keys(summary, x)
    metrics = [m for m, _ in panels]
    stats = summary.groupby(keys + [x], dropna=False, sort=True)[metrics].agg(["mean", "min", "max"])
    stats.columns = [f"{metric}:{agg}" for metric, agg in stats.columns]
    stats = stats.reset_index()
    stats["line"] = [label(row, keys) for _, row in stats.iterrows()]
    lines = list(dict.fromkeys(stats["line"]))
    palette = colors(lines)
    seeds = num_seeds(summary)

    fig, axes = new_figure(1, 3, width_in=15.0, height_in=4.5)
    for ax, (metric, ylabel) in zip(axes[0], panels, strict=True):
        for line in lines:
            g = stats[stats["line"] == line]
            xs = g[x].to_numpy(float)
            ax.plot(xs, g[f"{metric}:mean"], marker="o", label=line, color=palette[line])
            if seeds > 1:
                ax.fill_between(xs, g[f"{metric}:min"], g[f"{metric}:max"], color=palette[line], alpha=0.2, linewidth=0)
        values = stats[f"{metric}:mean"].to_numpy(float)
        positive = values[np.isfinite(values) & (values > 0)]
        if len(positive) and positive.max() / positive.min() > LOG_SPAN_RATIO:
            ax.set_yscale("log")
        ax.set_xlabel(X_LABELS[x])
        ax.set_ylabel(ylabel)
        ax.set_title(ylabel.split(" (")[0])
    ax = axes[0, 2]
    if slo_s is not None:
        ax.axhline(slo_s, linestyle="--", color="black", linewidth=1, label=f"SLO {slo_s:g} s/token")
        if x == "rate":
            _mark_throughput(ax, summary, slo_s, stat, keys, palette)
    ax.legend(title="policy", fontsize="small")
    seed_note = f"; mean of {seeds} seeds, band = min-max" if seeds > 1 else ""
    fig.suptitle(f"Latency vs {X_TITLES[x]}" + (f" ({subtitle})" if subtitle else "") + seed_note)
    return fig


def _mark_throughput(ax, summary: pd.DataFrame, slo_s: float, stat: str, keys: list[str],
                     palette: dict) -> None:
    at_slo = throughput_at_slo(summary, slo_s, stat)
    seen: dict[float, int] = {}  # policies with the same throughput at SLO: stack their stars
    for _, row in at_slo.iterrows():
        rate = row["throughput_at_slo_rps"]
        if not math.isfinite(rate):
            continue
        line = label(row, keys)
        bound = "≥ " if row["slo_bracket"] == "at_least" else ""
        stacked = seen.get(round(rate, 9), 0)
        seen[round(rate, 9)] = stacked + 1
        offset = transforms.offset_copy(ax.transData, fig=ax.figure, y=STAR_STACK_PT * stacked, units="points")
        ax.scatter([rate], [slo_s], marker="*", s=180, color=palette[line], edgecolor="black", zorder=5,
                   transform=offset, label=f"{line}: {bound}{rate:.3g} req/s at SLO")
