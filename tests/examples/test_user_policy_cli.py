"""Bring your own policy, as a user would: a policy file outside the package, named by its path,
runs through `fastserve simulate`, `serve` (tiny-llama, live) and `validate`, and every run
directory names the class that ran (module, class, file hash). The two worked examples under
examples/policies/ go through the same three modes, and the tunable one through `fastserve sweep`.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pandas as pd
import pytest
from click.testing import CliRunner

from fastserve.cli import main

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "examples" / "policies"
TRACE = "synth:num_requests=12,rate=40,cv=2,lengths=uniform:prompt=8-48,output=4-24,seed=5"
LIVE = ["--model", "tiny-llama", "--trace", TRACE, "--profile", "tiny-llama_cpu_tp1", "--device-kv-tokens", "512",
        "--host-kv-tokens", "2048", "--max-seq-tokens", "96", "--block-size", "16"]

USER_POLICY = '''
from policy import Scheduler
from policy.queue import JobQueue, merge_by_seq


class LongestPromptFirst(Scheduler):
    name = "longest-prompt-first"

    def __init__(self, config=None, cost=None):
        super().__init__(config, cost)
        self._fresh, self._started = JobQueue(), JobQueue()

    def join(self, job, now_us):
        job.seq = (1 << 20) - job.prompt_tokens << 32 | self.new_seq()

    def queue_for(self, job):
        return self._fresh if job.needs_prefill else self._started

    def walk(self):
        return merge_by_seq(self._fresh, self._started, lambda: self.prefill_closed)
'''


def invoke(args) -> None:
    result = CliRunner().invoke(main, [str(a) for a in args])
    assert result.exit_code == 0, result.output


def assert_names_class(run_dir: Path, spec: str, cls: str, file: Path) -> None:
    config = json.loads((run_dir / "config.json").read_text())
    record = config["policy_classes"][spec]
    assert record["class"] == cls and record["module"] == file.stem
    assert record["file"] == str(file.resolve())
    assert record["sha256"] == hashlib.sha256(file.read_bytes()).hexdigest()
    requests = pd.read_parquet(run_dir / "requests.parquet")
    mine = requests[requests["policy"] == spec]
    assert len(mine) == 12 and (mine["status"] == "finished").all()
    assert (mine["generated_tokens"] == mine["output_tokens"]).all()


def three_modes(tmp_path: Path, spec: str, cls: str, file: Path) -> None:
    invoke(["simulate", "--trace", TRACE, "--profile", "tiny-llama_cpu_tp1", "--policy", spec, "-o", tmp_path / "sim"])
    assert_names_class(tmp_path / "sim", spec, cls, file)
    invoke(["serve", *LIVE, "--time-scale", "0.2", "--policy", spec, "-o", tmp_path / "live"])
    assert_names_class(tmp_path / "live", spec, cls, file)
    invoke(["validate", *LIVE, "--policy", spec, "-o", tmp_path / "val"])
    for engine in ("live", "sim", "replay"):
        assert_names_class(tmp_path / "val" / engine, spec, cls, file)
    table = pd.read_csv(tmp_path / "val" / "validation.csv")
    assert set(table["policy"]) == {spec} and len(table) == 8  # 5 profile-only rows, 3 over the live clock


def test_a_policy_file_outside_the_package_runs_in_all_three_modes(tmp_path, monkeypatch):
    folder = tmp_path / "mine"
    folder.mkdir()
    (folder / "lpf.py").write_text(USER_POLICY)
    monkeypatch.chdir(folder)  # as a user would type it: a path relative to where they are
    three_modes(tmp_path, "lpf.py:LongestPromptFirst", "LongestPromptFirst", folder / "lpf.py")


@pytest.mark.parametrize(("file", "cls"), [
    ("shortest_prompt_first.py", "ShortestPromptFirst"),
    ("two_class.py", "TwoClassFCFS"),
])
def test_examples_run_in_all_three_modes(tmp_path, file, cls):
    path = EXAMPLES / file
    three_modes(tmp_path, f"{path}:{cls}", cls, path)


def test_shortest_prompt_first_is_short():
    assert len((EXAMPLES / "shortest_prompt_first.py").read_text().splitlines()) < 40


def test_the_tunable_example_is_swept(tmp_path, monkeypatch):
    monkeypatch.chdir(ROOT)  # the TOML names the policy file relative to the repository root
    invoke(["sweep", EXAMPLES / "two_class_sweep.toml", "-o", tmp_path / "sw", "--workers", "1"])
    summary = pd.read_csv(tmp_path / "sw" / "summary.csv")
    spec = "examples/policies/two_class.py:TwoClassFCFS:short_prompt_tokens={}"
    assert summary["policy"].tolist() == ["fcfs", *(spec.format(n) for n in (32, 128, 512))]
    assert (summary["num_finished"] == 300).all()
    # the parameter changes decisions: the three thresholds give three different mean JCTs
    assert summary["jct_mean_s"].iloc[1:].nunique() == 3
    cells = pd.read_csv(tmp_path / "sw" / "cells.csv")
    for cid, policy in zip(cells["cell_id"], cells["policy"], strict=True):
        record = json.loads((tmp_path / "sw" / "cells" / cid / "config.json").read_text())["policy_classes"][policy]
        assert record["class"] == ("FCFS" if policy == "fcfs" else "TwoClassFCFS")
        if policy != "fcfs":
            assert record["params"] == {"short_prompt_tokens": int(policy.rsplit("=", 1)[1])}


FAILING_POLICY = '''
from policy.fcfs import VLLMFCFS


class FailsLater(VLLMFCFS):
    def on_served(self, job, elapsed_us):
        if job.generated_tokens >= 3:
            raise RuntimeError("my bug")
'''


def test_a_policy_that_raises_mid_run_is_one_line_and_keeps_earlier_policies(tmp_path):
    (tmp_path / "bad.py").write_text(FAILING_POLICY)
    spec = f"{tmp_path / 'bad.py'}:FailsLater"
    result = CliRunner().invoke(main, ["simulate", "--trace", TRACE, "--profile", "tiny-llama_cpu_tp1", "--policy",
                                       "fcfs", "--policy", spec, "-o", str(tmp_path / "run")])
    assert result.exit_code == 1
    assert result.output.strip().splitlines()[-1] == f"Error: {spec}: the policy raised RuntimeError: my bug"
    assert pd.read_csv(tmp_path / "run" / "summary.csv")["policy"].tolist() == ["fcfs"]
