"""`fastserve trace synth|stats|convert`: outputs, files written, and one-line errors."""

from __future__ import annotations

import re

import pytest
from click.testing import CliRunner

import traces
from fastserve.cli import main
from tests.traces.conftest import AZURE_CODE, need


def run(*args: str, ok: bool = True):
    result = CliRunner().invoke(main, ["trace", *args])
    assert (result.exit_code == 0) == ok, result.output
    return result


def test_synth_then_stats_shows_cv_near_the_request(tmp_path):
    path = tmp_path / "t.csv"
    out = run(
        "synth",
        "--num-requests",
        "1000",
        "--rate",
        "4",
        "--cv",
        "3",
        "--lengths",
        "sharegpt-like",
        "--seed",
        "1",
        "-o",
        str(path),
    ).output
    assert "filter: kept 1,000 of 1,000 requests (no filters)" in out
    assert traces.load(path) == traces.synthesize(1000, "gamma:rate=4,cv=3", "sharegpt-like", 1)
    stats = run("stats", str(path)).output
    assert "requests          1,000" in stats
    cv = float(re.search(r"interarrival_cv\s+([\d.]+)", stats).group(1))
    assert cv == pytest.approx(3.0, abs=0.3)
    assert re.search(r"^\s+prompt\s+[\d,.]+\s+\d", stats, re.MULTILINE)


def test_synth_prints_the_filter_report(tmp_path):
    out = run(
        "synth",
        "-n",
        "200",
        "--arrivals",
        "constant:rate=2",
        "--lengths",
        "sharegpt-like",
        "--max-prompt-tokens",
        "1024",
        "--min-tokens",
        "4",
        "-o",
        str(tmp_path / "t.jsonl"),
    ).output
    report = re.search(
        r"filter: kept 200 of ([\d,]+) requests; removed ([\d,]+): (\d+) with prompt or output < 4 "
        r"tokens, ([\d,]+) with prompt > 1024 tokens",
        out,
    )
    assert report is not None, out
    drawn, removed, short, long = (int(g.replace(",", "")) for g in report.groups())
    assert drawn == 200 + removed == 200 + short + long


def test_stats_plot_writes_a_png(tmp_path):
    png = tmp_path / "plot.png"
    out = run("stats", "sample:bursty-small", "--plot", str(png)).output
    assert "requests          80" in out
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_convert_sorts_with_warning_and_filters(tmp_path):
    src = tmp_path / "in.csv"
    src.write_text("arrival_s,prompt_tokens,output_tokens\n0,5,5\n2,3000,5\n1,6,6\n")
    run("convert", str(src), str(tmp_path / "x.parquet"), ok=False)
    result = run(
        "convert", str(src), str(tmp_path / "out.parquet"), "--sort", "--max-prompt-tokens", "1024"
    )
    assert f"warning: {src}: arrivals were not sorted (first at row 3)" in result.output
    assert "filter: kept 2 of 3 requests; removed 1: 1 with prompt > 1024 tokens" in result.output
    out = traces.load(tmp_path / "out.parquet")
    assert out.arrival_s.tolist() == [0.0, 1.0] and out.request_id.tolist() == [0, 2]


def test_convert_lengths_table_with_arrivals_and_rescale(tmp_path):
    src = tmp_path / "sg.csv"
    src.write_text("num_prefill_tokens,num_decode_tokens\n3,4\n5,6\n7,8\n")
    run(
        "convert",
        str(src),
        str(tmp_path / "out.jsonl"),
        "--arrivals",
        "constant:rate=1",
        "--rescale-rate",
        "4",
    )
    assert traces.load(tmp_path / "out.jsonl").arrival_s.tolist() == [0.0, 0.25, 0.5]


@pytest.mark.parametrize(
    "args, message",
    [
        (("stats", "missing.csv"), "Error: missing.csv: no such file"),
        (
            ("synth", "-n", "5", "--rate", "-1", "--lengths", "alpaca-like", "-o", "x.csv"),
            "Error: poisson arrivals: key 'rate' must be > 0 requests/s, got -1.0",
        ),
        (
            ("synth", "-n", "5", "--rate", "1", "--lengths", "fixed:prompt=1", "-o", "x.csv"),
            "Error: lengths spec 'fixed:prompt=1': missing key 'output'",
        ),
        (
            (
                "synth",
                "-n",
                "5",
                "--rate",
                "1",
                "--arrivals",
                "poisson:rate=1",
                "--lengths",
                "alpaca-like",
                "-o",
                "x.csv",
            ),
            "Error: give exactly one of --rate (with optional --cv) or --arrivals",
        ),
        (
            ("synth", "-n", "5", "--rate", "1", "--lengths", "alpaca-like", "-o", "x.txt"),
            "Error: x.txt: unknown format: cannot tell the file type from its extension (use .csv, .jsonl or .parquet)",
        ),
    ],
)
def test_errors_are_one_line(tmp_path, monkeypatch, args, message):
    monkeypatch.chdir(tmp_path)
    result = run(*args, ok=False)
    assert result.output.strip().splitlines()[-1] == message
    assert "Traceback" not in result.output


def test_stats_of_the_azure_code_trace():
    out = run("stats", str(need(AZURE_CODE))).output
    assert "requests          8,819" in out
    assert re.search(
        r"^\s+prompt\s+2,047\.8\s+3\s+1,469\s+5,188\s+7,303\s+7,436\s+7,437$", out, re.MULTILINE
    ), out
