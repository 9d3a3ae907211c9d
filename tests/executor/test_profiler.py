"""The profiler writes a valid profile in a small budget, and the bundled CPU profiles are sound."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

import executor.profiler as profiler
from executor import profile_timing
from executor.profile_timing import swept_times
from executor.profiler import ProfileConfig, profile_model
from fastserve.cli import main
from profiles import cost_model, load_profile
from profiles.models import get_model
from tests.executor.conftest import tiny

QUICK = dict(prefill_batch_sizes=(1, 2), prompt_tokens=(8, 32), decode_batch_sizes=(1, 4),
             context_tokens=(16, 64), swap_tokens=(16, 64), chunk_tokens=(8, 32), chunk_context_tokens=(0, 32),
             warmups=1, max_repeats=3)


# QUICK is a small grid on purpose (speed); the overhead calibration runs past it
@pytest.mark.filterwarnings("ignore::profiles.grid_exits.ExtrapolationWarning")
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
    m = p.mixed_chunk  # what one chunk adds to a decode pass: from a one-token chunk (a decode)
    assert (m.batch_sizes, m.tokens) == ((1, 8, 32), (0, 32)) and all(v > 0 for row in m.latency_s for v in row)


def test_grid_points_are_measured_in_interleaved_sweeps(monkeypatch):
    """Each grid point's passes come in `sweeps` visits with every other grid point between
    them, not in one burst: a burst took whatever speed phase a shared machine was in."""
    shapes = []

    class Recording(profiler.ModelRunner):
        def step(self, segments):
            shapes.append(tuple((len(s.token_ids), s.start_pos) for s in segments))
            return super().step(segments)

    monkeypatch.setattr(profiler, "ModelRunner", Recording)
    cfg = ProfileConfig(budget_s=30, **{**QUICK, "max_repeats": 6}, sweeps=3, overhead=None)
    profile_model(tiny("tiny-opt").model, "tiny-opt", cfg, "pytest", progress=False)
    decode_4_at_64 = ((1, 63), (1, 62), (1, 62), (1, 62))  # job 0 at the full context, the rest masked
    chunk_8_after_32 = ((8, 32),)
    for shape in (decode_4_at_64, chunk_8_after_32):
        calls = [i for i, s in enumerate(shapes) if s == shape]
        bursts = 1 + sum(b - a > 1 for a, b in zip(calls, calls[1:], strict=False))
        # 1 warm-up + 2 samples, then twice 1 warm-up + 2 samples (the budget is ample)
        assert (len(calls), bursts) == (3 + 3 + 3, 3)
    # between two visits of a point lie the visits of the others, of all three grids and the
    # mixed passes (8 decodes at 64 with a chunk of 8 after 32)
    calls = [i for i, s in enumerate(shapes) if s == decode_4_at_64]
    between = set(shapes[calls[2] + 1:calls[3]])
    mixed_8_after_32 = ((1, 63), *[(1, 62)] * 7, (8, 32))
    assert {((32, 0), (32, 0)), chunk_8_after_32, mixed_8_after_32} <= between


class _PhasedClock:
    """A fake `Clock`: every sample lasts its probe's cost, doubled while the machine is in its
    slow phase (the first `slow_visits` visits), and one sample of each visit ten times as long
    (a time slice another process took), so the test measures no real time."""

    def __init__(self, slow_visits: int) -> None:
        self.slow_visits, self.visits, self.cost_s = slow_visits, 0, 0.0

    def samples_s(self, step, max_repeats: int, warmups: int, base=None) -> list[float]:
        step()
        factor = 2.0 if self.visits < self.slow_visits else 1.0
        self.visits += 1
        return [self.cost_s * factor] * (max_repeats - 1) + [10 * self.cost_s * factor]


@pytest.mark.parametrize(("sweeps", "expected"), [
    (1, {"a": 2e-3, "b": 4e-3, "c": 3e-3}),  # one burst each: "a" and "b" took the slow phase
    # every point spends one visit of three in the slow phase: the phase average, 4/3 of its cost
    (3, {"a": 4e-3 / 3, "b": 8e-3 / 3, "c": 12e-3 / 3}),
])
def test_swept_times_average_the_phases_and_drop_lost_slices(sweeps, expected):
    costs_s = {"a": 1e-3, "b": 2e-3, "c": 3e-3}
    clock = _PhasedClock(slow_visits=2 if sweeps == 1 else 3)  # the first third of the visits
    events = []

    def probe(key):
        def setup():
            clock.cost_s = costs_s[key]
            events.append(("set up", key))
            return profile_timing.Visit(lambda: events.append(("step", key)), lambda: events.append(("clean up", key)))
        return profile_timing.Probe(setup, max_repeats=3 * sweeps)

    times = swept_times(clock, {k: probe(k) for k in costs_s}, sweeps, warmups=2)
    assert times == pytest.approx(expected, rel=1e-12)
    visit = lambda k: [("set up", k), ("step", k), ("clean up", k)]  # noqa: E731
    assert events == [e for _ in range(sweeps) for k in costs_s for e in visit(k)]


def test_a_paired_sample_is_the_difference_of_two_passes_timed_back_to_back(monkeypatch):
    """The mixed_chunk grid's samples: the pass with the chunk minus the pass without, the two
    timed one right after the other, in alternating order; a fake clock, no real time."""
    now = [0.0]
    monkeypatch.setattr(profile_timing.time, "perf_counter", lambda: now[0])
    calls = []

    def step(name, cost_s):
        def run():
            calls.append(name)
            now[0] += cost_s
        return run

    cfg = ProfileConfig(budget_s=100, **QUICK)
    clock = profile_timing.Clock(cfg, 10, lambda: None, type("Bar", (), {"update": lambda self, n: None})())
    samples = clock.samples_s(step("mixed", 0.0015), 4, warmups=1, base=step("decodes", 0.0012))
    assert samples == pytest.approx([0.0003] * 4, abs=1e-15)
    assert calls == ["decodes", "mixed"] + ["decodes", "mixed", "mixed", "decodes"] * 2


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
    with pytest.raises(ValueError, match="max_repeats and sweeps must be positive"):
        ProfileConfig(sweeps=0)
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
