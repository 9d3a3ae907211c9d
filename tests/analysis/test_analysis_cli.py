"""`fastserve compare` and `fastserve plot`: output lines, files written, one-line errors."""

import pandas as pd
import pytest
from click.testing import CliRunner

from fastserve.analysis_cli import compare, plot
from tests.analysis.fixtures import write_run


@pytest.fixture
def runner():
    return CliRunner()


def test_compare_prints_table_and_ratio_lines(runner, run_dir):
    result = runner.invoke(compare, [str(run_dir), "--metric", "jct_mean_s", "--metric", "jct_p99_s"])
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert lines[0].split() == ["fcfs", "skip-join-mlfq"]
    assert "skip-join-mlfq vs fcfs: mean JCT 0.38x, p99 JCT 0.50x" in lines


def test_compare_with_slo_and_csv(runner, run_dir, tmp_path):
    out = tmp_path / "table.csv"
    result = runner.invoke(compare, [str(run_dir), "--ttft-slo-s", "1", "--tpot-slo-s", "1", "-o", str(out)])
    assert result.exit_code == 0, result.output
    ratio = next(line for line in result.output.splitlines() if line.startswith("skip-join-mlfq vs fcfs"))
    assert ratio.endswith("SLO attainment 1.50x, goodput 2.50x")  # 0.6 / 0.4 and 0.5 / 0.2
    table = pd.read_csv(out).set_index("label")
    assert table.loc["fcfs", "slo_attainment"] == pytest.approx(0.4)
    assert table.loc["skip-join-mlfq", "jct_mean_s_x"] == pytest.approx(0.375)


def test_compare_several_dirs_labels_by_name(runner, run_dir, tmp_path):
    other = write_run(tmp_path / "run-b")
    result = runner.invoke(compare, [str(run_dir), str(other), "--metric", "jct_mean_s"])
    assert result.exit_code == 0, result.output
    assert "run-b:skip-join-mlfq vs run-b:fcfs: mean JCT 0.38x" in result.output.splitlines()


def test_compare_errors_are_one_line(runner, run_dir, sweep_dir, tmp_path):
    cases = [
        ([str(tmp_path)], "neither a run directory"),
        ([str(sweep_dir), str(run_dir)], "is a sweep directory"),
        ([str(run_dir), "--metric", "nope_s"], "unknown metric(s) nope_s"),
        ([str(run_dir), "--baseline", "srpt"], "baseline policy 'srpt' is in none of the runs"),
        ([str(run_dir), "--ttft-slo-s", "1"], "give both --ttft-slo-s and --tpot-slo-s"),
    ]
    for args, message in cases:
        result = runner.invoke(compare, args)
        assert result.exit_code != 0
        errors = [line for line in result.output.splitlines() if line.startswith("Error")]
        assert len(errors) == 1 and message in errors[0], result.output
        assert "Traceback" not in result.output


def test_compare_names_the_file_with_missing_columns(runner, run_dir):
    path = run_dir / "requests.parquet"
    pd.read_parquet(path).drop(columns=["arrival_s"]).to_parquet(path)
    result = runner.invoke(compare, [str(run_dir)])
    assert result.exit_code == 1
    assert result.output.strip() == f"Error: {path}: missing column(s) arrival_s"


def test_plot_run_dir_writes_and_lists(runner, run_dir, tmp_path):
    out = tmp_path / "plots"
    result = runner.invoke(plot, [str(run_dir), "-o", str(out)])
    assert result.exit_code == 0, result.output
    names = ["jct_cdf.png", "timeline_fcfs.png", "timeline_skip-join-mlfq.png", "gantt.png"]
    assert sorted(p.name for p in out.iterdir()) == sorted(names)
    lines = result.stdout.splitlines()
    assert [line for line in lines if line.startswith("wrote")] == [f"wrote {out / n}" for n in names]
    assert "skipped: run directory: latency against rate and CV needs a sweep directory" in lines


def test_plot_run_dir_says_what_it_skips(runner, tmp_path):
    run = write_run(tmp_path / "bare", iterations=False, spans=False)
    result = runner.invoke(plot, [str(run), "-o", str(tmp_path / "p"), "--slo-s", "0.5"])
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert "skipped: no iterations.parquet: timeline skipped" in lines
    assert "skipped: no spans.parquet: Gantt skipped" in lines
    assert "skipped: --slo-s applies to sweep directories: not used for a run directory" in lines
    assert [p.name for p in (tmp_path / "p").iterdir()] == ["jct_cdf.png"]


def test_plot_sweep_dir(runner, sweep_dir, tmp_path):
    out = tmp_path / "plots"
    result = runner.invoke(plot, [str(sweep_dir), "-o", str(out), "--slo-s", "0.4"])
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in out.iterdir()) == [
        "latency_vs_cv_rate-1.0.png", "latency_vs_cv_rate-2.0.png", "latency_vs_cv_rate-4.0.png",
        "latency_vs_rate_cv-1.0.png", "latency_vs_rate_cv-2.0.png",
    ]
    lines = result.stdout.splitlines()
    assert f"note: 1 of 25 cells failed and 0 are pending: absent from the plots (see {sweep_dir / 'cells.csv'})" in lines
    assert ("note: throughput at SLO [cv=1.0] (p95 normalized latency <= 0.4 s/token, linear interpolation "
            "between swept rates): fcfs 1.5 req/s; skip-join-mlfq 3 req/s") in lines
    assert any(line.endswith("fcfs over the SLO at every rate; skip-join-mlfq >= 4 req/s") for line in lines)


def test_plot_sweep_without_slo_and_single_cv(runner, sweep_dir, tmp_path):
    summary = pd.read_csv(sweep_dir / "summary.csv")
    summary[summary["cv"] == 1.0].to_csv(sweep_dir / "summary.csv", index=False)
    result = runner.invoke(plot, [str(sweep_dir), "-o", str(tmp_path / "p")])
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert "skipped: no --slo-s: SLO line and throughput at SLO skipped" in lines
    assert "skipped: cv takes 1 value(s): latency vs burstiness (CV) skipped" in lines
    assert [p.name for p in (tmp_path / "p").iterdir()] == ["latency_vs_rate.png"]


def test_plot_errors_are_one_line(runner, tmp_path):
    result = runner.invoke(plot, [str(tmp_path), "-o", str(tmp_path / "p")])
    assert result.exit_code == 1
    assert result.output.strip() == f"Error: {tmp_path}: neither a run directory (no requests.parquet) nor a sweep directory (no cells.csv)"
    result = runner.invoke(plot, [str(tmp_path), "-o", str(tmp_path / "p"), "--slo-s", "-1"])
    assert result.exit_code == 2 and "--slo-s" in result.output


def test_commands_are_registered():
    from fastserve.cli import main
    assert {"compare", "plot"} <= set(main.list_commands(None))


def test_unwritable_outputs_are_one_line_errors(runner, run_dir, tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    result = runner.invoke(plot, [str(run_dir), "-o", str(blocker / "sub")])
    assert result.exit_code == 1
    assert result.output == f"Error: -o {blocker / 'sub'}: {blocker} is a file, not a folder\n"
    result = runner.invoke(compare, [str(run_dir), "-o", str(blocker / "t.csv")])
    assert result.exit_code == 1
    assert result.output == f"Error: -o {blocker / 't.csv'}: {blocker} is a file, not a folder\n"
