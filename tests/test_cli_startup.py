"""CLI start-up stays light (fastserve/cli.py's docstring): importing `fastserve.cli` loads no
plotting, torch or transformers, `fastserve --help` lists every command without importing it,
and each listed summary is the command's own."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from click.testing import CliRunner

from fastserve.cli import COMMANDS, load_command, main

REPO = Path(__file__).resolve().parent.parent
HEAVY = ("matplotlib", "seaborn", "torch", "transformers", "analysis", "sim", "executor")

_PROBE = """
import json, sys
from click.testing import CliRunner
import fastserve.cli
imported = set(sys.modules)
result = CliRunner().invoke(fastserve.cli.main, ["--help"])
after_help = set(sys.modules)
print(json.dumps({"import": sorted(imported), "help": sorted(after_help), "exit": result.exit_code}))
"""


def _loaded(names: list[str]) -> list[str]:
    return sorted({n for n in names if n.partition(".")[0] in HEAVY})


def test_importing_the_cli_and_its_help_load_no_heavy_module():
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    out = subprocess.run([sys.executable, "-c", _PROBE], capture_output=True, text=True, env=env, cwd=REPO,
                         check=True).stdout
    probe = json.loads(out)
    assert probe["exit"] == 0
    assert _loaded(probe["import"]) == []
    assert _loaded(probe["help"]) == []
    assert not {m for m in probe["help"] if m.startswith("fastserve.") and m.endswith("_cli")}


def test_every_listed_command_exists_with_the_listed_summary():
    for name, (_, summary) in COMMANDS.items():
        command = load_command(name)
        assert command.get_short_help_str(limit=10_000) == summary, name
    assert list(COMMANDS) == sorted(COMMANDS)


def test_help_lists_every_command_and_runs_one():
    result = CliRunner().invoke(main, ["--help"], terminal_width=200)
    assert result.exit_code == 0
    listed = [line.split()[0] for line in result.output.split("Commands:")[1].splitlines() if line.strip()]
    assert listed == sorted(COMMANDS)
    assert "Simulate POLICIES on a trace and write requests.parquet, summary.csv and config.json." in result.output
    result = CliRunner().invoke(main, ["trace", "--help"])
    assert result.exit_code == 0 and "Workload traces" in result.output


def test_an_unknown_command_is_a_one_line_error():
    result = CliRunner().invoke(main, ["simulat"])
    assert result.exit_code == 2
    assert "No such command 'simulat'" in result.output
