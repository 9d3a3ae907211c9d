"""Sweeps: a 2x3x2 grid, resume, a failing cell, and local vs Ray equivalence."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from fastserve.rundir import write_sim_run
from sim.sweep import run_sweep
from sim.sweep_config import SweepConfig, SweepConfigError, cell_id

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
    assert (summary.num_finished == 40).all()
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
    ("[grid]\nrate=[1]\nalpha_s = [0.3, -1.0]\n", "grid.alpha_s: alpha_s must be > 0, got -1.0"),
    ("[grid]\nrate=[1]\nnum_levels = [4.5]\n", "grid.num_levels: num_levels must be a positive integer, got 4.5"),
    ("[scheduler]\nalpha_s = 1.0\n[grid]\nrate=[1]\nalpha_s = [0.3]\n",
     "alpha_s is both a grid axis and a fixed [scheduler] value"),
    ("[sim]\nrecord_everything = true\n[grid]\nrate=[1]\n", "unknown sim key 'record_everything'"),
])
def test_config_errors_name_the_key(tmp_path, text, message):
    path = tmp_path / "s.toml"
    path.write_text(text)
    with pytest.raises(SweepConfigError) as err:
        SweepConfig.from_toml(path)
    assert message in str(err.value) and str(path) in str(err.value)


def test_scheduler_fields_are_grid_axes(tmp_path):
    """alpha_s and base_quantum_s sweep like any axis: one cell per value, the value reaches the
    scheduler (a cell's config.json), and cells.csv / summary.csv carry the column."""
    grid = {"policy": ["skip-join-mlfq"], "rate": [20.0], "cv": [3.0], "lengths": GRID["lengths"],
            "max_batch": [2], "alpha_s": [0.05, 3.0], "base_quantum_s": [0.002, 0.01]}
    config = small(grid, sim={"record_iterations": True})
    assert config.axis_keys()[-2:] == ("alpha_s", "base_quantum_s")
    cells = run_sweep(config, tmp_path, write_sim_run, workers=1, progress=False)
    assert len(cells) == 4 and (cells.status == "done").all()
    assert sorted(zip(cells.alpha_s, cells.base_quantum_s, strict=True)) == [(0.05, 0.002), (0.05, 0.01), (3.0, 0.002), (3.0, 0.01)]
    summary = pd.read_csv(tmp_path / "summary.csv")
    assert sorted(summary.alpha_s) == [0.05, 0.05, 3.0, 3.0]
    for _, row in cells.iterrows():
        run = tmp_path / "cells" / row.cell_id
        assert (run / "iterations.parquet").exists()  # [sim] record_iterations reached the engine
        sched = json.loads((run / "config.json").read_text())["scheduler"]
        assert (sched["alpha_s"], sched["base_quantum_s"]) == (row.alpha_s, row.base_quantum_s)
    # The policy used the value, not only the record: the quantum changes the schedule.
    by_quantum = summary.groupby("base_quantum_s").num_preemptions.sum()
    assert by_quantum[0.002] != by_quantum[0.01]


def test_cells_without_scheduler_axes_keep_their_ids():
    ids = [c["cell_id"] for c in small().cells()]
    assert ids[0] == cell_id({**small().cells()[0]})
    assert "alpha_s" not in small().cells()[0]
    assert len(set(ids)) == 12
