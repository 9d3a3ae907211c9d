"""`fastserve simulate` end to end: the run directory, the table, errors, and the JCT claim."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
from click.testing import CliRunner

from fastserve.cli import main

ROOT = Path(__file__).resolve().parents[2]
SUMMARY_COLUMNS = [
    "policy", "swap", "num_offered", "num_finished", "num_rejected", "num_unfinished", "jct_mean_s", "jct_p50_s", "jct_p90_s", "jct_p95_s", "jct_p99_s",
    "ttft_mean_s", "ttft_p99_s", "tpot_mean_s", "norm_latency_mean_s", "norm_latency_p95_s", "throughput_rps",
]
REQUEST_COLUMNS = [
    "policy", "swap", "request_id", "replica", "arrival_s", "first_token_s", "finish_s", "jct_s", "ttft_s",
    "tpot_s", "prompt_tokens", "output_tokens", "num_preemptions", "num_swaps",
]


def simulate(*args):
    return CliRunner().invoke(main, ["simulate", *args], catch_exceptions=False)


def test_bundled_sample_writes_a_run_directory(tmp_path):
    out = tmp_path / "s"
    r = simulate("--trace", str(ROOT / "traces/data/sharegpt-1k.csv"), "--policy", "fcfs",
                 "--policy", "skip-join-mlfq", "-o", str(out))
    assert r.exit_code == 0, r.output
    assert "JCT mean s" in r.output and "skip-join-mlfq" in r.output
    summary = pd.read_csv(out / "summary.csv")
    assert list(summary.policy) == ["fcfs", "skip-join-mlfq"]
    assert set(SUMMARY_COLUMNS) <= set(summary.columns)
    assert (summary.num_finished == 1000).all()
    requests = pd.read_parquet(out / "requests.parquet")
    assert set(REQUEST_COLUMNS) <= set(requests.columns) and len(requests) == 2000
    assert (out / "config.json").exists() and (out / "iterations.parquet").exists()


def test_skip_join_beats_fcfs_on_a_bursty_loaded_trace(tmp_path):
    # On an A100-40GB, Orca reserves the whole 2048-token context per request, so its batch is
    # capped at 6 and a burst queues behind long jobs; skip-join MLFQ admits by actual use.
    out = tmp_path / "b"
    spec = "synth:num_requests=400,rate=0.5,cv=3,lengths=sharegpt-like,max_prompt_tokens=1024,max_total_tokens=2048,seed=3"
    r = simulate("--trace", spec, "--profile", "opt-13b_a100-40gb_tp1", "--policy", "fcfs",
                 "--policy", "skip-join-mlfq", "-o", str(out))
    assert r.exit_code == 0, r.output
    s = pd.read_csv(out / "summary.csv").set_index("policy")
    assert s.loc["skip-join-mlfq", "jct_mean_s"] < 0.7 * s.loc["fcfs", "jct_mean_s"]
    assert s.loc["skip-join-mlfq", "jct_p99_s"] < s.loc["fcfs", "jct_p99_s"]


def test_no_skip_gives_the_same_requests(tmp_path):
    spec = "synth:num_requests=200,rate=2,cv=3,lengths=uniform:prompt=8-512,output=4-400,seed=1"
    for name, extra in (("a", []), ("b", ["--no-skip"])):
        r = simulate("--trace", spec, "--policy", "skip-join-mlfq", "-o", str(tmp_path / name), *extra)
        assert r.exit_code == 0, r.output
    a = pd.read_parquet(tmp_path / "a" / "requests.parquet")
    b = pd.read_parquet(tmp_path / "b" / "requests.parquet")
    pd.testing.assert_frame_equal(a, b)


def test_bad_inputs_give_one_line_errors(tmp_path):
    out = str(tmp_path / "x")
    sample = str(ROOT / "traces/data/bursty-small.csv")
    cases = [
        (["--trace", str(tmp_path / "missing.csv")], "--trace"),
        (["--trace", sample, "--profile", "no-such-profile"], "--profile"),
        (["--trace", sample, "--tp", "8"], "is for tp=1 pp=1"),
        (["--trace", sample, "--max-batch", "0"], "--max-batch"),
    ]
    for args, needle in cases:
        r = CliRunner().invoke(main, ["simulate", *args, "-o", out])
        assert r.exit_code == 2, r.output
        assert needle in r.output
        assert "Traceback" not in r.output
