"""The reproduction (docs/reproduction.md) cannot silently rot.

- every sweep config under docs/reproduction/ parses, is read by some figure of
  benchmarks/reproduce.py, names profiles that load (with the grid's TP/PP) and length specs
  that parse, and its first cell builds; every variant is a valid SchedulerConfig;
- the document has markers for every figure and links only images that exist;
- the helpers that the numbers rest on are exact (swap stall, splicing);
- `benchmarks/reproduce.py --quick` runs end to end on tiny grids and writes every figure,
  every table and a spliced copy of the document.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pandas as pd
import pytest

import profiles
import traces
from policy import SchedulerConfig
from sim.sweep import build_cell
from sim.sweep_config import SweepConfig

REPO_ROOT = Path(__file__).resolve().parent.parent
CONFIG_DIR = REPO_ROOT / "docs" / "reproduction"
DOC = REPO_ROOT / "docs" / "reproduction.md"
CONFIGS = sorted(CONFIG_DIR.glob("*.toml"))


@pytest.fixture(scope="module")
def reproduce():
    sys.path.insert(0, str(REPO_ROOT / "benchmarks"))
    try:
        import reproduce as module
        yield module
    finally:
        sys.path.remove(str(REPO_ROOT / "benchmarks"))


def test_there_are_configs_and_each_is_read_by_a_figure(reproduce):
    assert len(CONFIGS) == 15
    assert sorted(p.stem for p in CONFIGS) == sorted(reproduce.config_names())


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: p.stem)
def test_config_parses_and_its_profiles_and_lengths_resolve(path, monkeypatch, reproduce):
    monkeypatch.chdir(REPO_ROOT)  # configs name generated profiles by repo-relative paths
    config = SweepConfig.from_toml(path)
    if config.trace != "synth":  # a trace file the script derives from ../shared/data
        source, command = reproduce.TRACE_COMMANDS[config.trace]
        assert command[-1] == config.trace
        if not source.is_file():
            pytest.skip(f"{source} is absent (../shared/data beside the repo root)")
        config = reproduce.prepare_traces(config, quick=True)
    assert config.grid["policy"]
    for name in config.grid["profile"]:
        cost = profiles.cost_model(profiles.load_profile(name))
        for key in ("tp", "pp"):
            assert config.grid.get(key, [getattr(cost, key)]) == [getattr(cost, key)], (name, key)
    for spec in config.grid.get("lengths", []):
        traces.parse_lengths(spec)
    small = replace(config, num_requests=5)
    trace, _, sched, _ = build_cell(small.cells()[0], small.to_dict())
    assert len(trace.arrival_s) == (5 if config.trace == "synth" else 30)
    assert sched.max_batch_size == config.grid["max_batch"][0]


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: p.stem)
def test_variants_are_valid_scheduler_configs(path, reproduce):
    from reproduce_common import LOAD_RELATIVE, POLICY_SETTINGS, VARIANTS, expand

    config = SweepConfig.from_toml(path)
    # load-relative sweeps measure a knee per workload: the quick grid keeps this test short
    quick = path.stem in LOAD_RELATIVE
    runs = expand(path.stem, config, quick=quick)
    if path.stem in VARIANTS:
        expected = len(VARIANTS[path.stem][1])
    elif quick:
        # one sweep per workload left by the quick grid: 2 lengths, or 1 lengths x 2 KV sizes
        expected = 2
        for run in runs:
            assert run.variant["knee_rps"] > 0
            loads = config.grid["rate"]
            loads = [loads[0], loads[-1]] if len(loads) > 2 else loads
            assert run.config.grid["rate"] == [round(x * run.variant["knee_rps"], 4) for x in loads]
    else:
        expected = 1
    assert len(runs) == expected
    assert len({r.subdir for r in runs}) == expected
    for run in runs:
        SchedulerConfig(**run.config.scheduler)
        for key, value in run.variant.items():
            if key != "knee_rps":
                assert run.config.scheduler[key] == value
        # the page's scheduler settings, from their one place (a variant overrides its own field)
        for key, value in POLICY_SETTINGS.items():
            assert run.config.scheduler[key] == run.variant.get(key, value), key


def test_a_config_may_not_set_the_pages_scheduler_settings(reproduce):
    from reproduce_common import expand

    config = SweepConfig.from_toml(CONFIG_DIR / "fig3a_skip_join.toml")
    bad = replace(config, scheduler={**config.scheduler, "alpha_s": 1.0})
    with pytest.raises(ValueError, match="alpha_s; the page's scheduler settings live in"):
        expand("fig3a_skip_join", bad, quick=True)


def test_quick_shrinks_every_axis_but_policy_and_swap(reproduce):
    from reproduce_common import QUICK_NUM_REQUESTS, expand

    config = SweepConfig.from_toml(CONFIG_DIR / "fig3b_swap.toml")
    (run,) = expand("fig3b_swap", config, quick=True)
    assert run.config.grid["rate"] == [0.5, 1.25]
    assert run.config.grid["swap"] == ["proactive", "reactive", "recompute"]
    assert run.config.seeds == (0,)
    assert run.config.num_requests == QUICK_NUM_REQUESTS


def test_document_has_a_block_per_figure_and_its_images_exist(reproduce):
    text = DOC.read_text()
    for block in [*reproduce.FIGURES, "summary"]:
        assert text.count(f"<!-- reproduce:{block} -->") == 1, block
        assert text.count(f"<!-- /reproduce:{block} -->") == 1, block
    for fig in reproduce.FIGURES:
        assert f"python benchmarks/reproduce.py --only {fig}" in text, fig
    for image in re.findall(r"\]\((reproduction/[^)]+\.png)\)", text):
        assert (DOC.parent / image).is_file(), image


def test_splice_replaces_only_the_marked_block(reproduce):
    from reproduce_common import splice

    doc = "intro\n<!-- reproduce:fig1 -->\nold\n<!-- /reproduce:fig1 -->\noutro\n"
    assert splice(doc, "fig1", "new\n") == "intro\n<!-- reproduce:fig1 -->\nnew\n<!-- /reproduce:fig1 -->\noutro\n"
    with pytest.raises(ValueError, match="reproduce:fig2"):
        splice(doc, "fig2", "x")


def test_swap_stall_integrates_requests_in_system_over_gaps(reproduce):
    from reproduce_ablations import swap_stall

    requests = pd.DataFrame({"arrival_s": [0.0, 1.0, 5.0], "finish_s": [2.0, 3.0, 6.0],
                             "status": ["finished"] * 3})
    iterations = pd.DataFrame({"start_s": [0.0, 1.8, 2.0, 5.2], "end_s": [1.5, 2.0, 3.0, 6.0]})
    # gap 1.5-1.8 with 2 requests in the system: 0.6 request-seconds, 0.3 s of engine time;
    # gap 3.0-5.2 with none until the arrival at 5.0: 0.2 and 0.2. JCTs sum to 5, span is 6.
    latency_share, engine_share = swap_stall(requests, iterations)
    assert latency_share == pytest.approx(0.8 / 5, rel=1e-12)
    assert engine_share == pytest.approx(0.5 / 6, rel=1e-12)


def test_quick_mode_runs_end_to_end(tmp_path, reproduce):
    doc = tmp_path / "reproduction.md"
    doc.write_text(DOC.read_text())
    out = tmp_path / "out"
    proc = subprocess.run(
        [sys.executable, str(REPO_ROOT / "benchmarks" / "reproduce.py"), "--quick", "--out", str(out),
         "--runs", str(tmp_path / "runs"), "--doc", str(doc)],
        capture_output=True, text=True, timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    # a figure whose ../shared/data is absent is skipped, saying so, and keeps its committed block
    ran = [fig for fig, (names, _) in reproduce.FIGURES.items() if reproduce.missing_data(names) is None]
    for fig in reproduce.FIGURES.keys() - ran:
        assert f"[{fig}] skipped: " in proc.stderr
        assert not (out / f"{fig}.md").exists()
    for fig in ran:
        fragment = (out / f"{fig}.md").read_text()
        assert f"--only {fig} --quick" in fragment
        assert f"## {fig}" in proc.stdout
        for image in re.findall(r"\]\(([^)]+\.png)\)", fragment):
            assert (out / image).stat().st_size > 10_000, image
    spliced = doc.read_text()
    assert spliced.count("--quick` in") == len(ran)
    # the text outside the markers is the committed document's, unchanged
    strip = lambda t: re.sub(r"<!-- reproduce:(\w+) -->.*?<!-- /reproduce:\1 -->", "", t, flags=re.DOTALL)  # noqa: E731
    assert strip(spliced) == strip(DOC.read_text())
    assert "| skip-join-mlfq |" in spliced
    summary = (out / "summary.md").read_text()
    skipped = sorted(reproduce.FIGURES.keys() - ran)
    if skipped:  # named after the table
        assert summary.rstrip().endswith(f"Not yet generated in {out}: {', '.join(skipped)}.")
    rows = [line for line in summary.splitlines()[2:] if line.startswith("| ")]
    assert [line.split(" | ")[0] for line in rows] == [
        f"| {fig}" for fig in ran for _ in range(len(json.loads((out / f"{fig}_claims.json").read_text())))]
    assert summary.strip() in spliced
