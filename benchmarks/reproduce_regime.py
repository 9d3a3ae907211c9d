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
    """Per `keys`: base / skip-join per metric and base on the seed means, the range of the
    same ratio over single seeds (`:min`, `:max`), and who kept up."""
    cols = [m for m, _ in METRICS]
    means = summary.groupby(keys + ["policy"], sort=True)[cols + ["throughput_rps", "rate"]].mean().reset_index()
    per_seed = summary.set_index(keys + ["seed"])
    sj_seed = per_seed[per_seed["policy"] == SJ]
    sj = means[means["policy"] == SJ].set_index(keys)
    out = sj[[]].copy()
    for base in BASES:
        b = means[means["policy"] == base].set_index(keys)
        b_seed = per_seed[per_seed["policy"] == base]
        for m in cols:
            out[f"{base}:{m}"] = b[m] / sj[m]
            spread = (b_seed[m] / sj_seed[m]).groupby(level=keys).agg(["min", "max"])
            out[f"{base}:{m}:min"], out[f"{base}:{m}:max"] = spread["min"], spread["max"]
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
                       "sigma", "cv", "output lognormal sigma", "arrival CV", "fig4_tail_burst"))
    if "fig4_load_memory" in data.summaries:
        s = data.summaries["fig4_load_memory"].copy()
        s["load"] = (s["rate"] / s["knee_rps"]).round(2)
        s["kv_k"] = s["device_kv_tokens"] / 1000.0
        slices.append(("load × memory (sigma 1, Poisson)", gains(s, ["load", "kv_k"]),
                       "load", "kv_k", "load (rate / knee)", "device KV (k tokens)", "fig4_load_memory"))
    fig, axes = new_figure(len(slices), 4, width_in=22.0, height_in=4.6 * len(slices))
    for row, (title, g, y, x, ylabel, xlabel, name) in enumerate(slices):
        col = 0
        for base in BASES:
            for m, label in METRICS:
                table = g.pivot(index=y, columns=x, values=f"{base}:{m}")
                _heatmap(axes[row, col], table, f"{title}\n{base} / skip-join: {label}", xlabel, ylabel)
                col += 1
        rows = [[fmt(r[y]), fmt(r[x])] + [_with_spread(r, f"{b}:{m}") for b in BASES for m, _ in METRICS]
                + [", ".join(p for p, k in (("fcfs", "fcfs:keeps_up"), ("vllm-fcfs", "vllm-fcfs:keeps_up"),
                                            ("skip-join", "sj:keeps_up")) if not r[k]) or "—"]
                for _, r in g.iterrows()]
        seeds = data.summaries[name]["seed"].nunique()
        parts.append(f"**Regime map, {title}: baseline's value / skip-join's** (> 1: skip-join better; ratio of the "
                     f"means of {seeds} seeds, in brackets its range over single seeds)\n\n"
                     + md_table(rows, [ylabel, xlabel] + [f"{b}: {lab}" for b in BASES for _, lab in METRICS]
                                + ["overloaded (< 90% of rate)"]))
        results.append(long_results(g, f"regime map: {title}", [y, x],
                                    [f"{b}:{m}{part}" for b in BASES for m, _ in METRICS for part in ("", ":min", ":max")]))
    fig.suptitle("Fig 4: where skip-join MLFQ beats FCFS. OPT-13B (A100-80GB costs), lognormal lengths (prompt 500, "
                 "output 200 tokens on average); blue = skip-join better, red = worse")
    image = save(fig, data.out_dir / "fig4_regime_map.png")
    res = pd.concat(results, ignore_index=True)
    claims = [_claim(slices)]
    md = f"![Fig 4](reproduction/{image.name})\n\n" + "\n\n".join(parts)
    return FigureReport(md, [image], claims, res)


def _with_spread(row: pd.Series, column: str) -> str:
    low, high = row[f"{column}:min"], row[f"{column}:max"]
    return fmt(row[column]) if low == high else f"{fmt(row[column])} ({fmt(low)}–{fmt(high)})"


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
