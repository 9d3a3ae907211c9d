"""Fig 4 of the reproduction, the regime map: where skip-join MLFQ beats FCFS, and by how much.

Two slices of the space that decides it, each a load-relative sweep (see
`reproduce_common.LOAD_RELATIVE`): output-length tail (lognormal sigma) x arrival burstiness
(Gamma CV) at a fixed share of the knee, and load (rate / knee) x memory pressure (device KV
tokens). Each heatmap cell is the baseline's value / skip-join's (> 1: skip-join better), mean
over seeds, for fcfs (Orca) and vllm-fcfs (paged FCFS), on mean JCT and p99 normalized latency.
"""

from __future__ import annotations

import re

import numpy as np
import pandas as pd
from reproduce_common import FigureData, FigureReport, fmt, keeps_up, long_results, md_table

from analysis.plots.style import new_figure, save

SJ = "skip-join-mlfq"
BASES = ("fcfs", "vllm-fcfs")
METRICS = (("jct_mean_s", "mean JCT"), ("norm_latency_p99_s", "p99 norm. latency"))


def _sigma(lengths: str) -> float:
    return float(re.search(r"output_sigma=([0-9.]+)", lengths).group(1))


def gains(summary: pd.DataFrame, keys: list[str]) -> pd.DataFrame:
    """Per `keys` (seed-mean): base / skip-join per metric and base, and who kept up."""
    cols = [m for m, _ in METRICS]
    means = summary.groupby(keys + ["policy"], sort=True)[cols + ["throughput_rps", "rate"]].mean().reset_index()
    sj = means[means["policy"] == SJ].set_index(keys)
    out = sj[[]].copy()
    for base in BASES:
        b = means[means["policy"] == base].set_index(keys)
        for m in cols:
            out[f"{base}:{m}"] = b[m] / sj[m]
        out[f"{base}:keeps_up"] = keeps_up(b["throughput_rps"], b["rate"])
    out["sj:keeps_up"] = keeps_up(sj["throughput_rps"], sj["rate"])
    return out.reset_index()


def _heatmap(ax, table: pd.DataFrame, title: str, xlabel: str, ylabel: str) -> None:
    import seaborn as sns

    log = np.log10(table.astype(float))
    sns.heatmap(log, ax=ax, cmap="RdBu", center=0.0, vmin=-1, vmax=1, cbar=True,
                annot=table.map(lambda v: fmt(v, 2)), fmt="", annot_kws={"fontsize": 8},
                cbar_kws={"label": "log10(baseline / skip-join)"})
    ax.set_title(title, fontsize=9)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.invert_yaxis()


def fig4(data: FigureData) -> FigureReport:
    parts, results = [], []
    slices = []
    if "fig4_tail_burst" in data.summaries:
        s = data.summaries["fig4_tail_burst"].copy()
        s["sigma"] = s["lengths"].map(_sigma)
        slices.append(("tail × burstiness (load 0.8 of the knee, 80 GB KV)", gains(s, ["sigma", "cv"]),
                       "sigma", "cv", "output lognormal sigma", "arrival CV"))
    if "fig4_load_memory" in data.summaries:
        s = data.summaries["fig4_load_memory"].copy()
        s["load"] = (s["rate"] / s["knee_rps"]).round(2)
        s["kv_k"] = s["device_kv_tokens"] / 1000.0
        slices.append(("load × memory (sigma 1, Poisson)", gains(s, ["load", "kv_k"]),
                       "load", "kv_k", "load (rate / knee)", "device KV (k tokens)"))
    fig, axes = new_figure(len(slices), 4, width_in=22.0, height_in=4.6 * len(slices))
    for row, (title, g, y, x, ylabel, xlabel) in enumerate(slices):
        col = 0
        for base in BASES:
            for m, label in METRICS:
                table = g.pivot(index=y, columns=x, values=f"{base}:{m}")
                _heatmap(axes[row, col], table, f"{title}\n{base} / skip-join: {label}", xlabel, ylabel)
                col += 1
        rows = [[fmt(r[y]), fmt(r[x])] + [fmt(r[f"{b}:{m}"]) for b in BASES for m, _ in METRICS]
                + [", ".join(p for p, k in (("fcfs", "fcfs:keeps_up"), ("vllm-fcfs", "vllm-fcfs:keeps_up"),
                                            ("skip-join", "sj:keeps_up")) if not r[k]) or "—"]
                for _, r in g.iterrows()]
        parts.append(f"**Regime map, {title}: baseline's value / skip-join's** (> 1: skip-join better; mean of seeds)\n\n"
                     + md_table(rows, [ylabel, xlabel] + [f"{b}: {lab}" for b in BASES for _, lab in METRICS]
                                + ["overloaded (< 90% of rate)"]))
        results.append(long_results(g, f"regime map: {title}", [y, x], [f"{b}:{m}" for b in BASES for m, _ in METRICS]))
    fig.suptitle("Fig 4: where skip-join MLFQ beats FCFS. OPT-13B (A100-80GB costs), lognormal lengths (prompt 500, "
                 "output 200 tokens on average); blue = skip-join better, red = worse")
    image = save(fig, data.out_dir / "fig4_regime_map.png")
    res = pd.concat(results, ignore_index=True)
    claims = [_claim(slices)]
    md = f"![Fig 4](reproduction/{image.name})\n\n" + "\n\n".join(parts)
    return FigureReport(md, [image], claims, res)


def _claim(slices) -> list[str]:
    """The map's headline: the range of skip-join's gain over vllm-fcfs where both keep up."""
    frames = [g for _, g, *_ in slices]
    g = pd.concat(frames, ignore_index=True)
    ok = g[g["vllm-fcfs:keeps_up"] & g["sj:keeps_up"]]
    jct, tail = ok["vllm-fcfs:jct_mean_s"], ok["vllm-fcfs:norm_latency_p99_s"]
    return ["regime map: skip-join over vllm-fcfs where both keep up", "(no regime map in the paper)", "—",
            f"mean JCT {fmt(jct.min())}–{fmt(jct.max())}×, p99 normalized latency {fmt(tail.min())}–{fmt(tail.max())}×",
            "the order pays in the tail of normalized latency when output lengths are heavy-tailed; with "
            "light-tailed lengths and bursty arrivals it costs mean JCT"]
