"""A user's policy file in a sweep: local worker processes and Ray give identical results, and a
worker without the file runs the source the driver sent."""

from __future__ import annotations

import pandas as pd
import pytest

from fastserve.rundir import write_sim_run
from sim.sweep import run_cell, run_sweep
from sim.sweep_config import SweepConfig

POLICY = '''
from policy import Scheduler
from policy.queue import JobQueue, merge_by_seq


class ShortFirst(Scheduler):
    def __init__(self, config=None, cost=None, *, cutoff=32):
        super().__init__(config, cost)
        self.cutoff = cutoff
        self._fresh, self._started = JobQueue(), JobQueue()

    def join(self, job, now_us):
        job.seq = int(job.prompt_tokens > self.cutoff) << 62 | self.new_seq()

    def queue_for(self, job):
        return self._fresh if job.needs_prefill else self._started

    def walk(self):
        return merge_by_seq(self._fresh, self._started, lambda: self.prefill_closed)
'''
SPECS = ["mine.py:ShortFirst:cutoff=16", "mine.py:ShortFirst:cutoff=48"]


def config() -> SweepConfig:
    return SweepConfig(trace="synth", num_requests=40, seeds=(0,),
                       grid={"policy": SPECS, "rate": [8.0], "cv": [3.0], "max_batch": [1],
                             "lengths": ["uniform:prompt=8-64,output=4-64"]})


def test_local_processes_and_ray_run_the_same_policy_file(tmp_path, monkeypatch):
    pytest.importorskip("ray")
    monkeypatch.chdir(tmp_path)
    (tmp_path / "mine.py").write_text(POLICY)
    run_sweep(config(), tmp_path / "local", write_sim_run, workers=2, progress=False)
    run_sweep(config(), tmp_path / "ray", write_sim_run, workers=2, ray_address="auto", progress=False)
    import ray

    ray.shutdown()
    a = pd.read_csv(tmp_path / "local" / "summary.csv").sort_values("cell_id").reset_index(drop=True)
    b = pd.read_csv(tmp_path / "ray" / "summary.csv").sort_values("cell_id").reset_index(drop=True)
    assert sorted(a["policy"]) == SPECS and (a["num_finished"] == 40).all()
    pd.testing.assert_frame_equal(a, b)
    assert a["jct_mean_s"].nunique() == 2  # the parameter reached the workers


def test_a_worker_without_the_file_runs_the_drivers_source(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "mine.py").write_text(POLICY)
    cfg = config()
    sweep = {**cfg.to_dict(), "policy_files": cfg.policy_files()}
    assert sweep["policy_files"] == {"mine.py": POLICY}
    (tmp_path / "mine.py").unlink()  # as on a Ray node that never had it
    spec = "mine.py:ShortFirst:cutoff=40"  # another parameter: a class not built in this process yet
    outcome = run_cell({**cfg.cells()[0], "policy": spec}, sweep)
    assert "error" not in outcome, outcome.get("error")
    assert outcome["result"].policy == spec and outcome["result"].stats["finished"] == 40
    assert "policy_files" not in outcome["config"]["sweep"]  # the cell's config.json stays small
