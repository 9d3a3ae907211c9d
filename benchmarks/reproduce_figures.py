"""Figures 1 and 2 of the reproduction: the single-GPU rate sweeps and the 175B burstiness sweep.

Each function reads the sweep summaries in a `FigureData`, writes one PNG under `out_dir` and
returns the markdown (tables, and our numbers next to the paper's claims) that
`benchmarks/reproduce.py` prints and splices into docs/reproduction.md. Every number in a
table is a mean over the sweep's seeds, computed here from `summary.csv`; nothing is typed in.
"""

from __future__ import annotations

import math

import pandas as pd
from reproduce_common import (
    SLO_S,
    FigureData,
    FigureReport,
    fmt,
    keeps_up,
    md_table,
    ratio,
    seed_means,
)

from analysis.plots.style import colors, new_figure, save
from analysis.slo import throughput_at_slo

POLICIES = ("fcfs", "vllm-fcfs", "mlfq", "skip-join-mlfq", "srpt")
FIG1_DATASETS = (("fig1_sharegpt", "ShareGPT-like"), ("fig1_alpaca", "Alpaca-like"))
STATS = (("mean", "norm_latency_mean_s"), ("p95", "norm_latency_p95_s"))
# Distinct markers and dashes, so that policies with identical results (fcfs and vllm-fcfs
# when memory does not bind) stay visible on top of each other.
LINE_STYLES = {
    "fcfs": {"marker": "s", "linestyle": "--", "markersize": 9, "markerfacecolor": "none"},
    "vllm-fcfs": {"marker": "o"}, "mlfq": {"marker": "^", "linestyle": "--", "markersize": 9,
                                          "markerfacecolor": "none"},
    "skip-join-mlfq": {"marker": "v"}, "srpt": {"marker": "D"},
}


def _present(frame: pd.DataFrame) -> list[str]:
    return [p for p in POLICIES if p in set(frame["policy"])]


def _slo_text(rate: float, bracket: str) -> str:
    if bracket == "below_range":
        return "below the lowest rate"
    return ("≥ " if bracket == "at_least" else "") + fmt(rate)


def _fig1_panel(axes, summary: pd.DataFrame, title: str, palette: dict) -> dict:
    """Draw one dataset's row of panels; returns {stat: throughput-at-SLO frame}."""
    at = {}
    means = seed_means(summary, ["policy", "rate"], [c for _, c in STATS])
    for ax, (stat, column) in zip(axes, STATS, strict=True):
        at[stat] = throughput_at_slo(summary, SLO_S, stat).set_index("policy")
        for policy in _present(means):
            g = means[means["policy"] == policy]
            ax.plot(g["rate"], g[column], label=policy, color=palette[policy], **LINE_STYLES[policy])
            rate = at[stat].loc[policy, "throughput_at_slo_rps"]
            if math.isfinite(rate):
                ax.scatter([rate], [SLO_S], marker="*", s=160, color=palette[policy], edgecolor="black", zorder=5)
        ax.axhline(SLO_S, linestyle="--", color="black", linewidth=1, label=f"SLO {SLO_S:g} s/token")
        ax.set_yscale("log")
        ax.set_xlabel("Arrival rate (req/s)")
        ax.set_ylabel(f"{stat} normalized latency (s/token)")
        ax.set_title(f"{title}: {stat} normalized latency")
    axes[0].legend(fontsize="small")
    return at


def fig1(data: FigureData) -> FigureReport:
    """Mean and p95 normalized latency against rate, and the throughput at the SLO."""
    present = [(n, t) for n, t in FIG1_DATASETS if n in data.summaries]
    fig, axes = new_figure(len(present), 2, width_in=13.0, height_in=4.6 * len(present))
    palette = colors(list(POLICIES))
    parts = []
    claims = []
    for row, (name, title) in enumerate(present):
        summary = data.summaries[name]
        at = _fig1_panel(axes[row], summary, title, palette)
        policies = _present(summary)
        p95 = at["p95"]["throughput_at_slo_rps"]
        rows = [[p, _slo_text(at["mean"].loc[p, "throughput_at_slo_rps"], at["mean"].loc[p, "slo_bracket"]),
                 _slo_text(p95[p], at["p95"].loc[p, "slo_bracket"]), ratio(p95[p], p95.get("fcfs", math.nan))]
                for p in policies]
        parts.append(f"**{title}: throughput at {SLO_S:g} s/token** (req/s; linear interpolation "
                     f"between swept rates; ≥ = met at every rate swept)\n\n"
                     + md_table(rows, ["policy", "by mean norm. latency", "by p95 norm. latency", "p95-based, × fcfs"]))
        means = seed_means(summary, ["policy", "rate"], [c for _, c in STATS] + ["throughput_rps"])
        rates = sorted(means["rate"].unique())
        lat_rows = []
        for p in policies:
            g = means[means["policy"] == p].set_index("rate")
            lat_rows.append([p] + [f"{fmt(g.loc[r, STATS[0][1]])} / {fmt(g.loc[r, STATS[1][1]])}"
                                   + ("" if keeps_up(g.loc[r, "throughput_rps"], r) else " †") for r in rates])
        parts.append(f"**{title}: normalized latency, mean / p95 (s/token)** († = throughput under "
                     f"90% of the arrival rate: overloaded)\n\n"
                     + md_table(lat_rows, ["policy"] + [f"{fmt(r)} req/s" for r in rates]))
        sj, vl, fc = (p95.get(p, math.nan) for p in ("skip-join-mlfq", "vllm-fcfs", "fcfs"))
        claims.append([f"{title}: throughput at SLO (p95), skip-join-mlfq vs vllm-fcfs",
                       "higher (issue gives no number)", f"{fmt(ratio(sj, vl))}× ({fmt(sj)} vs {fmt(vl)} req/s)"])
        claims.append([f"{title}: same, vs fcfs (Orca)", "higher (issue gives no number)",
                       f"{fmt(ratio(sj, fc))}× ({fmt(sj)} vs {fmt(fc)} req/s)"])
    fig.suptitle("Fig 1: OPT-13B on one A100-80GB (roofline), max batch 16; mean of seeds; "
                 "★ = throughput at the SLO")
    image = save(fig, data.out_dir / "fig1_latency_vs_rate.png")
    parts.insert(0, "**Paper vs ours**\n\n" + md_table(claims, ["claim", "paper", "ours"]))
    parts.insert(1, f"![Fig 1](reproduction/{image.name})")
    return FigureReport("\n\n".join(parts), [image], claims)


