"""`fastserve validate --load` (sim/capacity.py) and the saturation warning's measure
(`analysis.validation.queued_time_share`)."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner

from fastserve.cli import main
from tests.test_validate import SMALL_TRACE


def test_load_is_refused_with_a_time_scale_or_an_endpoint(tmp_path):
    runner = CliRunner()
    both = runner.invoke(main, ["validate", "--model", "tiny-llama", "--trace", SMALL_TRACE, "--load", "0.8",
                                "--time-scale", "2", "-o", str(tmp_path / "w")])
    assert both.exit_code == 2 and "give --load or --time-scale, not both" in both.output
    remote = runner.invoke(main, ["validate", "--endpoint", "http://127.0.0.1:1", "--trace", SMALL_TRACE, "--load", "0.8",
                                  "-o", str(tmp_path / "v")])
    assert remote.exit_code == 2 and "--load needs the in-process executor" in remote.output
    assert not (tmp_path / "w").exists() and not (tmp_path / "v").exists()


def test_load_offers_that_share_of_the_lowest_capacity_over_the_policies():
    from fastserve.validate_cli import _at_load
    from policy.config import SchedulerConfig
    from sim.capacity import burst_capacity_rps
    from tests.sim.toy import ToyCost
    from traces.trace import Trace

    trace = Trace(np.array([0.0, 0.5, 1.0, 3.0]), np.array([10, 20, 30, 40]), np.array([6, 2, 9, 4]), source="t.csv")
    cost = ToyCost()
    cfgs = {"fcfs": SchedulerConfig(max_batch_size=4), "srpt": SchedulerConfig(max_batch_size=1)}
    capacity = {p: burst_capacity_rps(trace, cost, p, cfg) for p, cfg in cfgs.items()}
    assert capacity["srpt"] < capacity["fcfs"]  # one job at a time
    scaled, record = _at_load(trace, 0.5, cost, cfgs)
    assert record == {"load": 0.5, "capacity_rps": capacity, "rate_rps": 0.5 * capacity["srpt"],
                      "time_scale": pytest.approx((3 / 3.0) / (0.5 * capacity["srpt"]), rel=1e-12)}
    assert scaled.arrival_s.tolist() == pytest.approx((trace.arrival_s * record["time_scale"]).tolist(), rel=1e-12)
    assert scaled.stats()["rate_rps"] == pytest.approx(0.5 * capacity["srpt"], rel=1e-12)


def test_queued_time_share_weights_the_rows_with_a_queue_by_their_time():
    from analysis.validation import queued_time_share

    iterations = pd.DataFrame({"start_s": [1.0, 2.0, 5.0], "end_s": [1.5, 3.0, 5.5], "num_queued": [3, 0, 1]})
    assert queued_time_share(iterations) == 1.0 / 2.0  # 0.5 + 0.5 s of 2 s had requests waiting
    assert queued_time_share(iterations.assign(num_queued=0)) == 0.0
    assert math.isnan(queued_time_share(iterations.iloc[:0]))
