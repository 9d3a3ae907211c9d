"""A one-figure picture of a trace: prompt and output length histograms and arrival rate.

Imports matplotlib (Agg backend, no display needed) and seaborn, so it is imported only when
a plot is asked for.
"""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import seaborn as sns  # noqa: E402
from matplotlib.ticker import LogLocator, MaxNLocator  # noqa: E402

from traces.trace import Trace  # noqa: E402

NUM_RATE_BINS = 60


def plot_trace(trace: Trace, path: str | Path) -> None:
    """Write a PNG with three panels: prompt lengths, output lengths, arrivals per second."""
    fig = trace_figure(trace)
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)


def trace_figure(trace: Trace):
    """The figure `plot_trace` saves."""
    if len(trace) == 0:
        raise ValueError(f"{trace.source}: cannot plot an empty trace")
    sns.set_theme(style="whitegrid")
    fig, axes = plt.subplots(1, 3, figsize=(15, 4), layout="constrained")
    for ax, tokens, label in (
        (axes[0], trace.prompt_tokens, "prompt tokens"),
        (axes[1], trace.output_tokens, "output tokens"),
    ):
        # Heavy tails (e.g. Azure outputs) are unreadable on a linear axis.
        sns.histplot(
            x=tokens, bins=50, ax=ax, log_scale=bool(tokens.max() > 20 * np.median(tokens))
        )
        # long-tailed lengths put many decades on the axis: a few labels, so they never collide
        ax.xaxis.set_major_locator(LogLocator(numticks=5) if ax.get_xscale() == "log" else MaxNLocator(5))
        ax.set(
            xlabel=label,
            ylabel="requests",
            title=f"{label}: mean {tokens.mean():,.0f}, p99 {np.percentile(tokens, 99):,.0f}",
        )
    arrival_s = trace.arrival_s
    span_s = max(float(arrival_s[-1] - arrival_s[0]), 1e-9)
    bin_s = span_s / NUM_RATE_BINS
    # Weights of 1/bin width turn counts per bin into requests per second.
    sns.histplot(
        x=arrival_s,
        binwidth=bin_s,
        weights=np.full(len(trace), 1 / bin_s),
        element="step",
        fill=False,
        ax=axes[2],
    )
    stats = trace.stats()
    axes[2].set(
        xlabel="time (s)",
        ylabel="arrival rate (req/s)",
        title=f"rate {stats['rate_rps']:.3g} req/s, inter-arrival CV {stats['interarrival_cv']:.3g}",
    )
    fig.suptitle(trace.source, fontsize=9)
    return fig
