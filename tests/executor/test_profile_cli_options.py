"""`fastserve profile`'s options that choose what it measures: the grid axes and the
engine-overhead runs. Each profile here is a few seconds of a tiny model on the CPU."""

from __future__ import annotations

import re

import pytest
from click.testing import CliRunner

from executor.profiler import ProfileConfig
from fastserve.cli import main
from fastserve.profile_grid_options import AXES
from profiles import load_profile


def profile(tmp_path, *args):
    return CliRunner().invoke(main, ["profile", "--model", "tiny-llama", *args])


def test_grid_axes_are_measured_and_recorded_as_typed(tmp_path):
    out = tmp_path / "p.json"
    axes = ["--prefill-batch-sizes", "1,2", "--prompt-tokens", "8,32", "--decode-batch-sizes", "1,64,256",
            "--context-tokens", "16,128", "--swap-tokens", "16,64"]
    result = profile(tmp_path, "--budget-s", "2", *axes, "--overhead-rounds", "0", "-o", str(out))
    assert result.exit_code == 0, result.output
    p = load_profile(out)
    assert (p.prefill.batch_sizes, p.prefill.tokens) == ((1, 2), (8, 32))
    assert (p.decode.batch_sizes, p.decode.tokens) == ((1, 64, 256), (16, 128))
    assert p.swap_out.size_bytes == (16 * p.kv_bytes_per_token, 64 * p.kv_bytes_per_token)
    # generated_by runs again as written
    assert p.generated_by == " ".join(["fastserve profile --model tiny-llama --budget-s 2.0", *axes,
                                       "--overhead-rounds 0 -o", str(out)])


@pytest.mark.parametrize(("args", "message"), [
    (["--decode-batch-sizes", "4,2"], "Invalid value for '--decode-batch-sizes': '4,2': give at least 2 "
                                      "increasing positive integers"),
    (["--context-tokens", "16"], "Invalid value for '--context-tokens': '16': give at least 2 increasing"),
    (["--prompt-tokens", "0,8"], "Invalid value for '--prompt-tokens': '0,8': give at least 2 increasing"),
    (["--swap-tokens", "1,a"], "Invalid value for '--swap-tokens': '1,a' is not a comma-separated list of integers"),
    (["--quick", "--prefill-batch-sizes", "1,4"], "Invalid value for --prefill-batch-sizes: sets a grid axis, "
                                                  "which --quick's small grid fixes"),
    (["--overhead-rounds", "0", "--overhead-policy", "fcfs"], "Invalid value for --overhead-policy: is given with "
                                                              "--overhead-rounds 0, which measures no overhead"),
])
def test_bad_options_are_refused_before_any_work(tmp_path, args, message):
    out = tmp_path / "p.json"
    result = profile(tmp_path, *args, "-o", str(out))
    assert result.exit_code == 2 and message in result.output and not out.exists()


def test_a_grid_whose_kv_the_machine_lacks_is_refused_in_one_line(tmp_path, monkeypatch):
    import executor.profiler as profiler

    monkeypatch.setattr(profiler, "_available_ram_bytes", lambda: 2 ** 30)
    out = tmp_path / "p.json"
    # tiny-llama: 512 bytes a token; 8,192 x 512 tokens of decode KV is 2 GiB, over the 1 GiB
    result = profile(tmp_path, "--decode-batch-sizes", "1,8192", "--context-tokens", "2,512", "-o", str(out))
    assert result.exit_code == 1 and not out.exists()
    assert result.output.strip().splitlines()[-1] == (
        "Error: the grid needs 2.0 GiB of KV (decode 8192 jobs x 512 tokens, prefill 8 x 512, swap 4096), more "
        "than the 1.0 GiB of available RAM; use smaller --decode-batch-sizes, --context-tokens, "
        "--prefill-batch-sizes, --prompt-tokens or --swap-tokens")


def test_help_states_the_profilers_default_axes():
    # the CLI cannot import the profiler (torch) to read them, so the help text repeats them
    for flag, help_text in AXES:
        default = getattr(ProfileConfig(), flag[2:].replace("-", "_"))
        assert re.search(r"\[([\d,]+)\]", help_text).group(1) == ",".join(map(str, default)), flag


def test_engine_overhead_runs_are_chosen_or_left_out(tmp_path):
    out = tmp_path / "p.json"
    result = profile(tmp_path, "--quick", "--budget-s", "2", "--overhead-policy", "fcfs",
                     "--overhead-policy", "skip-join-mlfq", "--overhead-rounds", "1", "-o", str(out))
    assert result.exit_code == 0, result.output
    p = load_profile(out)
    assert p.generated_by == ("fastserve profile --model tiny-llama --budget-s 2.0 --quick --overhead-policy fcfs "
                              f"--overhead-policy skip-join-mlfq --overhead-rounds 1 -o {out}")
    assert sorted(p.policy_overhead) == ["fcfs", "skip-join-mlfq"] and p.overhead is not None
    assert not p.notes["engine_overhead"].startswith("not measured")

    none = tmp_path / "none.json"
    result = profile(tmp_path, "--quick", "--budget-s", "2", "--overhead-rounds", "0", "-o", str(none))
    assert result.exit_code == 0, result.output
    p = load_profile(none)
    assert p.overhead is None and p.policy_overhead == {}
    assert p.notes["engine_overhead"] == "not measured (fastserve profile --overhead-rounds 0)"


def test_a_source_tree_not_installed_records_its_pyproject_version(monkeypatch):
    from importlib import metadata

    import executor.profiler as profiler

    def not_installed(pkg):
        if pkg == "fastserve":
            raise metadata.PackageNotFoundError(pkg)
        return "9.9"

    declared = metadata.version("fastserve")  # installed editable from this tree's pyproject.toml
    monkeypatch.setattr(profiler.metadata, "version", not_installed)
    assert profiler._software()["fastserve"] == f"{declared} (source tree)"
    assert profiler._software()["torch"] == "9.9"
