"""Every output path a command takes is checked in one place (fastserve/outputs.py): a parent
that is a file is a one-line error naming the option, missing folders are created, and a run
directory that already holds results is refused unless --overwrite."""

from __future__ import annotations

import pandas as pd
import pytest
from click.testing import CliRunner

from fastserve.cli import main

SAMPLE = "sample:bursty-small"
PROFILE = "tiny-opt_cpu_tp1"


def run(*args):
    return CliRunner().invoke(main, list(args))


@pytest.mark.parametrize("args, option", [
    (["trace", "synth", "-n", "3", "--rate", "1", "--lengths", "fixed:prompt=4,output=4", "-o", "{f}/x.csv"], "-o"),
    (["trace", "convert", SAMPLE, "{f}/x.csv"], "OUT"),
    (["trace", "stats", SAMPLE, "--plot", "{f}/x.png"], "--plot"),
    (["profiles", "roofline", "--model", "opt-13b", "--gpu", "a100-80gb", "-o", "{f}/x.json"], "-o"),
    (["profiles", "plot", PROFILE, "-o", "{f}/x.png"], "-o"),
    (["simulate", "--trace", SAMPLE, "--profile", PROFILE, "-o", "{f}/run"], "-o"),
    (["plot", "{d}", "-o", "{f}/plots"], "-o"),
])
def test_a_parent_that_is_a_file_is_one_line_naming_the_option(tmp_path, args, option):
    afile = tmp_path / "afile"
    afile.write_text("")
    r = run(*[a.replace("{f}", str(afile)).replace("{d}", str(tmp_path)) for a in args])
    assert r.exit_code == 1, r.output
    assert r.output.strip().splitlines()[-1] == f"Error: {option} {afile}/{args[-1].split('/')[-1]}: {afile} is a file, not a folder"
    assert "Traceback" not in r.output


def _simulate(out, policy, *extra):
    return run("simulate", "--trace", SAMPLE, "--profile", PROFILE, "--policy", policy, "-o", str(out), *extra)


def test_compare_checks_its_output_before_printing_and_creates_folders(tmp_path):
    assert _simulate(tmp_path / "r", "fcfs").exit_code == 0
    afile = tmp_path / "afile"
    afile.write_text("")
    r = run("compare", str(tmp_path / "r"), "-o", str(afile / "c.csv"))
    assert r.exit_code == 1 and r.output == f"Error: -o {afile}/c.csv: {afile} is a file, not a folder\n"
    r = run("compare", str(tmp_path / "r"), "-o", str(tmp_path / "new" / "deep" / "c.csv"))
    assert r.exit_code == 0, r.output
    assert list(pd.read_csv(tmp_path / "new" / "deep" / "c.csv").policy) == ["fcfs"]


def test_a_second_run_into_the_same_directory_is_refused_unless_overwrite(tmp_path):
    out = tmp_path / "rr"
    assert _simulate(out, "fcfs").exit_code == 0
    r = _simulate(out, "mlfq")
    assert r.exit_code == 1
    assert r.output.splitlines()[-1] == (
        f"Error: -o {out}: already holds results (config.json, iterations.parquet, requests.parquet, ...); "
        "pass --overwrite to replace them, or choose another directory")
    assert list(pd.read_csv(out / "summary.csv").policy) == ["fcfs"]  # the first results are intact
    r = _simulate(out, "mlfq", "--overwrite")
    assert r.exit_code == 0, r.output
    assert list(pd.read_csv(out / "summary.csv").policy) == ["mlfq"]


def test_a_run_that_fails_before_any_result_leaves_no_directory(tmp_path):
    r = run("simulate", "--trace", SAMPLE, "--profile", PROFILE, "--policy", "fcfs", "--device-kv-tokens", "100",
            "-o", str(tmp_path / "r"))
    assert r.exit_code == 1
    assert r.output.splitlines()[-1] == (
        "Error: fcfs: device KV capacity (100 tokens) cannot hold one request of max_seq_tokens = 512")
    assert not (tmp_path / "r").exists()  # not even a config.json
