"""JCT CDF: one empirical CDF line per policy (and swap mode, and run, when those vary).

Only finished requests have a JCT. The title states how many rejected and unfinished
requests each figure leaves out, so a policy that abandons work cannot look better unseen.
The x axis turns logarithmic when JCTs span more than two decades (bursty traces do).
Up to `MAX_STEPS` requests per line the ECDF is drawn step by step (seaborn's ecdfplot);
above that, as the exact JCT quantiles at `MAX_STEPS` + 1 evenly spaced fractions, which
looks the same and keeps a million-request run from drawing a million-vertex line.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import seaborn as sns
from matplotlib.figure import Figure

from analysis.labels import policy_labels
from analysis.plots.style import colors, new_figure

LOG_SPAN_RATIO = 100.0
MAX_STEPS = 5000


def plot_jct_cdf(requests: pd.DataFrame, title: str = "JCT CDF", log_x: bool | None = None) -> Figure:
    """`requests` needs policy, swap, status, jct_s (and `run` to label several runs)."""
    df = requests.assign(label=policy_labels(requests))
    done = df[df["status"] == "finished"]
    if done.empty:
        raise ValueError("no finished requests: a JCT CDF needs at least one")
    num_excluded = int((df["status"] != "finished").sum())
    labels = list(dict.fromkeys(df["label"]))
    palette = colors(labels)
    fig, axes = new_figure()
    ax = axes[0, 0]
    for label in labels:
        jct = done.loc[done["label"] == label, "jct_s"]
        text = f"{label} (n={len(jct)})"
        if 0 < len(jct) <= MAX_STEPS:
            sns.ecdfplot(x=jct.to_numpy(), ax=ax, label=text, color=palette[label])
        elif len(jct):
            fractions = np.linspace(0.0, 1.0, MAX_STEPS + 1)
            quantiles = np.quantile(jct.to_numpy(), fractions, method="inverted_cdf")
            ax.plot(quantiles, fractions, drawstyle="steps-post", label=text, color=palette[label])
    if log_x is None:
        lowest = done["jct_s"][done["jct_s"] > 0].min()
        log_x = bool(lowest > 0 and done["jct_s"].max() / lowest > LOG_SPAN_RATIO)
    if log_x:
        ax.set_xscale("log")
    ax.set_xlabel("Job completion time, JCT (s)" + (", log scale" if log_x else ""))
    ax.set_ylabel("Fraction of finished requests")
    suffix = f" ({num_excluded} rejected or unfinished not shown)" if num_excluded else ""
    ax.set_title(title + suffix)
    # outside the axes: every curve ends at the top right and the fastest policy starts at the lower right
    ax.legend(title="policy", loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0.0)
    return fig
