"""README facts that code can check: the example trace is not an overload example, help points
at the documented sweep format, and the default profiles are the ones the README names."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

from click.testing import CliRunner

import profiles
import traces
from fastserve.cli import main
from fastserve.load_report import offered_rate_rps
from profiles.sustainable import sustainable_rate_rps

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text()


def _synth_command() -> list[str]:
    text = re.search(r"fastserve trace synth (.*?) -o t\.csv", README, re.S).group(1).replace("\\\n", " ")
    return shlex.split(text)


def test_the_readme_trace_is_below_what_its_profile_sustains(tmp_path):
    out = tmp_path / "t.csv"
    r = CliRunner().invoke(main, ["trace", "synth", *_synth_command(), "-o", str(out)])
    assert r.exit_code == 0, r.output
    trace = traces.load(out)
    cost = profiles.cost_model(profiles.load_profile("opt-13b_a100-80gb_tp1"))  # what step 1 writes
    sustainable = sustainable_rate_rps(cost, trace.prompt_tokens, trace.output_tokens, 16, cost.device_kv_tokens)
    assert offered_rate_rps(trace.arrival_s) < sustainable
    assert f"(~{sustainable:.1f} req/s)" in README.replace("\n#   ", " ").replace("\n#    ", " ")


def test_sweep_help_points_at_the_documented_format():
    r = CliRunner().invoke(main, ["sweep", "--help"])
    assert "docs/sweeps/README.md" in r.output and (ROOT / "docs/sweeps/README.md").is_file()
    assert "sim/sweep_config.py" not in r.output


def test_the_default_profiles_are_the_ones_the_readme_names():
    demo = next(p for p in main.get_command(None, "demo").params if p.name == "profile")
    assert demo.default == "opt-13b_a100-40gb_tp1" and "OPT-13B / A100-40GB profile" in README
    assert profiles.DEFAULT_PROFILE == "opt-13b_a100-80gb_tp1"
    assert "simulate and sweep use opt-13b_a100-80gb_tp1" in README.replace("\n#    ", " ")
    assert "The simulator's demo uses it" not in (ROOT / "traces/data/README.md").read_text()
