"""Sweeps: a 2x3x2 grid, resume, a failing cell, and local vs Ray equivalence."""

from __future__ import annotations

import pandas as pd
import pytest

from fastserve.rundir import write_sim_run
from sim.sweep import run_sweep
from sim.sweep_config import SweepConfig, SweepConfigError

GRID = {"policy": ["fcfs", "skip-join-mlfq"], "rate": [0.5, 1.0, 2.0], "cv": [1.0, 3.0],
        "lengths": ["uniform:prompt=8-64,output=4-64"]}


def small(grid=GRID, **kw) -> SweepConfig:
    return SweepConfig(trace="synth", num_requests=40, seeds=(0,), grid=grid, **kw)


class CountingWriter:
    def __init__(self):
        self.calls = 0

    def __call__(self, run_dir, config, result):
        self.calls += 1
        return write_sim_run(run_dir, config, result)


def test_grid_runs_every_cell_and_resume_skips_them(tmp_path):
    writer = CountingWriter()
    cells = run_sweep(small(), tmp_path, writer, workers=1, progress=False)
    assert len(cells) == 12 and (cells.status == "done").all() and writer.calls == 12
    summary = pd.read_csv(tmp_path / "summary.csv")
    assert len(summary) == 12
    assert sorted(summary.policy.unique()) == ["fcfs", "skip-join-mlfq"]
    assert sorted(summary.rate.unique()) == [0.5, 1.0, 2.0]
    assert (summary.num_requests == 40).all()
    again = run_sweep(small(), tmp_path, writer, workers=1, progress=False)
    assert writer.calls == 12  # nothing re-run
    assert (again.status == "done").all()
    assert pd.read_csv(tmp_path / "summary.csv").equals(summary)


def test_failing_cell_is_recorded_and_the_rest_go_on(tmp_path):
    grid = {**GRID, "rate": [1.0], "cv": [1.0], "profile": ["opt-13b_a100-80gb_tp1", "no-such-profile"]}
    cells = run_sweep(small(grid), tmp_path, write_sim_run, workers=1, progress=False)
    failed = cells[cells.status == "failed"]
    assert len(failed) == 2 and set(failed.profile) == {"no-such-profile"}
    assert all("no-such-profile" in e for e in failed.error)
    assert (cells[cells.status == "done"].profile == "opt-13b_a100-80gb_tp1").all()
    on_disk = pd.read_csv(tmp_path / "cells.csv")
    assert list(on_disk.status.value_counts().sort_index().items()) == [("done", 2), ("failed", 2)]


def test_interrupted_cell_leaves_no_finished_directory(tmp_path):
    def exploding(run_dir, config, result):
        write_sim_run(run_dir, config, result)
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        run_sweep(small(), tmp_path, exploding, workers=1, progress=False)
    done = [p for p in (tmp_path / "cells").iterdir() if not p.name.endswith(".partial")]
    assert done == []  # the half-written cell stays `.partial`, so a re-run redoes it
    cells = run_sweep(small(), tmp_path, write_sim_run, workers=1, progress=False)
    assert (cells.status == "done").all()


def test_local_processes_and_ray_give_identical_results(tmp_path):
    pytest.importorskip("ray")
    grid = {**GRID, "rate": [1.0, 2.0], "cv": [3.0]}
    run_sweep(small(grid), tmp_path / "local", write_sim_run, workers=2, progress=False)
    run_sweep(small(grid), tmp_path / "ray", write_sim_run, workers=2, ray_address="auto", progress=False)
    import ray

    ray.shutdown()
    a = pd.read_csv(tmp_path / "local" / "summary.csv").sort_values("cell_id").reset_index(drop=True)
    b = pd.read_csv(tmp_path / "ray" / "summary.csv").sort_values("cell_id").reset_index(drop=True)
    assert len(a) == 4
    pd.testing.assert_frame_equal(a, b)
    for cid in a.cell_id:
        ra = (tmp_path / "local" / "cells" / cid / "requests.parquet").read_bytes()
        rb = (tmp_path / "ray" / "cells" / cid / "requests.parquet").read_bytes()
        assert ra == rb


@pytest.mark.parametrize("text,message", [
    ("[grid]\nrates = [1]\n", "unknown grid key 'rates'"),
    ("[sweep]\nseeds = []\n[grid]\nrate=[1]\n", "sweep.seeds must list at least one seed"),
    ("[grid]\npolicy = ['lifo']\nrate=[1]\n", "grid.policy: unknown policy 'lifo'"),
    ("[grid]\npolicy = ['fcfs']\n", "a synthetic sweep needs grid.rate"),
    ("[scheduler]\nalpha = 1\n[grid]\nrate=[1]\n", "unknown scheduler key 'alpha'"),
    ("[grids]\n", "unknown section [grids]"),
])
def test_config_errors_name_the_key(tmp_path, text, message):
    path = tmp_path / "s.toml"
    path.write_text(text)
    with pytest.raises(SweepConfigError) as err:
        SweepConfig.from_toml(path)
    assert message in str(err.value) and str(path) in str(err.value)
