"""Every plot's figure inspected: axes labels, number of lines, legend entries, drawn data."""

import math

import numpy as np
import pandas as pd
import pytest
from matplotlib.collections import PathCollection

from analysis.load import load_run
from analysis.plot_dir import plan_plots
from analysis.plots.cdf import plot_jct_cdf
from analysis.plots.gantt import plot_gantt
from analysis.plots.style import save
from analysis.plots.sweep import plot_vs
from analysis.plots.timeline import plot_timeline
from tests.analysis.fixtures import sweep_summary, write_sweep


def legend_texts(legend):
    return [t.get_text() for t in legend.get_texts()]


def test_jct_cdf(run_dir, tmp_path):
    run = load_run(run_dir)
    fig = plot_jct_cdf(run.requests, title="JCT CDF: run-a")
    (ax,) = fig.axes
    assert ax.get_xlabel() == "Job completion time, JCT (s)"
    assert ax.get_ylabel() == "Fraction of finished requests"
    assert ax.get_title() == "JCT CDF: run-a (3 rejected or unfinished not shown)"
    assert len(ax.get_lines()) == 2
    assert legend_texts(ax.get_legend()) == ["fcfs (n=3)", "skip-join-mlfq (n=4)"]
    fcfs = ax.get_lines()[0]
    # the ECDF steps through the finished JCTs 3, 5, 8 to 1.0
    assert sorted(set(fcfs.get_xdata()) - {-np.inf, np.inf}) == [3.0, 5.0, 8.0]
    assert fcfs.get_ydata()[-1] == 1.0
    assert ax.get_xscale() == "linear"
    path = save(fig, tmp_path / "cdf.png")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_jct_cdf_log_scale_and_several_runs(run_dir):
    reqs = load_run(run_dir).requests
    other = reqs.assign(jct_s=reqs["jct_s"] * 1000)
    both = pd.concat([reqs.assign(run="a"), other.assign(run="b")], ignore_index=True)
    ax = plot_jct_cdf(both).axes[0]
    assert ax.get_xscale() == "log"
    assert "log scale" in ax.get_xlabel()
    assert legend_texts(ax.get_legend()) == ["a:fcfs (n=3)", "a:skip-join-mlfq (n=4)", "b:fcfs (n=3)", "b:skip-join-mlfq (n=4)"]


def test_jct_cdf_needs_a_finished_request(run_dir):
    reqs = load_run(run_dir).requests.assign(status="rejected")
    with pytest.raises(ValueError, match="no finished requests"):
        plot_jct_cdf(reqs)


def test_latency_vs_rate_with_slo():
    s = sweep_summary()
    fig = plot_vs(s[s["cv"] == 1.0], "rate", slo_s=0.4, stat="p95", subtitle="cv=1.0")
    mean_ax, p99_ax, norm_ax = fig.axes
    assert [ax.get_xlabel() for ax in fig.axes] == ["Arrival rate (req/s)"] * 3
    assert [ax.get_ylabel() for ax in fig.axes] == ["Mean JCT (s)", "p99 JCT (s)", "p95 normalized latency (s/token)"]
    assert fig.get_suptitle() == "Latency vs arrival rate (cv=1.0); mean of 2 seeds, band = min-max"
    assert len(mean_ax.get_lines()) == 2 and len(p99_ax.get_lines()) == 2
    assert len(norm_ax.get_lines()) == 3  # two policies and the SLO line
    fcfs = mean_ax.get_lines()[0]
    assert fcfs.get_xdata().tolist() == [1.0, 2.0, 4.0]
    assert fcfs.get_ydata().tolist() == pytest.approx([3.0, 5.0, 9.0])  # 10 x the p95 means
    slo = norm_ax.get_lines()[2]
    assert list(slo.get_ydata()) == [0.4, 0.4]
    assert legend_texts(norm_ax.get_legend()) == [
        "fcfs", "skip-join-mlfq", "SLO 0.4 s/token",
        "fcfs: 1.5 req/s at SLO", "skip-join-mlfq: 3 req/s at SLO",
    ]
    stars = [c for c in norm_ax.collections if isinstance(c, PathCollection)]
    assert [tuple(c.get_offsets()[0]) for c in stars] == [pytest.approx((1.5, 0.4)), pytest.approx((3.0, 0.4))]
    bands = [c for c in mean_ax.collections if not isinstance(c, PathCollection)]
    assert len(bands) == 2 and len(mean_ax.collections) == 2  # seed spread, one band per policy


