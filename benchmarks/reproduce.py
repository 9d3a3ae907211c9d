"""Reproduce FastServe's evaluation in the simulator: one command regenerates every figure.

    python benchmarks/reproduce.py                  # every figure (see docs/reproduction.md for the time)
    python benchmarks/reproduce.py --only fig1 --only fig3b
    python benchmarks/reproduce.py --quick --out /tmp/repro --runs /tmp/repro/runs   # seconds

For each figure it runs the sweeps of its TOML configs under docs/reproduction/ (local
processes), then writes the PNG and a markdown fragment (tables, our numbers next to the
paper's claims) to OUT (default docs/reproduction/), prints the fragment, and splices it into
docs/reproduction.md between that figure's markers; the summary table of every claim is
rebuilt from each figure's latest `<fig>_claims.json`. Sweep directories go to RUNS (default
runs/reproduction/). Every run starts from scratch unless --resume: the sweeps' cell cache
would otherwise keep results from an older policy. Fig 2's OPT-175B profile is regenerated
first with the exact `fastserve profiles roofline` command recorded in its TOML (not in
--quick, which uses the committed file), and fig5's Azure trace window is written from
../shared/data (fig5 is skipped, saying so, when that data is absent). The script works from
the repository root, whatever the current directory, since configs name those files by
repo-relative paths. Each figure also writes `<fig>_results.csv`: the seed means its tables
quote, which `tests/test_reproduction_prose.py` checks the hand-written prose against.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

import pandas as pd
import reproduce_ablations
import reproduce_figures
import reproduce_regime
from reproduce_common import (
    CONFIG_DIR,
    DOC_PATH,
    QUICK_NUM_REQUESTS,
    REPO_ROOT,
    SYSTEM_LABELS,
    FigureData,
    expand,
    md_table,
    splice,
)

from analysis.load import load_sweep
from fastserve.rundir import environment, write_sim_run
from sim.sweep import run_sweep
from sim.sweep_config import SweepConfig

# figure -> (the TOML stems it reads, the function that plots and tabulates them)
FIGURES = {
    "fig1": (("fig1_chat", "fig1_chat_vllm", "fig1_chat_chunked", "fig1_multiturn"), reproduce_figures.fig1),
    "fig2": (("fig2_opt175b_40gb", "fig2_opt175b_80gb"), reproduce_figures.fig2),
    "fig3a": (("fig3a_skip_join",), reproduce_ablations.fig3a),
    "fig3b": (("fig3b_swap", "fig3b_swap_vllm"), reproduce_ablations.fig3b),
    "fig3c": (("fig3c_alpha", "fig3c_quantum"), reproduce_ablations.fig3c),
    "fig4": (("fig4_tail_burst", "fig4_load_memory"), reproduce_regime.fig4),
    "fig5": (("fig5_azure", "fig5_azure_vllm"), reproduce_figures.fig5),
}
# Profiles that a config names by path, and the command that derives each (run from REPO_ROOT).
PROFILE_COMMANDS = {
    f"docs/reproduction/opt-175b_{gpu}_tp8_pp2.json": [
        "profiles", "roofline", "--model", "opt-175b", "--gpu", gpu, "--tp", "8", "--pp", "2",
        "-o", f"docs/reproduction/opt-175b_{gpu}_tp8_pp2.json",
    ] for gpu in ("a100-40gb", "a100-80gb")
}
# Trace files that a config names by path: (the shared data they need, the command writing them).
AZURE_CONV = REPO_ROOT.parent / "shared" / "data" / "traces" / "azure_2023_conv.csv"
TRACE_COMMANDS = {
    "runs/traces/azure_2023_conv_1500.csv": (AZURE_CONV, [
        "trace", "convert", str(AZURE_CONV), "--max-prompt-tokens", "1024", "--max-total-tokens", "2048",
        "--head", "1500", "runs/traces/azure_2023_conv_1500.csv",
    ]),
}


def config_names() -> list[str]:
    return [name for names, _ in FIGURES.values() for name in names]


def regenerate_profiles(config: SweepConfig) -> None:
    for profile in config.grid.get("profile", []):
        if profile in PROFILE_COMMANDS:
            cmd = [sys.executable, "-m", "fastserve", *PROFILE_COMMANDS[profile]]
            subprocess.run(cmd, check=True, cwd=REPO_ROOT, stdout=sys.stderr)


def missing_data(names: tuple[str, ...]) -> str | None:
    """Why a figure cannot run (its shared data is absent), or None."""
    for name in names:
        config = SweepConfig.from_toml(CONFIG_DIR / f"{name}.toml")
        if config.trace in TRACE_COMMANDS and not TRACE_COMMANDS[config.trace][0].is_file():
            return f"{TRACE_COMMANDS[config.trace][0]} is absent"
    return None


def prepare_traces(config: SweepConfig, quick: bool) -> SweepConfig:
    """Write the trace file `config` names (if derived from shared data and absent); with
    --quick, a window of QUICK_NUM_REQUESTS requests instead, which the config then reads."""
    if config.trace not in TRACE_COMMANDS:
        return config
    path, cmd = config.trace, list(TRACE_COMMANDS[config.trace][1])
    if quick:
        path = path.removesuffix(".csv") + f".quick{QUICK_NUM_REQUESTS}.csv"
        cmd[cmd.index("--head") + 1] = str(QUICK_NUM_REQUESTS)
        cmd[-1] = path
    if not (REPO_ROOT / path).is_file():
        subprocess.run([sys.executable, "-m", "fastserve", *cmd], check=True, cwd=REPO_ROOT, stdout=sys.stderr)
    return replace(config, trace=path)


def run_config(name: str, quick: bool, runs_dir: Path, workers: int, resume: bool):
    """Run every sweep of one TOML; returns (its summary, its SweepRuns)."""
    config = SweepConfig.from_toml(CONFIG_DIR / f"{name}.toml")
    if not quick:
        regenerate_profiles(config)
    config = prepare_traces(config, quick)
    frames, sweeps = [], expand(name, config, quick)
    for run in sweeps:
        out = runs_dir / run.subdir
        if not resume:
            shutil.rmtree(out, ignore_errors=True)
        print(f"[{name}] sweep {run.subdir}: {len(run.config.cells())} cells -> {out}", file=sys.stderr)
        cells = run_sweep(run.config, out, write_sim_run, workers=workers)
        failed = cells[cells["status"] != "done"]
        if len(failed):
            errors = "; ".join(f"{r.cell_id}: {r.error}" for r in failed.head(2).itertuples())
            raise SystemExit(f"{out}: {len(failed)} of {len(cells)} cells did not finish (all in "
                             f"{out / 'cells.csv'}), e.g. {errors}")
        summary = load_sweep(out).summary.assign(**run.variant)
        if name in SYSTEM_LABELS:
            summary["policy"] = SYSTEM_LABELS[name]
        frames.append(summary)
    return pd.concat(frames, ignore_index=True), sweeps


def write_report(fig: str, markdown: str, claims: list[list[str]], results: pd.DataFrame | None,
                 out_dir: Path, doc: Path | None) -> None:
    # the fragment sits next to its images; the document one folder up links into reproduction/
    (out_dir / f"{fig}.md").write_text(markdown.replace("](reproduction/", "](") + "\n")
    if results is not None:
        results.to_csv(out_dir / f"{fig}_results.csv", index=False, float_format="%.6g")
    (out_dir / f"{fig}_claims.json").write_text(json.dumps(claims, indent=1, ensure_ascii=False) + "\n")
    if doc is not None:
        doc.write_text(splice(doc.read_text(), fig, markdown))


def write_summary(out_dir: Path, doc: Path | None) -> str:
    """Every figure's claims rows, from the latest run of each (figures never run are named)."""
    rows, missing = [], []
    for fig in FIGURES:
        path = out_dir / f"{fig}_claims.json"
        if path.is_file():
            rows += [[fig, *row] for row in json.loads(path.read_text())]
        else:
            missing.append(fig)
    markdown = md_table(rows, ["figure", "claim", "paper's setup", "paper", "ours", "why they differ"])
    if missing:
        markdown += f"\n\nNot yet generated in {out_dir}: {', '.join(missing)}."
    (out_dir / "summary.md").write_text(markdown + "\n")
    if doc is not None:
        doc.write_text(splice(doc.read_text(), "summary", markdown))
    return markdown


