"""`fastserve compare SWEEP_DIR`: a row per swept setting, means over seeds, ratios to the
baseline policy at the same setting (fixture: tests/analysis/fixtures.py, SWEEP_P95)."""

import math

import pandas as pd
import pytest
from click.testing import CliRunner

from analysis.sweep_table import constant_params, format_sweep_table, sweep_table
from fastserve.analysis_cli import compare
from tests.analysis.fixtures import sweep_summary


def test_rows_are_settings_with_seed_means_and_ratios():
    table = sweep_table(sweep_summary(), ["jct_mean_s", "jct_p99_s"])
    assert list(table.columns) == ["policy", "swap", "rate", "cv", "num_seeds",
                                   "jct_mean_s", "jct_p99_s", "jct_mean_s_x", "jct_p99_s_x"]
    assert len(table) == 12 and (table["num_seeds"] == 2).all()
    row = table[(table.policy == "skip-join-mlfq") & (table.rate == 4.0) & (table.cv == 2.0)].iloc[0]
    assert row["jct_mean_s"] == pytest.approx(3.0)  # 10 x p95 0.3, the two seeds' +-0.05 cancel
    assert row["jct_mean_s_x"] == pytest.approx(0.3 / 1.1)  # fcfs at rate 4, cv 2: p95 1.1
    assert (table[table.policy == "fcfs"]["jct_p99_s_x"] == 1.0).all()


def test_without_the_baseline_there_are_no_ratios_and_constants_are_listed():
    only_mlfq = sweep_summary().query("policy == 'skip-join-mlfq' and cv == 1.0")
    table = sweep_table(only_mlfq, ["jct_mean_s"])
    assert list(table.columns) == ["policy", "rate", "num_seeds", "jct_mean_s", "jct_mean_s_x"]
    assert table["jct_mean_s_x"].isna().all()
    assert constant_params(only_mlfq) == {"policy": "skip-join-mlfq", "swap": "proactive", "cv": 1.0,
                                          "lengths": "sharegpt", "profile": "tiny", "replicas": 1, "tp": 1,
                                          "pp": 1, "max_batch": 16}
    text = format_sweep_table(table, ["jct_mean_s"]).splitlines()
    assert text[1].split() == ["skip-join-mlfq", "1.0", "2", "1"]  # no "(x)" without a ratio


def test_unknown_metric_lists_the_numeric_columns():
    with pytest.raises(ValueError, match=r"unknown metric\(s\) nope_s; available: num_finished, jct_mean_s"):
        sweep_table(sweep_summary(), ["nope_s"])


def test_cli_prints_the_sweep_table(sweep_dir, tmp_path):
    out = tmp_path / "t.csv"
    result = CliRunner().invoke(compare, [str(sweep_dir), "--metric", "jct_mean_s", "-o", str(out)])
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    cells = pd.read_csv(sweep_dir / "cells.csv")
    assert lines[0] == f"{sweep_dir}: {len(cells) - 1} of {len(cells)} cells done (1 failed, 0 pending: see cells.csv)"
    assert lines[1] == "fixed: lengths=sharegpt, profile=tiny, replicas=1, tp=1, pp=1, max_batch=16"
    assert lines[2].split() == ["policy", "swap", "rate", "cv", "num_seeds", "jct_mean_s"]
    assert lines[-2] == "ratios: to fcfs at the same parameters"
    saved = pd.read_csv(out)
    assert len(saved) == 12 and math.isclose(saved["jct_mean_s"].iloc[0], 3.0)


@pytest.mark.parametrize(("extra", "message"), [
    (["RUN"], "is a sweep directory; compare one sweep at a time"),
    (["--ttft-slo-s", "1", "--tpot-slo-s", "1"], "SLO limits need per-request data"),
])
def test_cli_sweep_errors_are_one_line(sweep_dir, run_dir, extra, message):
    args = [str(sweep_dir)] + [str(run_dir) if a == "RUN" else a for a in extra]
    result = CliRunner().invoke(compare, args)
    assert result.exit_code != 0
    errors = [line for line in result.output.splitlines() if line.startswith("Error")]
    assert len(errors) == 1 and message in errors[0], result.output