def test_latency_vs_rate_lower_bound_and_no_slo():
    s = sweep_summary()
    ax = plot_vs(s[s["cv"] == 2.0], "rate", slo_s=0.4).axes[2]
    # fcfs is over the SLO at every rate: no star; skip-join meets it everywhere: a lower bound
    assert legend_texts(ax.get_legend())[-1] == "skip-join-mlfq: ≥ 4 req/s at SLO"
    ax = plot_vs(s[s["cv"] == 2.0], "rate").axes[2]
    assert legend_texts(ax.get_legend()) == ["fcfs", "skip-join-mlfq"]
    assert len(ax.get_lines()) == 2


def test_latency_vs_cv_single_seed():
    s = sweep_summary()
    one = s[(s["rate"] == 2.0) & (s["seed"] == 0)]
    fig = plot_vs(one, "cv", slo_s=0.4)
    assert fig.axes[0].get_xlabel() == "Burstiness: inter-arrival CV"
    assert fig.get_suptitle() == "Latency vs burstiness (CV)"
    assert len(fig.axes[0].collections) == 0  # one seed: no band
    norm = fig.axes[2]
    assert len(norm.get_lines()) == 3  # no throughput-at-SLO stars against CV
    assert norm.get_lines()[1].get_ydata().tolist() == pytest.approx([0.15, 0.15])  # skip-join, seed 0


def test_latency_vs_a_scheduler_field():
    """A sweep over alpha_s (a SchedulerConfig axis) plots against it like rate; here the
    fixture's rates are relabelled as alpha_s values at one rate."""
    s = sweep_summary()
    one = s[s["cv"] == 1.0].assign(alpha_s=lambda d: d["rate"] / 10, rate=1.0)
    fig = plot_vs(one, "alpha_s", slo_s=0.4)
    assert fig.axes[0].get_xlabel() == "Scheduler alpha_s"
    assert fig.get_suptitle() == "Latency vs alpha_s; mean of 2 seeds, band = min-max"
    fcfs = fig.axes[0].get_lines()[0]
    assert fcfs.get_xdata().tolist() == pytest.approx([0.1, 0.2, 0.4])
    assert fcfs.get_ydata().tolist() == pytest.approx([3.0, 5.0, 9.0])
    assert len(fig.axes[2].get_lines()) == 3  # two policies and the SLO line; no stars off rate


def test_sweep_plan_adds_a_plot_per_swept_scheduler_field(tmp_path):
    sweep = write_sweep(tmp_path / "sweep")
    summary = pd.read_csv(sweep / "summary.csv")
    summary = summary[summary["cv"] == 1.0].assign(base_quantum_s=lambda d: d["rate"] / 100, rate=1.0)
    summary.to_csv(sweep / "summary.csv", index=False)
    names = [job.filename for job in plan_plots(sweep).jobs]
    assert names == ["latency_vs_base_quantum_s.png"]


def test_latency_vs_refuses_unsplit_panels_and_bad_x():
    with pytest.raises(ValueError, match="cv vary too: split the summary"):
        plot_vs(sweep_summary(), "rate")
    with pytest.raises(ValueError, match="x must be one of rate, cv"):
        plot_vs(sweep_summary(), "seed")


def test_log_y_when_values_span_decades():
    s = sweep_summary()
    s = s[s["cv"] == 1.0].copy()
    s.loc[s["rate"] == 4.0, "jct_mean_s"] *= 1000
    assert plot_vs(s, "rate").axes[0].get_yscale() == "log"


def test_timeline(run_dir):
    run = load_run(run_dir)
    its = run.iterations[run.iterations["policy"] == "skip-join-mlfq"]
    arrivals = run.requests.loc[run.requests["policy"] == "skip-join-mlfq", "arrival_s"].to_numpy()
    fig = plot_timeline(its, arrivals, title="Timeline: skip-join-mlfq", num_bins=6)
    arr, queue, kv, swap = fig.axes
    assert [ax.get_ylabel() for ax in fig.axes] == [
        "Arrivals (req/s)", "Queued jobs", "KV blocks used", "Swap traffic (tokens/s)",
    ]
    assert swap.get_xlabel() == "Time since trace start (s)"
    assert fig.get_suptitle() == "Timeline: skip-join-mlfq (bins of 667 ms, summed over replicas)"
    assert legend_texts(queue.get_legend()) == ["level 0", "level 1"]  # level 2 never held a job
    assert queue.get_title(loc="left") == "levels never used (not drawn): 2"
    assert legend_texts(kv.get_legend()) == ["device KV", "host KV"]
    assert legend_texts(swap.get_legend()) == ["swap out (device to host)", "swap in (host to device)"]
    # bins of 4/6 s: arrivals at 0, 1, 2, 3, 4 s -> bins 0, 1, 3, 4, 5 (4 s is the last edge)
    assert arr.get_lines()[0].get_ydata().tolist() == pytest.approx([1.5, 1.5, 0, 1.5, 1.5, 1.5])
    # swap out: 12 tokens issued at 0.5 s (bin [0, 2/3)) and 8 at 1.0 s (bin [2/3, 4/3)), per second
    swap_out = swap.get_lines()[0].get_ydata()
    assert swap_out.tolist() == pytest.approx([12 * 1.5, 8 * 1.5, 0, 0, 0, 0])


