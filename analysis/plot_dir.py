"""Which plots a run or sweep directory supports, and writing them.

`plan_plots` inspects a directory and returns the plots to draw (as deferred jobs, so a
caller can show progress), the plots it skips with the reason, and notes (sweep cell counts,
throughput at SLO). Nothing is skipped without a line saying why.
- run directory: JCT CDF; a timeline per policy when `iterations.parquet` exists; a Gantt
  chart when `spans.parquet` exists.
- sweep directory: latency against rate and against CV, when each takes more than one
  value, one figure per combination of the other varying parameters.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd
from matplotlib.figure import Figure

from analysis.labels import policy_labels
from analysis.load import SCHEDULER_PARAM_COLUMNS, RunData, SweepData, kind_of, load_run, load_sweep
from analysis.plots.cdf import plot_jct_cdf
from analysis.plots.gantt import plot_gantt
from analysis.plots.style import save
from analysis.plots.sweep import X_TITLES, plot_vs
from analysis.plots.timeline import plot_timeline
from analysis.slo import NORM_LATENCY_COLUMNS, throughput_at_slo
from analysis.sweep import label, line_keys, panel_keys, sweep_panels


@dataclass(frozen=True)
class PlotJob:
    filename: str
    make: Callable[[], Figure]


@dataclass
class PlotPlan:
    jobs: list[PlotJob] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def file_stem(text: str) -> str:
    """'skip-join-mlfq (proactive)' -> 'skip-join-mlfq_proactive'; 'cv=2 / tp=4' -> 'cv-2_tp-4'."""
    return re.sub(r"[^A-Za-z0-9.-]+", "_", text.replace("=", "-")).strip("_")


def _device_capacity_blocks(run: RunData, policy: str) -> int | None:
    """The device KV blocks of all the run's replicas under `policy`, from config.json."""
    cfg = run.config.get("policies", {}).get(policy) if isinstance(run.config.get("policies"), dict) else None
    if not isinstance(cfg, dict) or not isinstance(cfg.get("device_kv_tokens"), int):
        return None
    from analysis.run_metrics import num_replicas

    return cfg["device_kv_tokens"] // int(cfg.get("block_size_tokens") or 1) * (num_replicas(run) or 1)


def plan_run_plots(run: RunData, max_gantt_requests: int = 40) -> PlotPlan:
    plan = PlotPlan()
    name = run.path.resolve().name
    requests = run.requests
    if (requests["status"] == "finished").any():
        plan.jobs.append(PlotJob("jct_cdf.png", lambda: plot_jct_cdf(requests, title=f"JCT CDF: {name}")))
    else:
        plan.skipped.append(f"{run.path / 'requests.parquet'}: no finished request: JCT CDF skipped")
    if run.iterations is None:
        plan.skipped.append("no iterations.parquet: timeline skipped")
    else:
        labelled = requests.assign(label=policy_labels(requests))
        for text, reqs in labelled.groupby("label", sort=False):
            policy, swap = reqs["policy"].iloc[0], reqs["swap"].iloc[0]
            its = run.iterations
            rows = its[(its["policy"] == policy) & (its["swap"].isna() if pd.isna(swap) else its["swap"] == swap)]
            if rows.empty:
                plan.skipped.append(f"no iterations.parquet rows for {text}: its timeline skipped")
                continue
            arrivals = reqs["arrival_s"].to_numpy(float)
            capacity = _device_capacity_blocks(run, policy)
            plan.jobs.append(PlotJob(
                f"timeline_{file_stem(text)}.png",
                lambda rows=rows, arrivals=arrivals, text=text, cap=capacity:
                    plot_timeline(rows, arrivals, title=f"Timeline: {text}", device_capacity_blocks=cap),
            ))
    if run.spans is None:
        plan.skipped.append("no spans.parquet: Gantt skipped")
    else:
        plan.jobs.append(PlotJob(
            "gantt.png",
            lambda: plot_gantt(requests, run.spans, max_gantt_requests, title=f"Gantt chart: {name}"),
        ))
    plan.skipped.append("run directory: latency against rate and CV needs a sweep directory")
    return plan


