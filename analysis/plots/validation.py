"""Simulated against measured JCT CDFs: one panel per policy, two empirical CDF lines in each.

The measured line is the live executor's run, the simulated line the simulator's run of the
same trace; the panel title names the policy and its mean-JCT error, and says how many
requests of each run did not finish (only finished requests have a JCT), so a gap in the
lines is never hidden. The x axis is shared, so panels compare at a glance.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from analysis.plots.style import new_figure

SOURCES = (("measured", "measured (live executor)", "tab:blue", "-"),
           ("simulated", "simulated", "tab:orange", "--"))


def _ecdf(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Step coordinates of the empirical CDF: (x, y) with y rising 1/n at each sorted value."""
    x = np.sort(values)
    return np.concatenate([[x[0]], x]), np.concatenate([[0.0], np.arange(1, len(x) + 1) / len(x)])


def plot_validation_cdf(measured: pd.DataFrame, simulated: pd.DataFrame, policies: list[str] | None = None) -> Figure:
    """`measured`, `simulated`: requests frames (policy, status, jct_s) of the two runs."""
    frames = {"measured": measured, "simulated": simulated}
    policies = policies or list(dict.fromkeys(measured["policy"]))
    fig, axes = new_figure(1, len(policies), width_in=4.2 * len(policies) + 1.0, height_in=4.2, sharex=True)
    for ax, policy in zip(axes[0], policies, strict=True):
        notes, means = [], {}
        for key, label, color, style in SOURCES:
            reqs = frames[key][frames[key]["policy"] == policy]
            done = reqs.loc[reqs["status"] == "finished", "jct_s"].to_numpy(np.float64)
            if len(done) == 0:
                raise ValueError(f"policy {policy}: no finished requests in the {key} run")
            x, y = _ecdf(done)
            ax.plot(x, y, drawstyle="steps-post", color=color, linestyle=style, label=f"{label} (n={len(done)})")
            means[key] = done.mean()
            if len(done) < len(reqs):
                notes.append(f"{len(reqs) - len(done)} {key} unfinished")
        error = (means["simulated"] - means["measured"]) / means["measured"]
        title = f"{policy}: mean JCT error {error:+.1%}"
        ax.set_title(title + (f"\n({', '.join(notes)})" if notes else ""), fontsize="medium")
        ax.set_xlabel("Job completion time, JCT (s)")
        ax.legend(loc="lower right", fontsize="small")
    axes[0][0].set_ylabel("Fraction of finished requests")
    fig.suptitle("JCT CDF: simulator against live executor")
    return fig
