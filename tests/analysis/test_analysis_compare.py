"""`analysis.compare`: ratios to the baseline, labels, and refusing ambiguous baselines."""

import pandas as pd
import pytest

from analysis.compare import compare, format_table, ratio_lines
from analysis.load import load_run
from analysis.run_metrics import run_metrics
from tests.analysis.fixtures import write_run


def metrics(run_dir):
    return run_metrics(load_run(run_dir))


def test_ratios_to_fcfs(run_dir):
    table = compare([("run-a", metrics(run_dir))], "fcfs", ["jct_mean_s", "jct_p99_s"]).set_index("label")
    assert table.loc["skip-join-mlfq", "jct_mean_s_x"] == pytest.approx(2.0 / (16 / 3))  # 0.375
    assert table.loc["skip-join-mlfq", "jct_p99_s_x"] == pytest.approx(3.94 / 7.94)
    assert table.loc["fcfs", "jct_mean_s_x"] == 1.0
    assert table["baseline"].tolist() == ["fcfs", "fcfs"]


def test_ratio_lines_and_table_text(run_dir):
    m = ["jct_mean_s", "jct_p99_s"]
    table = compare([("run-a", metrics(run_dir))], "fcfs", m)
    assert ratio_lines(table, m) == ["skip-join-mlfq vs fcfs: mean JCT 0.38x, p99 JCT 0.50x"]
    lines = format_table(table, m).splitlines()
    assert lines[0].split() == ["fcfs", "skip-join-mlfq"]  # policies side by side
    assert [line.split()[0] for line in lines[2:]] == ["num_offered", "num_finished", "num_rejected", "num_unfinished",
                                                       "overloaded", "jct_mean_s", "jct_p99_s"]
    assert [line.split() for line in lines[2:7]] == [
        ["num_offered", "5", "5"], ["num_finished", "3", "4"], ["num_rejected", "1", "0"], ["num_unfinished", "1", "1"],
        ["overloaded", "YES", "YES"]]
    assert lines[7].split() == ["jct_mean_s", "5.333", "(base)", "2", "(0.38x)"]
    assert lines[8].split() == ["jct_p99_s", "7.94", "(base)", "3.94", "(0.50x)"]


def test_several_runs_are_labelled_by_name(run_dir, tmp_path):
    other = write_run(tmp_path / "run-b")
    m = ["jct_mean_s"]
    table = compare([("run-a", metrics(run_dir)), ("run-b", metrics(other))], "fcfs", m)
    assert table["label"].tolist() == ["run-a:fcfs", "run-a:skip-join-mlfq", "run-b:fcfs", "run-b:skip-join-mlfq"]
    # each run's rows compare against that run's own fcfs
    assert table["baseline"].tolist() == ["run-a:fcfs", "run-a:fcfs", "run-b:fcfs", "run-b:fcfs"]
    assert ratio_lines(table, m)[0] == "run-a:skip-join-mlfq vs run-a:fcfs: mean JCT 0.38x"


def test_baseline_from_the_one_run_that_has_it(run_dir):
    m = metrics(run_dir)
    fcfs_only, sj_only = m[m["policy"] == "fcfs"], m[m["policy"] == "skip-join-mlfq"]
    table = compare([("a", fcfs_only), ("b", sj_only)], "fcfs", ["jct_mean_s"])
    assert table["baseline"].tolist() == ["a:fcfs", "a:fcfs"]
    assert table["jct_mean_s_x"].iloc[1] == pytest.approx(0.375)


def test_ambiguous_baseline_is_refused(run_dir):
    m = metrics(run_dir)
    fcfs_only, sj_only = m[m["policy"] == "fcfs"], m[m["policy"] == "skip-join-mlfq"]
    with pytest.raises(ValueError, match="baseline 'fcfs' is ambiguous .* runs a, b"):
        compare([("a", fcfs_only), ("b", fcfs_only), ("c", sj_only)], "fcfs", ["jct_mean_s"])


def test_unknown_baseline_and_metric(run_dir):
    with pytest.raises(ValueError, match="baseline policy 'srpt' is in none of the runs .*fcfs, skip-join-mlfq"):
        compare([("a", metrics(run_dir))], "srpt", ["jct_mean_s"])
    with pytest.raises(ValueError, match="unknown metric.* jct_p42_s; available: .*jct_mean_s"):
        compare([("a", metrics(run_dir))], "fcfs", ["jct_p42_s"])


def test_swap_shown_when_a_policy_has_several_modes(run_dir):
    m = metrics(run_dir)
    extra = m[m["policy"] == "skip-join-mlfq"].assign(swap="reactive", jct_mean_s=4.0)
    table = compare([("a", pd.concat([m, extra], ignore_index=True))], "fcfs", ["jct_mean_s"])
    assert table["label"].tolist() == ["fcfs (recompute)", "skip-join-mlfq (proactive)", "skip-join-mlfq (reactive)"]
    assert table["jct_mean_s_x"].tolist() == pytest.approx([1.0, 0.375, 0.75])
