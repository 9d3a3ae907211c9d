"""Warnings reach the user as one line each, and extrapolated costs are counted in the run."""

from __future__ import annotations

import json
import re

from click.testing import CliRunner

from fastserve.cli import main


def test_profiles_show_marks_extrapolated_rows_without_a_python_warning():
    r = CliRunner().invoke(main, ["profiles", "show", "tiny-llama_cpu_tp1"])
    assert r.exit_code == 0 and r.stderr == ""
    rows = dict(re.split(r"\s{2,}", line.strip(), maxsplit=1) for line in r.stdout.splitlines())
    assert rows["decode 64 x ctx 512"].endswith("ms (extrapolated past the measured grid)")
    assert not rows["decode 16 x ctx 512"].endswith(")")


def test_a_run_past_the_grid_warns_in_one_line_and_counts_the_lookups(tmp_path):
    trace = tmp_path / "burst.csv"
    trace.write_text("arrival_s,prompt_tokens,output_tokens\n" + "".join(f"0,{30 + i},8\n" for i in range(20)))
    r = CliRunner().invoke(main, ["simulate", "--trace", str(trace), "--profile", "tiny-llama_cpu_tp1",
                                  "--policy", "vllm-fcfs", "-o", str(tmp_path / "r")])
    assert r.exit_code == 0, r.output
    warnings = [line for line in r.stderr.splitlines() if "warning" in line.lower()]
    assert len(warnings) == 1 and "extrapolating" in warnings[0]
    assert warnings[0].endswith("warning: profile tiny-llama_cpu_tp1: prefill of 16 prompts of mean 37.5 tokens: "
                                "the measured batch is 1..8; extrapolating (warned once; the run counts every "
                                "extrapolated lookup)")
    # how far, and (a measured profile) which `fastserve profile` option measures that far
    assert ("; 1 cost lookups extrapolated past the profile's grid (furthest: prefill batch 16; fastserve profile "
            "--prefill-batch-sizes measures that far)\n") in r.stderr
    config = json.loads((tmp_path / "r" / "config.json").read_text())
    assert config["runs"] == {"vllm-fcfs": {"num_extrapolations": 1}}


def test_furthest_lookups_name_the_options_only_for_a_measured_profile():
    from fastserve.simulate_cli import furthest_lookups

    furthest = {"prompt tokens": 3925.4, "decode batch": 168}
    assert furthest_lookups(furthest, True) == (" (furthest: prompt tokens 3,925, decode batch 168; fastserve profile "
                                                "--prompt-tokens/--decode-batch-sizes measures that far)")
    assert furthest_lookups(furthest, False) == " (furthest: prompt tokens 3,925, decode batch 168)"
    assert furthest_lookups({}, True) == ""
