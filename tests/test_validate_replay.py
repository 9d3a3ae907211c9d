"""`fastserve validate`'s replay of the live clock: its factors and its rows in validation.csv,
exactly, on hand-made run directories (the end-to-end run is in test_validate.py)."""

from __future__ import annotations

import pytest

from analysis.load import InputError, load_run
from analysis.validation import METRICS, REPLAYED_METRICS, replay_factors, validation_table
from fastserve.rundir import RunWriter
from tests.validation_runs import HandCost, iterations, requests, write_hand_runs


@pytest.fixture
def hand_runs(tmp_path):
    return write_hand_runs(tmp_path)


def test_replay_factors_and_rows(hand_runs, tmp_path):
    live, sim = hand_runs
    # the live clock: measured over priced per iteration, in order (see FCFS_ITERATIONS)
    factors = replay_factors(live, "fcfs", HandCost())
    assert factors.tolist() == pytest.approx([2e-3 / 2.3e-3, 0.5e-3 / 0.225e-3, 0.5e-3 / 1.33e-3], rel=1e-12)
    replay = RunWriter(tmp_path / "replay", {"engine": "sim"})
    replay.add(requests("fcfs", "recompute", [1.0, 2.0, 3.0, 12.0], [0.5, 0.5, 0.5, 0.5]))
    replay.add(requests("skip-join-mlfq", "proactive", [1.0, 1.0, 4.0], [0.1, 0.2, 0.3]))
    table = validation_table(live, sim, HandCost(), load_run(tmp_path / "replay"))
    assert table["metric"].tolist() == [*METRICS, *REPLAYED_METRICS] * 2
    fcfs = table[table["policy"] == "fcfs"].set_index("metric")
    # live [1, 2, 3, 10] against the replay's [1, 2, 3, 12]: means 4 and 4.5; the profile-only rows stay
    assert fcfs.loc["replayed_jct_mean_s", ["measured", "simulated", "rel_error"]].tolist() == [4.0, 4.5, 0.125]
    assert fcfs.loc["replayed_jct_p50_s", "rel_error"] == 0.0
    assert fcfs.loc["jct_mean_s", "simulated"] == 3.875
    sj = table[table["policy"] == "skip-join-mlfq"].set_index("metric")
    assert sj.loc["replayed_jct_mean_s", "rel_error"] == 0.0


def test_replay_factors_need_a_priced_iteration(tmp_path):
    live = RunWriter(tmp_path / "live", {"engine": "live"})
    live.add(requests("fcfs", "recompute", [1.0], [0.5]), iterations("fcfs", "recompute", [(0.0, 0.0, 1, 1, 0, 0, 0, 0)]))
    with pytest.raises(InputError, match="no iteration of policy fcfs with a measured and a priced time above zero"):
        replay_factors(load_run(tmp_path / "live"), "fcfs", HandCost())
