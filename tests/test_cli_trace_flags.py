"""Errors name only options the command has: `simulate`, `serve` and `validate` take the
--sort and --arrivals that trace errors suggest, and an unknown --model is blamed on --model."""

from __future__ import annotations

import pandas as pd
from click.testing import CliRunner

from fastserve.cli import main


def run(*args):
    return CliRunner().invoke(main, list(args))


def test_simulate_takes_the_flags_its_trace_errors_suggest(tmp_path):
    lengths = tmp_path / "lengths.csv"
    lengths.write_text("num_prefill_tokens,num_decode_tokens\n10,5\n20,6\n")
    r = run("simulate", "--trace", str(lengths), "--policy", "fcfs", "-o", str(tmp_path / "a"))
    assert r.exit_code == 2 and "--arrivals poisson:rate=4" in r.output
    r = run("simulate", "--trace", str(lengths), "--arrivals", "poisson:rate=4", "--policy", "fcfs", "-o", str(tmp_path / "a"))
    assert r.exit_code == 0, r.output
    assert pd.read_csv(tmp_path / "a" / "summary.csv").loc[0, "num_finished"] == 2

    unsorted = tmp_path / "unsorted.csv"
    unsorted.write_text("arrival_s,prompt_tokens,output_tokens\n1,10,5\n0,20,6\n")
    r = run("simulate", "--trace", str(unsorted), "--policy", "fcfs", "-o", str(tmp_path / "b"))
    assert r.exit_code == 2
    assert r.output.splitlines()[-1].endswith(
        "arrivals are not sorted (0.0 comes after 1.0 in the row above); pass sort=True (CLI: --sort) to sort them")
    r = run("simulate", "--trace", str(unsorted), "--sort", "--policy", "fcfs", "-o", str(tmp_path / "b"))
    assert r.exit_code == 0, r.output
    assert f"warning: {unsorted}: arrivals were not sorted (first at row 2); sorted them" in r.stderr


def test_every_trace_command_has_sort_and_arrivals():
    for name in ("simulate", "serve", "validate", ):
        params = {p.name for p in main.get_command(None, name).params}
        assert {"sort", "arrivals"} <= params, name


def test_serve_blames_an_unknown_model_on_model(tmp_path):
    r = run("serve", "--trace", "sample:bursty-small", "--model", "nosuchmodel", "-o", str(tmp_path / "r"))
    assert r.exit_code == 2
    assert r.output.splitlines()[-1].startswith("Error: Invalid value for --model: unknown model 'nosuchmodel'")
