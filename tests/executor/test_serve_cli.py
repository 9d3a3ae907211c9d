"""`fastserve serve` end to end on CPU, and its one-line errors."""

from __future__ import annotations

import json

import pandas as pd
import pytest
from click.testing import CliRunner

from fastserve.cli import main


@pytest.fixture()
def small_trace(tmp_path):
    path = tmp_path / "t.csv"
    pd.DataFrame({"arrival_s": [0.0, 0.1, 0.1, 0.3, 0.35, 0.4], "prompt_tokens": [30, 8, 12, 600, 20, 9],
                  "output_tokens": [20, 5, 7, 4, 12, 3]}).to_csv(path, index=False)
    return path


def test_serve_writes_one_summary_row_per_policy(tmp_path, small_trace):
    out = tmp_path / "run"
    result = CliRunner().invoke(main, [
        "serve", "--trace", str(small_trace), "--model", "tiny-llama", "--policy", "skip-join-mlfq",
        "--policy", "fcfs", "--time-scale", "0.1", "--device-kv-tokens", "512", "--host-kv-tokens", "256",
        "--block-size", "4", "--max-batch", "4", "--spans", "-o", str(out)])
    assert result.exit_code == 0, result.output
    summary = pd.read_csv(out / "summary.csv")
    assert list(summary["policy"]) == ["skip-join-mlfq", "fcfs"]
    assert list(summary["swap"]) == ["proactive", "recompute"]
    assert list(summary["num_finished"]) == [5, 5] and list(summary["num_rejected"]) == [1, 1]
    requests = pd.read_parquet(out / "requests.parquet")
    assert len(requests) == 12 and set(requests["status"]) == {"finished", "rejected"}
    rejected = requests[requests["status"] == "rejected"]
    assert set(rejected["request_id"]) == {3}
    assert rejected["reason"].iloc[0] == "prompt_tokens + output_tokens = 604 exceeds max_seq_tokens = 512"
    done = requests[requests["status"] == "finished"]
    assert (done["jct_s"] > 0).all() and (done["generated_tokens"] == done["output_tokens"]).all()
    config = json.loads((out / "config.json").read_text())
    assert config["engine"] == "live" and config["model"] == "tiny-llama" and config["profile"] == "tiny-llama_cpu_tp1"
    assert config["policies"]["fcfs"]["max_seq_tokens"] == 512 and config["kv_bytes_per_token"] == 512
    iterations = pd.read_parquet(out / "iterations.parquet")
    assert set(iterations["policy"]) == {"skip-join-mlfq", "fcfs"}
    assert (out / "spans.parquet").exists()
    assert "skip-join-mlfq" in result.output and "JCT mean s" in result.output


@pytest.mark.parametrize("args, message", [
    (["--model", "gpt-5"], "unknown model 'gpt-5'"),
    (["--time-scale", "-1"], "time_scale must be finite and >= 0"),
    (["--max-seq-tokens", "4096"], "max_seq_tokens = 4096 exceeds the model's 512 positions"),
    (["--profile", "nope.json"], "nope.json"),
    (["--device", "tpu"], "device must be cpu or cuda[:N]"),
    (["--policy", "mlfq"], "mlfq given twice"),
])
def test_serve_errors_are_one_line(tmp_path, small_trace, args, message):
    base = {"--model": "tiny-opt"}
    argv = ["serve", "--trace", str(small_trace), "--policy", "mlfq", "-o", str(tmp_path / "r")]
    for flag, value in {**base, **dict(zip(args[::2], args[1::2], strict=True))}.items():
        argv += [flag, value]
    result = CliRunner().invoke(main, argv)
    assert result.exit_code == 2, result.output
    assert message in result.output and "Traceback" not in result.output


def test_serve_missing_trace_names_the_option(tmp_path):
    result = CliRunner().invoke(main, ["serve", "--trace", str(tmp_path / "none.csv"), "--model", "tiny-opt",
                                       "-o", str(tmp_path / "r")])
    assert result.exit_code == 2 and "--trace" in result.output


def test_a_policy_that_cannot_run_is_refused_before_any_runs(tmp_path, small_trace):
    result = CliRunner().invoke(main, ["serve", "--trace", str(small_trace), "--model", "tiny-opt", "--policy", "mlfq",
                                       "--policy", "fcfs", "--device-kv-tokens", "256", "-o", str(tmp_path / "r")])
    assert result.exit_code == 2
    assert "Invalid value for --device-kv-tokens: fcfs: device KV capacity (256 tokens) cannot hold one request of max_seq_tokens = 512" in result.output
    assert not (tmp_path / "r").exists()


def test_serve_gives_each_policy_its_own_engine_overhead(tmp_path, small_trace, monkeypatch):
    """The bundled profile measured one engine overhead per policy; serve hands each policy its
    own (`for_policy`), as simulate and validate do, so skip-join's prefill estimate, and so its
    join levels, are the same in every engine."""
    import profiles
    from executor.serve import LiveServer

    seen = {}
    real_run = LiveServer.run

    def run(self, jobs, policy, config, cost=None):
        seen[policy] = cost
        return real_run(self, jobs, policy, config, cost)

    monkeypatch.setattr(LiveServer, "run", run)
    result = CliRunner().invoke(main, [
        "serve", "--trace", str(small_trace), "--model", "tiny-llama", "--policy", "skip-join-mlfq",
        "--policy", "fcfs", "--time-scale", "0.1", "-o", str(tmp_path / "run")])
    assert result.exit_code == 0, result.output
    bundled = profiles.load_profile("tiny-llama_cpu_tp1")
    for policy in ("skip-join-mlfq", "fcfs"):
        assert seen[policy].profile.overhead == bundled.policy_overhead[policy]
    assert seen["fcfs"].profile.overhead != seen["skip-join-mlfq"].profile.overhead
