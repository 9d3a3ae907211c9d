"""Gantt chart of a small trace: each job's waiting, running, preempted and swapping spans.

One panel per policy (and swap mode), stacked with a shared time axis, one row per request
in arrival order (earliest on top). Segments come from `analysis.gantt.gantt_segments`.
Swaps are drawn as thin bars over the preempted gap they overlap, at least MIN_SWAP_WIDTH of
the chart's time span wide (a few-ms copy in a chart of a minute would be invisible). Only the first
`max_requests` requests (by arrival) that were not rejected are drawn; a panel's title says
how many there were and how many were rejected (they never ran, so they have no bars and
no row), so a cut is never silent. One legend below
the panels lists the kinds drawn.
"""

from __future__ import annotations

import pandas as pd
from matplotlib.figure import Figure

from analysis.gantt import KINDS, gantt_segments
from analysis.labels import policy_labels
from analysis.plots.style import new_figure

STYLE = {  # kind: (colour, bar height, hatch, legend text)
    "waiting": ("#d9d9d9", 0.6, "", "waiting (queued)"),
    "running": ("#2a9d8f", 0.6, "", "running"),
    "preempted": ("#f4a6a6", 0.6, "//", "preempted"),
    "swap_out": ("#e76f51", 0.25, "", "swap out"),
    "swap_in": ("#264653", 0.25, "", "swap in"),
}
MAX_TICK_LABELS = 60
MIN_SWAP_WIDTH = 0.004  # of the chart's time span


def _time_span_s(requests: pd.DataFrame, spans: pd.DataFrame) -> float:
    times = pd.concat([requests["arrival_s"], requests["finish_s"], spans["end_s"]]).dropna()
    return float(times.max() - times.min()) if len(times) else 0.0


def plot_gantt(requests: pd.DataFrame, spans: pd.DataFrame, max_requests: int = 40,
               title: str = "Gantt chart") -> Figure:
    if max_requests < 1:
        raise ValueError(f"max_requests must be >= 1, got {max_requests}")
    reqs = requests.assign(label=policy_labels(requests))
    labels = list(dict.fromkeys(reqs["label"]))
    served = reqs[reqs["status"] != "rejected"]
    num_rows = min(int(served.groupby("label").size().max()) if len(served) else 1, max_requests)
    fig, axes = new_figure(len(labels), 1, width_in=10.0, height_in=1.2 + len(labels) * (0.5 + 0.13 * num_rows),
                           sharex=True)
    for ax, label in zip(axes[:, 0], labels, strict=True):
        mine = reqs[reqs["label"] == label]
        candidates = mine[mine["status"] != "rejected"]
        shown = candidates.sort_values(["arrival_s", "request_id"]).head(max_requests)
        policy, swap = mine["policy"].iloc[0], mine["swap"].iloc[0]
        same = (spans["policy"] == policy) & (spans["swap"].isna() if pd.isna(swap) else spans["swap"] == swap)
        segments = gantt_segments(shown, spans[same & spans["request_id"].isin(shown["request_id"])])
        row_of = {rid: i for i, rid in enumerate(shown["request_id"])}
        min_width_s = MIN_SWAP_WIDTH * _time_span_s(reqs, spans)
        for kind in KINDS:
            seg = segments[segments["kind"] == kind]
            if seg.empty:
                continue
            color, height, hatch, text = STYLE[kind]
            width_s = seg["end_s"] - seg["start_s"]
            if kind in ("swap_out", "swap_in"):  # milliseconds in a chart of minutes: widened to be seen
                width_s = width_s.clip(lower=min_width_s)
            ax.barh([row_of[r] for r in seg["request_id"]], width_s, left=seg["start_s"],
                    height=height, color=color, hatch=hatch, edgecolor="white" if not hatch else "#c0392b",
                    linewidth=0.3, label=text, zorder=3 if height < 0.5 else 2)
        if len(shown) <= MAX_TICK_LABELS:
            ax.set_yticks(range(len(shown)))
            ax.set_yticklabels([str(r) for r in shown["request_id"]], fontsize="x-small")
        ax.set_ylim(max(len(shown), 1) - 0.5, -0.5)  # earliest arrival on top
        ax.set_ylabel("Request id")
        notes = []
        if len(shown) < len(candidates):
            notes.append(f"first {len(shown)} of {len(candidates)} requests")
        if len(mine) > len(candidates):
            notes.append(f"{len(mine) - len(candidates)} rejected, not drawn")
        ax.set_title(label + (f" ({'; '.join(notes)})" if notes else ""), fontsize="medium", loc="left")
    axes[-1, 0].set_xlabel("Time since trace start (s)")
    fig.suptitle(title)
    handles = {}  # one legend entry per kind drawn in any panel, in KINDS order
    for ax in axes[:, 0]:
        for container in ax.containers:
            handles.setdefault(container.get_label(), container)
    order = [STYLE[k][3] for k in KINDS if STYLE[k][3] in handles]
    if order:
        fig.legend([handles[t] for t in order], order, loc="outside lower center", ncol=len(order), fontsize="small")
    return fig
