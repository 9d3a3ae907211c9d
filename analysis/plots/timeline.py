"""A run timeline: arrivals, queue length per MLFQ level, KV use, swap traffic, over time.

Four stacked panels sharing the time axis, drawn from `analysis.timeline.timeline` (binned,
summed over replicas; see its conventions). The queue panel shows one line per MLFQ level
that ever held a job, or the total queued jobs for policies without levels. Series the run
lacks are left out and the panel says so, rather than drawing zeros that were never measured.
"""

from __future__ import annotations

import pandas as pd
import seaborn as sns
from matplotlib.figure import Figure

from analysis.plots.style import new_figure
from analysis.timeline import timeline

SERIES_NAMES = {
    "arrivals_rps": "arrivals",
    "num_queued": "queued (all levels)",
    "device_kv_blocks_used": "device KV",
    "host_kv_blocks_used": "host KV",
    "swap_out_tokens_per_s": "swap out (device to host)",
    "swap_in_tokens_per_s": "swap in (host to device)",
}


KV_NOTE = ("device KV is sampled when each batch is planned: it may count room that swap-outs still in flight\n"
           "are vacating (the batch waits for them), so it can pass the capacity briefly")


def _draw(ax, series: pd.DataFrame, columns: list[str], ylabel: str, empty_note: str) -> None:
    if not columns:
        ax.text(0.5, 0.5, empty_note, transform=ax.transAxes, ha="center", va="center")
    else:
        palette = sns.color_palette("colorblind", len(columns))
        for c, color in zip(columns, palette, strict=True):
            name = SERIES_NAMES.get(c, c.replace("queue_level_", "level "))
            sns.lineplot(x=series["time_s"].to_numpy(), y=series[c].to_numpy(), drawstyle="steps-post",
                         errorbar=None, ax=ax, color=color, label=name)
        ax.legend(loc="best", fontsize="small", ncol=2 if len(columns) > 4 else 1)
    ax.set_ylabel(ylabel)
    ax.ticklabel_format(axis="y", useOffset=False)
    ax.set_ylim(bottom=0)  # counts and rates: a floating baseline would exaggerate wiggles


def plot_timeline(iterations: pd.DataFrame, arrivals_s, title: str = "Run timeline",
                  num_bins: int = 200, device_capacity_blocks: int | None = None) -> Figure:
    """`iterations`: one policy's rows (all replicas); `arrivals_s`: its requests' arrivals;
    `device_capacity_blocks`: the device KV of all replicas, drawn as a line when known."""
    tl = timeline(iterations, arrivals_s, num_bins)
    s = tl.series
    fig, axes = new_figure(4, 1, width_in=10.0, height_in=10.0, sharex=True)
    ax_arr, ax_queue, ax_kv, ax_swap = axes[:, 0]
    _draw(ax_arr, s, ["arrivals_rps"], "Arrivals (req/s)", "")
    queue_cols = tl.levels or [c for c in ["num_queued"] if c in s]
    _draw(ax_queue, s, queue_cols, "Queued jobs", "no queue columns in iterations.parquet")
    if tl.unused_levels:
        ax_queue.set_title(f"levels never used (not drawn): {', '.join(map(str, tl.unused_levels))}",
                           fontsize="small", loc="left")
    _draw(ax_kv, s, [c for c in ("device_kv_blocks_used", "host_kv_blocks_used") if c in s],
          "KV blocks used", "no KV columns in iterations.parquet")
    if device_capacity_blocks is not None and "device_kv_blocks_used" in s:
        ax_kv.axhline(device_capacity_blocks, color="black", linestyle="--", linewidth=0.8, label="device capacity")
        ax_kv.legend(loc="best", fontsize="small")
        # The gauge is sampled when a batch is planned: planning may already place KV into
        # blocks that in-flight swap-outs are vacating, and the batch waits until they land.
        ax_kv.set_title(KV_NOTE, fontsize="small", loc="left")
    _draw(ax_swap, s, [c for c in ("swap_out_tokens_per_s", "swap_in_tokens_per_s") if c in s],
          "Swap traffic (tokens/s)", "no swap columns: this run does not swap")
    ax_swap.set_xlabel("Time since trace start (s)")
    bin_s = float(s["bin_s"].iloc[0])
    width = f"{bin_s:.3g} s" if bin_s >= 1 else f"{bin_s * 1000:.3g} ms"
    fig.suptitle(f"{title} (bins of {width}, summed over replicas)")
    return fig