FIG2_METRICS = (("jct_mean_s", "mean JCT"), ("jct_p99_s", "p99 JCT"), ("norm_latency_mean_s", "mean norm. latency"))


def fig2_speedups(summary: pd.DataFrame) -> pd.DataFrame:
    """Per (rate, cv, policy): seed means and FCFS's value / the policy's, per metric."""
    cols = [m for m, _ in FIG2_METRICS]
    means = seed_means(summary, ["rate", "cv", "policy"], cols + ["throughput_rps"])
    base = means[means["policy"] == "fcfs"].set_index(["rate", "cv"])[cols]
    joined = means.join(base, on=["rate", "cv"], rsuffix="_fcfs")
    for m in cols:
        joined[f"{m}_speedup"] = joined[f"{m}_fcfs"] / joined[m]
    return joined


def fig2(data: FigureData) -> FigureReport:
    """Mean and p99 JCT of each policy relative to FCFS (Orca) against burstiness."""
    sp = fig2_speedups(data.summaries["fig2_opt175b"])
    rates = sorted(sp["rate"].unique())
    palette = colors(list(POLICIES))
    fig, axes = new_figure(len(rates), len(FIG2_METRICS), width_in=15.0, height_in=4.2 * len(rates))
    for row, rate in enumerate(rates):
        g_rate = sp[sp["rate"] == rate]
        for ax, (metric, title) in zip(axes[row], FIG2_METRICS, strict=True):
            for policy in _present(g_rate):
                g = g_rate[g_rate["policy"] == policy]
                ax.plot(g["cv"], g[f"{metric}_speedup"], label=policy, color=palette[policy], **LINE_STYLES[policy])
            ax.axhline(1.0, color="black", linewidth=0.8)
            ax.set_xlabel("Burstiness: inter-arrival CV")
            ax.set_ylabel(f"FCFS {title} / policy's")
            ax.set_title(f"{title} speedup vs FCFS, {fmt(rate)} req/s")
    axes[0, 0].legend(fontsize="small")
    fig.suptitle("Fig 2: OPT-175B, TP 8 x PP 2 on 16 A100-80GB (roofline), Gamma arrivals; >1 = better than FCFS")
    image = save(fig, data.out_dir / "fig2_speedup_vs_cv.png")

    policies = [p for p in _present(sp) if p != "fcfs"]
    rows = []
    for (rate, cv), g in sp.groupby(["rate", "cv"], sort=True):
        g = g.set_index("policy")
        rows.append([fmt(rate), fmt(cv), f"{fmt(g.loc['fcfs', 'jct_mean_s'])} / {fmt(g.loc['fcfs', 'jct_p99_s'])}"]
                    + [f"{fmt(g.loc[p, 'jct_mean_s_speedup'])} / {fmt(g.loc[p, 'jct_p99_s_speedup'])}" for p in policies])
    table = md_table(rows, ["rate (req/s)", "CV", "fcfs mean / p99 JCT (s)"] + [f"{p} ×mean / ×p99" for p in policies])
    sj = sp[sp["policy"] == "skip-join-mlfq"]
    claims = []
    for metric, title, paper in (("jct_mean_s", "mean JCT", "up to 5.1×"), ("jct_p99_s", "p99 (tail) JCT", "up to 6.4×"),
                                 ("norm_latency_mean_s", "mean normalized latency", "(not reported)")):
        best = sj.loc[sj[f"{metric}_speedup"].idxmax()] if len(sj) else None
        ours = "n/a" if best is None else (
            f"up to {fmt(best[f'{metric}_speedup'])}× (at {fmt(best['rate'])} req/s, CV {fmt(best['cv'])}); "
            f"range {fmt(sj[f'{metric}_speedup'].min())}–{fmt(sj[f'{metric}_speedup'].max())}×")
        claims.append([f"skip-join-mlfq vs fcfs (Orca): {title}", paper, ours])
    md = ("**Paper vs ours**\n\n" + md_table(claims, ["claim", "paper", "ours"])
          + f"\n\n![Fig 2](reproduction/{image.name})\n\n"
          + "**JCT relative to FCFS** (FCFS's JCT / the policy's: > 1 is faster; mean of seeds)\n\n" + table)
    return FigureReport(md, [image], claims)
