"""Figures of one profile: prefill and decode latency surfaces (as line families) and swap curves.

Imports matplotlib lazily (Agg backend), so `import profiles` stays light. Plots the grid
points as stored, nothing interpolated.
"""

from __future__ import annotations

from pathlib import Path

from profiles.schema import LatencyGrid, Profile


def _families(ax, grid: LatencyGrid, xlabel: str, title: str, max_lines: int = 8) -> None:
    step = max(1, -(-len(grid.batch_sizes) // max_lines))
    for batch, row in list(zip(grid.batch_sizes, grid.latency_s, strict=True))[::step]:
        ax.plot(grid.tokens, [v * 1e3 for v in row], marker=".", label=f"batch {batch}")
    ax.set(xscale="log", yscale="log", xlabel=xlabel, ylabel="iteration latency (ms)", title=title)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize="small")


def plot_profile(profile: Profile, path: str | Path) -> Path:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 3, figsize=(16, 4.8), constrained_layout=True)
    _families(axes[0], profile.prefill, "prompt tokens per job", "prefill")
    _families(axes[1], profile.decode, "context tokens per job", "decode")
    ax = axes[2]
    for curve, label, style in ((profile.swap_out, "out (device to host)", "-"),
                                (profile.swap_in, "in (host to device)", "--")):
        ax.plot(curve.size_bytes, [v * 1e3 for v in curve.latency_s], style, marker=".", label=label)
    ax.set(xscale="log", yscale="log", xlabel="KV bytes moved", ylabel="swap latency (ms)", title="swap")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize="small")
    fig.suptitle(f"{profile.name} ({profile.source}, {profile.model.dtype})")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path
