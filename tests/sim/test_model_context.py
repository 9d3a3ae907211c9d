"""The context limit is the model's, from the profile: `simulate` and `serve` agree on it, and a
larger --max-seq-tokens is a one-line error."""

from __future__ import annotations

import json

import pandas as pd
from click.testing import CliRunner

from fastserve.cli import main


def _trace(tmp_path, total_tokens):
    path = tmp_path / "t.csv"
    path.write_text(f"arrival_s,prompt_tokens,output_tokens\n0,{total_tokens - 5},5\n1,10,5\n")
    return str(path)


def simulate(*args):
    return CliRunner().invoke(main, ["simulate", "--policy", "vllm-fcfs", *args])


def test_the_default_limit_is_the_models_context(tmp_path):
    # llama-2-7b's context is 4096: a 3,000-token request is served, not rejected at 2048
    r = simulate("--trace", _trace(tmp_path, 3000), "--profile", "llama-2-7b_h100-sxm_tp1", "-o", str(tmp_path / "r"))
    assert r.exit_code == 0, r.output
    summary = pd.read_csv(tmp_path / "r" / "summary.csv")
    assert summary.loc[0, ["num_finished", "num_rejected"]].tolist() == [2, 0]
    config = json.loads((tmp_path / "r" / "config.json").read_text())
    assert config["policies"]["vllm-fcfs"]["max_seq_tokens"] == 4096


def test_a_limit_above_the_context_is_refused(tmp_path):
    r = simulate("--trace", _trace(tmp_path, 100), "--profile", "llama-2-7b_h100-sxm_tp1", "--max-seq-tokens", "131072",
                 "-o", str(tmp_path / "r"))
    assert r.exit_code == 2
    assert r.output.splitlines()[-1] == (
        "Error: Invalid value for --max-seq-tokens: 131072 exceeds llama-2-7b's context of 4096 tokens")
    assert not (tmp_path / "r").exists()


def test_simulate_and_serve_reject_the_same_requests(tmp_path):
    # tiny-llama's context is 512: a 605-token request is rejected by both engines
    trace = _trace(tmp_path, 605)
    sim = simulate("--trace", trace, "--profile", "tiny-llama_cpu_tp1", "-o", str(tmp_path / "s"))
    live = CliRunner().invoke(main, ["serve", "--trace", trace, "--model", "tiny-llama", "--policy", "vllm-fcfs",
                                     "--time-scale", "0.01", "--no-timeline", "-o", str(tmp_path / "l")])
    assert sim.exit_code == 0 and live.exit_code == 0, sim.output + live.output
    for run in ("s", "l"):
        requests = pd.read_parquet(tmp_path / run / "requests.parquet")
        assert requests.status.tolist() == ["rejected", "finished"], run
        assert requests.reason[0] == "prompt_tokens + output_tokens = 605 exceeds max_seq_tokens = 512"
