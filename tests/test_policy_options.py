"""The scheduler flags of issue 14 through click: q_1 in ms or 'auto', the starvation clock, promotion."""

from __future__ import annotations

import click
import pytest
from click.testing import CliRunner

from fastserve.policy_options import policy_options, scheduler_config


@click.command()
@policy_options
def show(**options):
    cfg = scheduler_config(options, None, 1000, 1000)
    click.echo(f"{cfg.base_quantum_s!r} {cfg.starvation_check_s!r} {cfg.starvation_check_iterations!r} {cfg.promotion}")


@pytest.mark.parametrize(("args", "printed"), [
    ([], "'auto' 0.0 None quantum"),
    (["--base-quantum-ms", "auto"], "'auto' 0.0 None quantum"),
    (["--base-quantum-ms", "10", "--check-iterations", "1000", "--promotion", "paper"], "0.01 0.0 1000 paper"),
    (["--starvation-check-s", "0.5"], "'auto' 0.5 None quantum"),
])
def test_flags_reach_the_config(args, printed):
    result = CliRunner().invoke(show, args)
    assert result.exit_code == 0, result.output
    assert result.output.strip() == printed


@pytest.mark.parametrize(("args", "message"), [
    (["--base-quantum-ms", "fast"], "'fast' is neither a number of milliseconds nor 'auto'"),
    (["--base-quantum-ms", "0"], "base_quantum_s must be a positive number of seconds or 'auto', got 0.0"),
    (["--starvation-check-s", "-1"], "starvation_check_s must be >= 0, got -1.0"),
    (["--promotion", "eager"], "'eager' is not one of 'quantum', 'paper'"),
])
def test_bad_flags_are_one_line_errors(args, message):
    result = CliRunner().invoke(show, args)
    assert result.exit_code == 2
    assert message in result.output
