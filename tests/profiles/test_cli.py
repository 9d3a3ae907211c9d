import json
import re

from click.testing import CliRunner

from fastserve.profiles_cli import profiles


def run(*args):
    return CliRunner().invoke(profiles, list(args), catch_exceptions=False)


def test_roofline_then_show(tmp_path):
    out = tmp_path / "p.json"
    r = run("roofline", "--model", "opt-13b", "--gpu", "a100-80gb", "-o", str(out))
    assert r.exit_code == 0, r.output
    assert r.output == f"wrote {out}: opt-13b_a100-80gb_tp1, device KV 60,691 tokens, host KV 83,886 tokens\n"
    data = json.loads(out.read_text())
    assert data["generated_by"] == f"fastserve profiles roofline --model opt-13b --gpu a100-80gb --tp 1 --pp 1 -o {out}"
    r = run("show", str(out))
    assert r.exit_code == 0
    lines = dict(re.split(r"\s{2,}", line, maxsplit=1) for line in r.output.splitlines())
    assert lines["device kv"] == "60,691 tokens" and lines["kv bytes/token"] == "819,200"
    assert lines["parallelism"] == "tp=1 pp=1"
    assert lines["model"].startswith("opt-13b (opt, 40 layers, hidden 5120")
    assert lines["prefill 1 x 2048"].endswith(" ms")
    assert lines["transfers"] == "overlap compute (copy streams)"  # a GPU roofline
    assert "engine overhead" not in lines and "forward noise" not in lines  # measured-only terms


def test_show_a_measured_profile_lists_its_engine_terms(tmp_path):
    from profiles import EngineOverhead
    from profiles.store import save_profile
    from tests.profiles.builders import small_profile

    o = EngineOverhead(iteration_s=7e-6, per_job_s=1e-6, per_prefill_s=1.3e-5, per_swap_s=1.5e-5)
    path = save_profile(small_profile(overhead=o, policy_overhead={"fcfs": o}, forward_scale=1.04,
                                      forward_noise=(0.95, 1.0, 1.3), transfers="sync",
                                      forward_scale_by_batch=((1, 1.01), (12, 1.075))), tmp_path / "m.json")
    lines = dict(re.split(r"\s{2,}", line.strip(), maxsplit=1) for line in run("show", str(path)).output.splitlines())
    assert lines["transfers"] == "block compute (copied in the engine's thread)"
    assert lines["forward scale"] == "1.0400 x the grids (the typical engine pass)"
    assert lines["forward scale by batch"] == "1.010 at 1, 1.075 at 12 jobs (interpolated; used in place of the above)"
    assert lines["forward noise"] == "3 groups, 0.950..1.300 x typical, mean 1.0833"
    assert lines["engine overhead"].startswith("iteration 7.0 us + 1.00/job + 13.00/prefill; plan 0.0")
    assert lines["engine overhead"].endswith("; 15.0/swap") and lines["with fcfs"] == lines["engine overhead"]


def test_host_kv_option_and_pipeline(tmp_path):
    out = tmp_path / "p.json"
    r = run("roofline", "--model", "opt-175b", "--gpu", "a100-80gb", "--tp", "8", "--pp", "2",
            "--host-kv-gb", "32", "-o", str(out))
    assert r.exit_code == 0, r.output
    data = json.loads(out.read_text())
    assert data["kv"]["host_tokens"] == 32 * 2**30 // (2 * 48 * 12 * 128 * 2)
    assert "--host-kv-gb 32" in data["generated_by"]
    r = run("show", str(out))
    assert "send/recv 2048 tokens" in r.output and "tp=8 pp=2" in r.output


def test_list_and_show_bundled():
    r = run("list")
    assert "opt-13b_a100-80gb_tp1" in r.output and "(default)" in r.output
    assert "roofline" in run("show", "llama-2-7b_h100-sxm_tp1").output
    assert "engine overhead" not in run("show", "llama-2-7b_h100-sxm_tp1").output  # a roofline has none to measure
    lines = dict(re.split(r"\s{2,}", line.strip(), maxsplit=1)
                 for line in run("show", "llama-2-7b_h200_tp1").output.splitlines())
    assert lines["engine overhead"] == "not measured (fastserve profile --overhead-rounds 0)"


def test_errors_are_one_line(tmp_path):
    r = run("roofline", "--model", "tiny-llama", "--gpu", "cpu", "-o", str(tmp_path / "x.json"))
    assert r.exit_code == 1
    assert r.output.startswith("Error: hardware 'cpu' is measured-only") and r.output.count("\n") == 1
    r = run("roofline", "--model", "llama-2-70b", "--gpu", "a100-80gb", "-o", str(tmp_path / "x.json"))
    assert r.exit_code == 1 and "does not fit on a100-80gb" in r.output and r.output.count("\n") == 1
    bad = tmp_path / "bad.json"
    bad.write_text("{}")
    r = run("show", str(bad))
    assert r.output == f"Error: {bad}: field 'schema_version': missing\n"
    r = run("roofline", "--model", "gpt-9", "--gpu", "a100-80gb", "-o", "x.json")
    assert r.exit_code == 2 and "'gpt-9' is not one of" in r.output


def test_plot(tmp_path):
    png = tmp_path / "p.png"
    r = run("plot", "opt-13b_a100-80gb_tp1", "-o", str(png))
    assert r.exit_code == 0, r.output
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 20_000
