"""Plots a newcomer can read: the CDF legend covers no curve, stars of equal throughput at the
SLO do not hide each other, swaps show on a long Gantt chart, long-tailed length histograms keep
their tick labels apart, and the timeline draws the device KV capacity."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402

from analysis.plots.cdf import plot_jct_cdf  # noqa: E402
from analysis.plots.gantt import MIN_SWAP_WIDTH, plot_gantt  # noqa: E402
from analysis.plots.sweep import plot_vs  # noqa: E402
from analysis.plots.timeline import KV_NOTE, plot_timeline  # noqa: E402
from tests.analysis.fixtures import requests_frame  # noqa: E402
from traces import Trace  # noqa: E402

ROWS = [(0, 0.0, 0.5, 2.0, 8, 4, 4, 0, 0, 0, 0, "finished"), (1, 1.0, 1.5, 9.0, 8, 4, 4, 0, 0, 0, 0, "finished")]


def test_the_cdf_legend_sits_outside_the_curves():
    requests = pd.concat([requests_frame("fcfs", "recompute", ROWS), requests_frame("srpt", "proactive", ROWS)])
    fig = plot_jct_cdf(requests)
    fig.canvas.draw()
    ax = fig.axes[0]
    assert ax.get_legend().get_window_extent().x0 >= ax.get_window_extent().x1


def test_equal_throughput_at_slo_stars_are_stacked_apart():
    rows = [{"policy": p, "swap": "x", "rate": r, "seed": 0, "jct_mean_s": 1.0, "jct_p99_s": 2.0,
             "norm_latency_mean_s": v, "norm_latency_p95_s": v}
            for p in ("a", "b", "c", "d") for r, v in ((1.0, 0.1), (2.0, 0.5))]
    fig = plot_vs(pd.DataFrame(rows), "rate", slo_s=0.3)
    fig.canvas.draw()
    stars = [c for c in fig.axes[2].collections if c.get_label().endswith("req/s at SLO")]
    assert len(stars) == 4
    points = {tuple(np.round(c.get_offset_transform().transform(c.get_offsets())[0], 3)) for c in stars}
    assert len(points) == 4  # four distinct places on the figure


def test_swaps_are_wide_enough_to_see_on_a_long_chart():
    rows = [(0, 0.0, 0.5, 600.0, 8, 4, 4, 0, 1, 1, 0, "finished")]
    requests = requests_frame("skip-join-mlfq", "proactive", rows)
    spans = pd.DataFrame({"policy": "skip-join-mlfq", "swap": "proactive", "replica": 0, "request_id": 0,
                          "kind": ["running", "swap_out", "swap_in", "running"],
                          "start_s": [0.5, 100.0, 300.0, 300.01], "end_s": [100.0, 100.003, 300.004, 600.0]})
    fig = plot_gantt(requests, spans)
    widths = {c.get_label(): [p.get_width() for p in c.patches] for c in fig.axes[0].containers}
    assert min(widths["swap out"] + widths["swap in"]) == pytest.approx(MIN_SWAP_WIDTH * 600.0, rel=1e-9)


def test_long_tailed_histograms_keep_their_tick_labels_apart():
    from traces.plot import trace_figure

    rng = np.random.default_rng(0)
    prompts = np.round(np.exp(rng.normal(8, 1.5, 2000))).astype(np.int64).clip(1, 130_000)
    trace = Trace(np.sort(rng.uniform(0, 100, 2000)), prompts, prompts // 10 + 1)
    fig = trace_figure(trace)
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    for ax in fig.axes[:2]:
        low, high = ax.get_xlim()
        boxes = sorted((t.get_window_extent(renderer) for t in ax.get_xticklabels()
                        if t.get_visible() and t.get_text() and low <= t.get_position()[0] <= high),
                       key=lambda b: b.x0)
        assert len(boxes) >= 2
        assert all(a.x1 < b.x0 for a, b in zip(boxes, boxes[1:], strict=False))


def test_the_timeline_draws_the_device_capacity_and_explains_the_gauge():
    iterations = pd.DataFrame({"replica": 0, "start_s": [0.0, 1.0], "end_s": [1.0, 2.0], "num_iterations": 1,
                               "batch_size": 1, "num_queued": 0, "device_kv_blocks_used": [90, 120]})
    fig = plot_timeline(iterations, [0.0], device_capacity_blocks=100)
    ax_kv = fig.axes[2]
    assert [t.get_text() for t in ax_kv.get_legend().get_texts()] == ["device KV", "device capacity"]
    assert ax_kv.get_title(loc="left") == KV_NOTE