def _cpu_s() -> float:
    """CPU seconds of this process and its finished children (the sweep workers)."""
    t = os.times()
    return t.user + t.system + t.children_user + t.children_system


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--only", action="append", choices=list(FIGURES), help="Figure to regenerate; repeat for several [all].")
    ap.add_argument("--quick", action="store_true", help="Tiny grids (ends of each axis, one seed, 30 requests): a smoke test in seconds.")
    ap.add_argument("--out", type=Path, default=CONFIG_DIR, help="Where the PNGs and markdown fragments go [docs/reproduction].")
    ap.add_argument("--runs", type=Path, default=REPO_ROOT / "runs" / "reproduction", help="Where the sweep directories go [runs/reproduction].")
    ap.add_argument("--workers", type=int, default=None, help="Parallel simulations [number of CPUs; 1 with --quick].")
    ap.add_argument("--resume", action="store_true", help="Keep finished cells of earlier runs (only if the policy code has not changed).")
    ap.add_argument("--doc", type=Path, default=None, help="Document to splice the fragments into [docs/reproduction.md, unless --quick or --out is given].")
    ap.add_argument("--no-doc", action="store_true", help="Do not update any document.")
    args = ap.parse_args(argv)
    workers = args.workers or (1 if args.quick else os.cpu_count() or 1)
    if workers <= 0:
        ap.error(f"--workers must be positive, got {workers}")
    out_dir, runs_dir = args.out.resolve(), args.runs.resolve()
    doc = args.doc.resolve() if args.doc else None
    if doc is None and not args.no_doc and not args.quick and out_dir == CONFIG_DIR:
        doc = DOC_PATH
    if args.no_doc:
        doc = None
    os.chdir(REPO_ROOT)
    out_dir.mkdir(parents=True, exist_ok=True)

    started, cpu_started = time.perf_counter(), _cpu_s()
    env = environment()
    for fig in args.only or list(FIGURES):
        names, report_fn = FIGURES[fig]
        why_not = missing_data(names)
        if why_not:
            print(f"[{fig}] skipped: {why_not}; its block on the page is left as it was", file=sys.stderr)
            continue
        fig_started = time.perf_counter()
        summaries, sweeps = {}, {}
        for name in names:
            summaries[name], sweeps[name] = run_config(name, args.quick, runs_dir, workers, args.resume)
        report = report_fn(FigureData(summaries, sweeps, runs_dir, out_dir, workers))
        seconds = time.perf_counter() - fig_started
        command = "python benchmarks/reproduce.py --only " + fig + (" --quick" if args.quick else "")
        reused = " (--resume: finished cells of an earlier run reused)" if args.resume else ""
        stamp = (f"_Generated by `{command}` in {seconds:.0f} s{reused} on {workers} worker(s); git "
                 f"{(env['git_sha'] or 'unknown')[:10]}; configs: "
                 + ", ".join(f"`docs/reproduction/{n}.toml`" for n in names) + "._")
        markdown = stamp + "\n\n" + report.markdown
        write_report(fig, markdown, report.claims, report.results, out_dir, doc)
        print(f"\n## {fig}\n\n{markdown}\n", flush=True)
    print(f"\n## summary\n\n{write_summary(out_dir, doc)}\n", flush=True)
    print(f"done in {time.perf_counter() - started:.0f} s ({_cpu_s() - cpu_started:.0f} CPU-s, workers "
          f"included): figures and tables in {out_dir}"
          + (f", spliced into {doc}" if doc else ""), file=sys.stderr)


if __name__ == "__main__":
    main()