def _slo_note(summary: pd.DataFrame, panel: str, slo_s: float, stat: str) -> str:
    at = throughput_at_slo(summary, slo_s, stat)
    keys = line_keys(summary, "rate")
    parts = []
    for _, row in at.iterrows():
        rate, bracket = row["throughput_at_slo_rps"], row["slo_bracket"]
        if bracket == "below_range":
            parts.append(f"{label(row, keys)} over the SLO at every rate")
        else:
            parts.append(f"{label(row, keys)} {'>= ' if bracket == 'at_least' else ''}{rate:.3g} req/s")
    where = f" [{panel}]" if panel else ""
    return (f"throughput at SLO{where} ({stat} normalized latency <= {slo_s:g} s/token, linear "
            f"interpolation between swept rates): {'; '.join(parts)}")


def plan_sweep_plots(sweep: SweepData, slo_s: float | None = None, stat: str = "p95") -> PlotPlan:
    plan = PlotPlan()
    counts = sweep.counts()
    total = len(sweep.cells)
    if counts["failed"] or counts["pending"]:
        plan.notes.append(
            f"{counts['failed']} of {total} cells failed and {counts['pending']} are pending: "
            f"absent from the plots (see {sweep.path / 'cells.csv'})"
        )
    summary = sweep.summary
    missing = [c for c in ("jct_mean_s", "jct_p99_s", NORM_LATENCY_COLUMNS[stat]) if c not in summary]
    if missing:
        plan.skipped.append(f"{sweep.path / 'summary.csv'}: missing column(s) {', '.join(missing)}: sweep plots skipped")
        return plan
    if slo_s is None:
        plan.skipped.append("no --slo-s: SLO line and throughput at SLO skipped")
    swept = [c for c in SCHEDULER_PARAM_COLUMNS if c in summary and summary[c].nunique() > 1
             and pd.api.types.is_numeric_dtype(summary[c])]
    for x in ("rate", "cv", *swept):
        if x not in summary:
            plan.skipped.append(f"no {x} column in summary.csv: latency vs {X_TITLES[x]} skipped")
            continue
        values = summary[x].nunique()
        if values < 2:
            plan.skipped.append(f"{x} takes {values} value(s): latency vs {X_TITLES[x]} skipped")
            continue
        for panel, rows in sweep_panels(summary, x):
            stem = f"latency_vs_{x}" + (f"_{file_stem(panel)}" if panel else "")
            plan.jobs.append(PlotJob(
                f"{stem}.png",
                lambda rows=rows, x=x, panel=panel: plot_vs(rows, x, slo_s, stat, subtitle=panel),
            ))
            if x == "rate" and slo_s is not None:
                plan.notes.append(_slo_note(rows, panel, slo_s, stat))
    if "rate" in summary and panel_keys(summary, "rate"):
        plan.notes.append(f"one figure per combination of {', '.join(panel_keys(summary, 'rate'))}")
    return plan


def plan_plots(path: str | Path, slo_s: float | None = None, stat: str = "p95",
               max_gantt_requests: int = 40) -> PlotPlan:
    if kind_of(path) == "sweep":
        return plan_sweep_plots(load_sweep(path), slo_s, stat)
    plan = plan_run_plots(load_run(path), max_gantt_requests)
    if slo_s is not None:
        plan.skipped.append("--slo-s applies to sweep directories: not used for a run directory")
    return plan


def write_plots(plan: PlotPlan, out_dir: str | Path, progress: Callable[[Iterable], Iterable] = iter) -> list[Path]:
    """Draw and save every job of `plan` under `out_dir`; returns the paths written."""
    written = []
    for job in progress(plan.jobs):
        written.append(save(job.make(), Path(out_dir) / job.filename))
    return written
