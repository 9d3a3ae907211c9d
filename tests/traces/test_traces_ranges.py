"""Huge values are refused at load with file, row and column: no overflow later, no raw numpy
warning, and no half-written run directory."""

from __future__ import annotations

import warnings

import pytest
from click.testing import CliRunner

import traces
from fastserve.cli import main


@pytest.mark.parametrize("row, message", [
    ("1e30,20,6", "row 2, column 'arrival_s': arrival time 1e+30 is more than 1e+09 s (about 32 years) from the "
                  "trace start; is the column in another unit?"),
    ("1,1e30,6", "row 2, column 'prompt_tokens': 1e+30 is too large for an integer column"),
    ("1,20,200000000", "row 2, column 'output_tokens': 200,000,000 tokens is more than any model's context "
                       "(at most 100,000,000)"),
])
def test_out_of_range_values_are_named_at_load(tmp_path, row, message):
    path = tmp_path / "t.csv"
    path.write_text(f"arrival_s,prompt_tokens,output_tokens\n0,10,5\n{row}\n")
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no raw numpy cast warning on the way
        with pytest.raises(traces.TraceError) as err:
            traces.load(path)
    assert str(err.value) == f"{path}: {message}"
    r = CliRunner().invoke(main, ["trace", "stats", str(path)])
    assert r.exit_code == 1 and r.output == f"Error: {path}: {message}\n"
    r = CliRunner().invoke(main, ["simulate", "--trace", str(path), "-o", str(tmp_path / "run")])
    assert r.exit_code == 2 and r.output.splitlines()[-1] == f"Error: Invalid value for --trace: {path}: {message}"
    assert not (tmp_path / "run").exists()


def test_mooncake_milliseconds_are_checked_in_seconds(tmp_path):
    path = tmp_path / "m.jsonl"
    path.write_text('{"timestamp": 0, "input_length": 5, "output_length": 5}\n'
                    '{"timestamp": 999000000000, "input_length": 5, "output_length": 5}\n')
    assert traces.load(path).arrival_s[-1] == 999_000_000.0  # 999e9 ms is within range
