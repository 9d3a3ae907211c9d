"""Overload and rejections are said out loud: the sustainable-rate estimate, the warnings of
`fastserve simulate`, and the explicit counts and `overloaded` mark of summary.csv."""

from __future__ import annotations

import pandas as pd
import pytest
from click.testing import CliRunner

import profiles
from fastserve.cli import main
from profiles.sustainable import sustainable_rate_rps

PROFILE = "opt-13b_a100-80gb_tp1"


def test_sustainable_rate_is_one_prefill_plus_decode_iterations_shared_by_the_batch():
    cost = profiles.cost_model(profiles.load_profile(PROFILE))
    # mid-life context 100 + 101 // 2 = 150; 60,691 KV tokens hold 404 such jobs, so the batch limit binds
    rate = sustainable_rate_rps(cost, [100, 100], [101, 101], 16, cost.device_kv_tokens)
    per_request_s = cost.prefill_s(100) + 100 * cost.iteration_s((), (150,) * 16) / 16
    assert rate == 1 / per_request_s
    # KV for only 3 such jobs: the batch is 3
    small = sustainable_rate_rps(cost, [100], [101], 16, 450, num_replicas=2)
    assert small == 2 / (cost.prefill_s(100) + 100 * cost.iteration_s((), (150,) * 3) / 3)
    assert cost.num_extrapolations == 0


def _trace(path, gap_s, num=40, prompt=200, output=200, long_every=None):
    rows = ["arrival_s,prompt_tokens,output_tokens"]
    for i in range(num):
        p = 5000 if long_every and i % long_every == 0 else prompt
        rows.append(f"{i * gap_s},{p},{output}")
    path.write_text("\n".join(rows) + "\n")
    return str(path)


def simulate(trace, out, *extra):
    return CliRunner().invoke(main, ["simulate", "--trace", trace, "--profile", PROFILE, "--policy", "vllm-fcfs",
                                     "-o", str(out), *extra])


def test_an_overloaded_trace_is_warned_about_and_marked(tmp_path):
    r = simulate(_trace(tmp_path / "t.csv", gap_s=0.01), tmp_path / "r")
    assert r.exit_code == 0, r.output
    warnings = [line for line in r.stderr.splitlines() if line.startswith("warning:")]
    assert len(warnings) == 2
    assert warnings[0].startswith("warning: overload: the trace offers 103 req/s, above the ~")
    assert warnings[1].startswith("warning: vllm-fcfs (recompute) is overloaded: it finished ")
    summary = pd.read_csv(tmp_path / "r" / "summary.csv")
    assert summary.loc[0, "overloaded"] and summary.loc[0, "offered_rps"] == pytest.approx(40 / 0.39)
    assert "overloaded" in r.stdout.splitlines()[0] and r.stdout.splitlines()[2].split()[-1] == "YES"
    compare = CliRunner().invoke(main, ["compare", str(tmp_path / "r"), "--baseline", "vllm-fcfs"])
    assert ["overloaded", "YES"] in [line.split() for line in compare.stdout.splitlines()]
    assert compare.stderr.startswith("warning: 1 of 1 rows are overloaded")


def test_a_trace_below_the_knee_is_not(tmp_path):
    r = simulate(_trace(tmp_path / "t.csv", gap_s=20.0, num=10), tmp_path / "r")
    assert r.exit_code == 0, r.output
    assert "warning" not in r.stderr
    summary = pd.read_csv(tmp_path / "r" / "summary.csv")
    assert not summary.loc[0, "overloaded"] and summary.loc[0, "sustainable_rps"] > 1


def test_rejections_are_counted_and_warned_about(tmp_path):
    r = simulate(_trace(tmp_path / "t.csv", gap_s=20.0, num=10, long_every=5), tmp_path / "r")
    assert r.exit_code == 0, r.output
    assert ("warning: vllm-fcfs (recompute) REJECTED 2 of 10 requests (20%); e.g. request 0: prompt_tokens + "
            "output_tokens = 5200 exceeds max_seq_tokens = 2048") in r.stderr.splitlines()
    summary = pd.read_csv(tmp_path / "r" / "summary.csv")
    assert summary.loc[0, ["num_offered", "num_finished", "num_rejected", "num_unfinished"]].tolist() == [10, 8, 2, 0]
    header = r.stdout.splitlines()[0].split()
    assert header[2:6] == ["offered", "done", "rejected", "unfinished"]
    assert r.stdout.splitlines()[2].split()[2:6] == ["10", "8", "2", "0"]


def _requests(finish_s):
    n = len(finish_s)
    return pd.DataFrame({"policy": "p", "swap": "s", "arrival_s": [float(i) for i in range(n)],
                         "first_token_s": [float(i) + 0.5 for i in range(n)], "finish_s": finish_s,
                         "output_tokens": 4, "status": "finished", "num_preemptions": 0, "num_swaps": 0})


def test_a_short_trace_that_keeps_up_is_not_called_overloaded():
    from analysis.metrics import summarize

    # 1 req/s for 10 s, every JCT 2 s: throughput 10 / 11 s is 82% of the 1.11 req/s offered,
    # but a server that keeps up cannot do better (10 / (9 s + 2 s median JCT))
    keeping_up = summarize(_requests([i + 2.0 for i in range(10)])).iloc[0]
    assert keeping_up["throughput_rps"] == 10 / 11 and keeping_up["offered_rps"] == 10 / 9
    assert not keeping_up["overloaded"]
    # served one at a time, 2 s each: JCT grows 2, 3, ..., 11 s, throughput 0.5 < 0.9 * 10 / (9 + 6.5)
    falling_behind = summarize(_requests([2.0 + 2 * i for i in range(10)])).iloc[0]
    assert falling_behind["overloaded"]


def test_each_run_reports_how_far_past_the_grid_it_priced():
    import dataclasses

    import traces
    from policy import SchedulerConfig
    from sim import SimConfig
    from sim import simulate as run

    # prefill batches 1..8; no per-policy overhead, so every run prices with this very cost model
    cost = profiles.cost_model(dataclasses.replace(profiles.load_profile("tiny-llama_cpu_tp1"), policy_overhead={}))
    config = SchedulerConfig(device_kv_tokens=cost.device_kv_tokens, host_kv_tokens=cost.host_kv_tokens)
    burst = traces.Trace([0.0] * 12, [30] * 12, [4] * 12)  # 12 prompts at once: one prefill of 12
    alone = traces.Trace([0.0, 50.0], [30, 30], [4, 4])  # one prompt at a time: inside the grid
    with pytest.warns(profiles.ExtrapolationWarning):
        first = run(burst, cost, "vllm-fcfs", config, SimConfig())
    assert first.stats["extrapolated_max"] == {"prefill batch": 12}
    second = run(alone, cost, "vllm-fcfs", config, SimConfig())
    assert second.stats["extrapolated_max"] == {} and second.stats["num_extrapolations"] == 0
    # each run counts its own exits; the cost model warns once over all of them
    assert cost.num_extrapolations == 0 and cost.exits.warned
