"""The profiler writes a valid profile in a small budget, and the bundled CPU profiles are sound."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from executor.profiler import ProfileConfig, profile_model
from fastserve.cli import main
from profiles import cost_model, load_profile
from profiles.models import get_model
from tests.executor.conftest import tiny

QUICK = dict(prefill_batch_sizes=(1, 2), prompt_tokens=(8, 32), decode_batch_sizes=(1, 4),
             context_tokens=(16, 64), swap_tokens=(16, 64), chunk_tokens=(8, 32), chunk_context_tokens=(0, 32),
             warmups=1, max_repeats=3)


def test_profile_of_a_tiny_model_within_budget():
    p = profile_model(tiny("tiny-opt").model, "tiny-opt", ProfileConfig(budget_s=2, **QUICK), "pytest", progress=False)
    assert p.source == "measured" and p.model == get_model("tiny-opt") and (p.tp, p.pp) == (1, 1)
    assert p.prefill.batch_sizes == (1, 2) and p.prefill.tokens == (8, 32)
    assert p.decode.batch_sizes == (1, 4) and p.decode.tokens == (16, 64)
    assert p.kv_bytes_per_token == 2 * 2 * 4 * 16 * 4 == get_model("tiny-opt").kv_bytes_per_token
    assert p.swap_out.size_bytes == (16 * 1024, 64 * 1024) == p.swap_in.size_bytes
    assert p.hardware["name"] == "cpu" and p.software["torch"] and p.software["transformers"]
    assert p.device_kv_tokens > 0 and p.host_kv_tokens > 0 and p.mixed_batch == "fused"
    g = p.prefill_context  # one chunk after 0 or 32 tokens of KV
    assert (g.batch_sizes, g.tokens) == ((8, 32), (0, 32)) and all(v > 0 for row in g.latency_s for v in row)


def test_profile_cli_writes_a_loadable_profile(tmp_path):
    out = tmp_path / "p.json"
    result = CliRunner().invoke(main, ["profile", "--model", "tiny-llama", "--quick", "--budget-s", "3",
                                       "--repeats", "2", "--hardware", "cpu-test", "-o", str(out)])
    assert result.exit_code == 0, result.output
    p = load_profile(out)
    assert p.name == "tiny-llama_cpu-test_tp1"
    assert p.generated_by == f"fastserve profile --model tiny-llama --budget-s 3.0 --repeats 2 --quick --hardware cpu-test -o {out}"
    assert cost_model(p).prefill_s(16) > 0


def test_profile_cli_errors_are_one_line(tmp_path):
    result = CliRunner().invoke(main, ["profile", "--model", "no-such-model", "-o", str(tmp_path / "p.json")])
    assert result.exit_code == 2 and "unknown model 'no-such-model'" in result.output
    assert "Traceback" not in result.output


def test_profile_config_validation():
    with pytest.raises(ValueError, match="prompt_tokens must hold at least 2 increasing"):
        ProfileConfig(prompt_tokens=(32, 16))
    with pytest.raises(ValueError, match="fewer than 2 grid points fit the model's 20-token context"):
        ProfileConfig(**{**QUICK, "context_tokens": (16, 64)}).capped(20)


@pytest.mark.parametrize("name", ["tiny-llama", "tiny-opt"])
def test_bundled_cpu_profiles_were_measured_by_the_profiler(name):
    p = load_profile(f"{name}_cpu_tp1")
    raw = json.loads((load_profile.__globals__["DATA_DIR"] / f"{name}_cpu_tp1.json").read_text())
    assert raw["generated_by"].startswith(f"fastserve profile --model {name} --device cpu")
    assert p.model == get_model(name) and p.source == "measured" and p.hardware["name"] == "cpu"
    assert p.kv_bytes_per_token == get_model(name).kv_bytes_per_token
    # the tables grow with work where the work is large enough to dominate noise
    assert p.prefill.latency_s[-1][-1] > p.prefill.latency_s[0][0]
    assert p.decode.latency_s[-1][-1] > p.decode.latency_s[0][0]
    assert p.swap_out.latency_s[-1] > p.swap_out.latency_s[0]
