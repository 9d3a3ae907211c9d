"""Figure creation, colours and saving, shared by every plot.

Figures are `matplotlib.figure.Figure` objects on an Agg canvas, created inside a seaborn
style context, so plotting changes no global matplotlib state. A policy keeps its colour in
every plot (the registry's order picks it), so figures can be compared side by side.
"""

from __future__ import annotations

import itertools
from pathlib import Path

import seaborn as sns
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

# The policy registry's names, in the order that picks their colours.
KNOWN_POLICIES = ("fcfs", "vllm-fcfs", "mlfq", "skip-join-mlfq", "srpt")
STYLE = "whitegrid"


def new_figure(nrows: int = 1, ncols: int = 1, width_in: float = 7.0, height_in: float = 4.5,
               sharex: bool = False):
    """A constrained-layout figure and its 2-D array of axes."""
    with sns.axes_style(STYLE), sns.plotting_context("notebook"):
        fig = Figure(figsize=(width_in, height_in), layout="constrained")
        FigureCanvasAgg(fig)
        axes = fig.subplots(nrows, ncols, sharex=sharex, squeeze=False)
    return fig, axes


def colors(labels: list[str]) -> dict[str, tuple]:
    """A colour per line label; a label that starts with a known policy gets that policy's."""
    palette = sns.color_palette("colorblind", 10)
    out: dict[str, tuple] = {}
    spare = itertools.cycle(palette[len(KNOWN_POLICIES):] + palette[:len(KNOWN_POLICIES)])
    for label in labels:
        # "dir:skip-join-mlfq (proactive)" -> "skip-join-mlfq"; a policy's second line (another
        # swap mode or run) takes a spare colour so that no two lines share one
        name = label.split(":")[-1].split(" ")[0]
        if name in KNOWN_POLICIES and palette[KNOWN_POLICIES.index(name)] not in out.values():
            out[label] = palette[KNOWN_POLICIES.index(name)]
        else:
            out[label] = next(spare)
    return out


def save(fig: Figure, path: str | Path, dpi: int = 150) -> Path:
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(p, dpi=dpi)
    return p