def test_timeline_without_levels_or_swaps(run_dir):
    run = load_run(run_dir)
    its = run.iterations[run.iterations["policy"] == "fcfs"]
    fig = plot_timeline(its, np.array([0.0, 1.0]), num_bins=5)
    queue, swap = fig.axes[1], fig.axes[3]
    assert legend_texts(queue.get_legend()) == ["queued (all levels)"]
    # replica 0 queues 1 job over 0..5 s, replica 1 none: exactly 1 in every bin
    assert queue.get_lines()[0].get_ydata().tolist() == [1.0] * 5
    assert len(swap.get_lines()) == 0
    assert swap.texts[0].get_text() == "no swap columns: this run does not swap"


def test_gantt(run_dir):
    run = load_run(run_dir)
    fig = plot_gantt(run.requests, run.spans, title="Gantt chart: run-a")
    fcfs_ax, sj_ax = fig.axes
    assert [ax.get_title(loc="left") for ax in fig.axes] == ["fcfs (1 rejected, not drawn)", "skip-join-mlfq"]
    assert sj_ax.get_xlabel() == "Time since trace start (s)"
    assert fcfs_ax.get_ylabel() == "Request id"
    assert [t.get_text() for t in fcfs_ax.get_yticklabels()] == ["0", "1", "2", "4"]
    assert [t.get_text() for t in sj_ax.get_yticklabels()] == ["0", "1", "2", "3", "4"]
    assert legend_texts(fig.legends[0]) == ["waiting (queued)", "running", "preempted", "swap out", "swap in"]
    bars = {c.get_label(): c for c in sj_ax.containers}
    assert set(bars) == {"waiting (queued)", "running", "preempted", "swap out", "swap in"}
    assert len(bars["running"]) == 7  # r0 two merged runs, r1 one, r2 two, r3 one, r4 one
    assert len(bars["preempted"]) == 3
    swap_out = bars["swap out"].patches[0]
    assert (swap_out.get_x(), swap_out.get_width()) == pytest.approx((1.0, 0.2))
    assert swap_out.get_y() + swap_out.get_height() / 2 == 0  # request 0's row
    assert "swap out" not in {c.get_label() for c in fcfs_ax.containers}
    fcfs_waiting = {c.get_label(): c for c in fcfs_ax.containers}["waiting (queued)"].patches
    # request 4 sits on row 3 (rejected request 3 has no row) and waits from 4 s to 7 s
    assert [(p.get_y() + p.get_height() / 2, p.get_x(), p.get_width()) for p in fcfs_waiting] == [
        (0, 0.0, 0.5), (2, 2.0, 1.0), (3, 4.0, 3.0),
    ]


def test_gantt_cuts_to_the_earliest_requests(run_dir):
    run = load_run(run_dir)
    fig = plot_gantt(run.requests, run.spans, max_requests=2)
    assert [ax.get_title(loc="left") for ax in fig.axes] == [
        "fcfs (first 2 of 4 requests; 1 rejected, not drawn)", "skip-join-mlfq (first 2 of 5 requests)",
    ]
    assert [t.get_text() for t in fig.axes[1].get_yticklabels()] == ["0", "1"]
    assert not math.isnan(fig.axes[1].get_xlim()[1])


def test_jct_cdf_of_a_large_run_draws_quantiles(run_dir):
    n = 20_000
    reqs = pd.DataFrame({
        "policy": "fcfs", "swap": "recompute", "status": "finished",
        "jct_s": np.arange(1, n + 1, dtype=float),  # JCT k s for k = 1..n: the median is n/2
    })
    line = plot_jct_cdf(reqs).axes[0].get_lines()[0]
    assert len(line.get_xdata()) == 5001
    assert line.get_xdata()[2500] == n / 2 and line.get_ydata()[2500] == 0.5
    assert line.get_xdata()[-1] == n and line.get_ydata()[-1] == 1.0


def test_timeline_long_run_labels_bins_in_seconds(run_dir):
    run = load_run(run_dir)
    its = run.iterations[run.iterations["policy"] == "fcfs"].copy()
    its[["start_s", "end_s"]] *= 100  # 0 .. 500 s
    fig = plot_timeline(its, np.array([0.0]), num_bins=250)
    assert fig.get_suptitle() == "Run timeline (bins of 2 s, summed over replicas)"
    assert all(ax.get_ylim()[0] == 0 for ax in fig.axes)
