"""Fidelity targets: `fastserve validate` on CPU with tiny-llama and tiny-opt, fcfs and skip-join-mlfq
(proactive swapping), against the targets of issue 9:

    mean JCT error <= 5 %,  p99 JCT error <= 10 %,  median per-iteration error <= 5 %

Each model is validated `--repeats` times (a fresh process each: profile, serve, simulate,
compare); a target's figure is the MEDIAN of the repetitions' relative errors, printed with their
range. Timing on a shared 2-core machine is noisy: a repetition whose live run got less than 90 %
of a CPU while busy (validation.json, `busy_cpu_share`), or during whose live runs other
processes used half a core or more on average (`other_cpu_cores`: one on the other core takes
none of our CPU time but shares the caches and memory bandwidth, which made the live passes
5-15 % slower than the profile measured moments before), is marked contended and left out of
the verdict while quiet repetitions exist. `--wait-quiet-s` waits (up to that long) for the 1-minute
load average to fall below `--quiet-load` before each repetition.

The default workload keeps the tiny models busy ~95 % of the time with bursty arrivals (CV 2,
so queues form and drain) and keeps the device KV small (2,048 tokens) so that skip-join-mlfq
preempts and swaps proactively; near saturation a JCT error is a few times the per-iteration
error that causes it, which makes this a demanding test:

    python benchmarks/validate_targets.py [--models tiny-llama tiny-opt] [--repeats 3] [--out DIR]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd

TARGETS = {"jct_mean_s": 0.05, "jct_p99_s": 0.10, "iteration_s": 0.05}
POLICIES = ("fcfs", "skip-join-mlfq")
TRACE = "synth:num_requests=600,rate=200,cv=2,lengths=uniform:prompt=8-64,output=8-96,seed=5"
CAPACITY = ["--device-kv-tokens", "2048", "--host-kv-tokens", "16384", "--max-seq-tokens", "160"]
QUIET_SHARE = 0.9
QUIET_OTHERS_CORES = 0.5


def wait_quiet(max_wait_s: float, quiet_load: float) -> float:
    deadline = time.monotonic() + max_wait_s
    while os.getloadavg()[0] >= quiet_load and time.monotonic() < deadline:
        time.sleep(5)
    return os.getloadavg()[0]


def validate_once(model: str, out: Path, trace: str, budget_s: float) -> tuple[pd.DataFrame, dict]:
    cmd = [sys.executable, "-m", "fastserve", "validate", "--model", model, "--trace", trace,
           "--policy", "fcfs", "--policy", "skip-join-mlfq",  # skip-join swaps proactively by default
           "--profile-budget-s", str(budget_s), *CAPACITY, "-o", str(out)]
    done = subprocess.run(cmd, capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed:\n{done.stderr[-2000:]}")
    info = json.loads((out / "validation.json").read_text())
    summary = pd.read_csv(out / "live" / "summary.csv").set_index("policy")
    if summary.loc["skip-join-mlfq", "swap"] != "proactive":
        raise SystemExit(f"{out}: skip-join-mlfq ran with {summary.loc['skip-join-mlfq', 'swap']} swapping")
    swaps = summary["num_swaps"].to_dict()
    return pd.read_csv(out / "validation.csv"), {"contention": info["contention"], "live_swaps": swaps}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", nargs="+", default=["tiny-llama", "tiny-opt"], help="Catalog models to validate.")
    ap.add_argument("--repeats", type=int, default=3, help="Fresh-process repetitions per model (a figure is their median).")
    ap.add_argument("--trace", default=TRACE, help="Trace spec served and simulated.")
    ap.add_argument("--profile-budget-s", type=float, default=60.0, help="Time budget of each profiling run, seconds.")
    ap.add_argument("--wait-quiet-s", type=float, default=0.0, help="wait up to this long for a quiet machine")
    ap.add_argument("--quiet-load", type=float, default=1.0, help="1-minute load average counted as quiet")
    ap.add_argument("--out", default=None, help="keep the validate directories here [a temporary directory]")
    args = ap.parse_args()
    root = Path(args.out or tempfile.mkdtemp(prefix="validate_targets_"))
    print(f"trace {args.trace}\ncapacity {' '.join(CAPACITY)}; {args.repeats} repetitions per model; runs in {root}")
    rows, failed = [], 0
    for model in args.models:
        for rep in range(args.repeats):
            load = wait_quiet(args.wait_quiet_s, args.quiet_load) if args.wait_quiet_s else os.getloadavg()[0]
            table, info = validate_once(model, root / f"{model}_{rep}", args.trace, args.profile_budget_s)
            share = min(c["busy_cpu_share"] for c in info["contention"].values())
            others = [c.get("other_cpu_cores") for c in info["contention"].values()]
            others = None if None in others else max(others)
            print(f"{model} repetition {rep}: load average {load:.2f}, live CPU share while busy {share:.2f}, "
                  f"other processes' CPU during the live runs {'n/a' if others is None else f'{others:.2f}'} cores, "
                  f"live swaps {info['live_swaps']}")
            quiet = share >= QUIET_SHARE and (others is None or others < QUIET_OTHERS_CORES)
            rows.append(table.assign(model=model, rep=rep, quiet=quiet))
    runs = pd.concat(rows, ignore_index=True)
    print(f"\n{'model':>10} {'policy':>15} {'metric':>12} {'median err':>10} {'range':>19} {'quiet':>5} "
          f"{'target':>7}  verdict")
    for (model, policy, metric), g in runs.groupby(["model", "policy", "metric"], sort=False):
        quiet = g[g["quiet"]]
        use = quiet if len(quiet) else g
        err = use["rel_error"].median()
        target = TARGETS.get(metric)
        verdict = "" if target is None else ("PASS" if abs(err) <= target else "FAIL")
        if target is not None and not len(quiet):
            verdict += " (all repetitions contended)"
        failed += verdict.startswith("FAIL")
        print(f"{model:>10} {policy:>15} {metric:>12} {err:>+10.2%} [{g['rel_error'].min():+.2%}, "
              f"{g['rel_error'].max():+.2%}] {len(quiet):>2}/{len(g)} "
              f"{'' if target is None else f'{target:.0%}':>7}  {verdict}")
    print(f"\n{failed} target(s) missed" if failed else "\nall targets met")


if __name__ == "__main__":
    main()
