"""Ctrl-C on a local sweep stops at once: queued cells are cancelled, running ones stopped, and
every finished cell is kept (a re-run resumes from them)."""

from __future__ import annotations

import os
import time

import pandas as pd
import pytest

import sim.sweep
from fastserve.rundir import write_sim_run
from sim.sweep import run_sweep
from sim.sweep_config import SweepConfig

NUM_CELLS = 12


def slow_run_cell(cell, sweep):
    """The real cell, recorded as started and made slow enough that an eager pool would run all."""
    with open(os.environ["SWEEP_STARTED_FILE"], "a") as f:
        f.write(cell["cell_id"] + "\n")
    time.sleep(0.5)
    return REAL_RUN_CELL(cell, sweep)


REAL_RUN_CELL = sim.sweep.run_cell


def test_ctrl_c_cancels_pending_cells_and_keeps_finished_ones(tmp_path, monkeypatch):
    started = tmp_path / "started.txt"
    monkeypatch.setenv("SWEEP_STARTED_FILE", str(started))
    monkeypatch.setattr(sim.sweep, "run_cell", slow_run_cell)  # workers are forked: they see it
    written = []

    def interrupt_after_first(run_dir, config, result):
        if written:
            raise KeyboardInterrupt
        written.append(run_dir)
        return write_sim_run(run_dir, config, result)

    config = SweepConfig(trace="synth", num_requests=10, seeds=(0,),
                         grid={"policy": ["fcfs"], "rate": [float(r) for r in range(1, NUM_CELLS + 1)],
                               "lengths": ["fixed:prompt=8,output=4"]})
    with pytest.raises(KeyboardInterrupt):
        run_sweep(config, tmp_path / "s", interrupt_after_first, workers=2, progress=False)
    time.sleep(1.0)  # a cell still running would record itself meanwhile
    num_started = len(started.read_text().splitlines())
    assert num_started < NUM_CELLS  # without the cancel, the pool runs every queued cell before raising
    cells = pd.read_csv(tmp_path / "s" / "cells.csv")
    assert cells.status.value_counts().to_dict() == {"done": 1, "pending": NUM_CELLS - 1}
    assert len(pd.read_csv(tmp_path / "s" / "summary.csv")) == 1
    assert sorted(p.name for p in (tmp_path / "s" / "cells").iterdir() if not p.name.endswith(".partial")) == \
        [os.path.basename(written[0]).removesuffix(".partial")]
