"""Fidelity targets: `fastserve validate` on CPU with tiny-llama and tiny-opt, fcfs and skip-join-mlfq
(proactive swapping), and the chunked-prefill baseline sarathi, against the targets of issue 9:

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

Every configuration serves the same trace's arrival pattern (600 requests, bursty: CV 2) at 80 %
of the capacity its repetition's own profile gives (`fastserve validate --load 0.8`,
sim/capacity.py: what the simulator finishes per second with every request at once, the lowest
over the validated policies). It runs at two device KV sizes and a chunked configuration
(`--kv`):

- standard, 2,048 tokens, fcfs and skip-join-mlfq;
- swap-heavy, 768 tokens, skip-join-mlfq only: it swaps 744-2,430 times a run (2026-12-03; the check
  refuses a run with fewer than 100), so the swap timing is validated too. (fcfs never swaps;
  reserving max_seq_tokens per request it would hold 4 at a time.)
- chunked, 2,048 tokens, `sarathi` (chunked-prefill FCFS, vLLM's recompute preemption) with a
  32-token budget per iteration (`--chunked-prefill-tokens 32`): most prompts (8-64 tokens) run
  in chunks beside the decodes, so the prefill-with-context term and the mixed chunk iterations
  are validated.

Why a load and not a rate: at the fixed rate these configurations used until 2026-12-03 (200
req/s), the servers sat on the knee: requests waited during 93-98 % of the chunked runs, and
one code's live mean JCT ranged over 0.10-2.04 s as the VM's speed drifted. There a few % of
speed difference between the profile and the live run made +-40 % of JCT error, and a
10-repetition median passed or failed by chance. At 80 % the simulator's own JCT moves ~1.1 %
per 1 % of speed, and the errors show what is systematic (README).

Each repetition also reports `replayed_jct_mean_s`, `replayed_jct_p50_s` and `replayed_jct_p99_s`
(no target): the simulation once more over the live run's own clock (profiles/replay.py), so
that the machine's drift between the profile step and the live run is given. What error is
left there is the simulator's scheduling, batching and queueing; the rest of the profile-only
error is the drift (README, "Where the error comes from").

Single runs still spread by tens of percent, so a figure is the median of the repetitions;
use --repeats 10 for a verdict (about 12 minutes per KV size on 2 cores).
`benchmarks/fidelity_breakdown.py DIR` breaks a kept run down (--out DIR).

    python benchmarks/validate_targets.py [--models tiny-llama tiny-opt] [--kv standard swap-heavy chunked]
                                          [--repeats 5] [--out DIR]
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
DEVICE_KV_TOKENS = {"standard": 2048, "swap-heavy": 768, "chunked": 2048}
MIN_SWAPS = {"standard": 0, "swap-heavy": 100, "chunked": 0}  # skip-join-mlfq's live swaps, or the run is refused
POLICIES_AT = {"standard": POLICIES, "swap-heavy": ("skip-join-mlfq",), "chunked": ("sarathi",)}
CHUNKED_PREFILL_TOKENS = {"chunked": 32}  # per-iteration token budget where chunking is on
LOAD = {"standard": 0.8, "swap-heavy": 0.8, "chunked": 0.8}  # `validate --load`: share of the capacity (above)


def capacity(kv: str) -> list[str]:
    chunked = ["--chunked-prefill-tokens", str(CHUNKED_PREFILL_TOKENS[kv])] if kv in CHUNKED_PREFILL_TOKENS else []
    load = ["--load", str(LOAD[kv])] if kv in LOAD else []
    return ["--device-kv-tokens", str(DEVICE_KV_TOKENS[kv]), "--host-kv-tokens", "16384", "--max-seq-tokens", "160",
            *chunked, *load]
QUIET_SHARE = 0.9
QUIET_OTHERS_CORES = 0.5


def wait_quiet(max_wait_s: float, quiet_load: float) -> float:
    deadline = time.monotonic() + max_wait_s
    while os.getloadavg()[0] >= quiet_load and time.monotonic() < deadline:
        time.sleep(5)
    return os.getloadavg()[0]


def validate_once(model: str, out: Path, trace: str, budget_s: float, kv: str) -> tuple[pd.DataFrame, dict]:
    """One fresh `fastserve validate` at the `kv` device size: validation.csv and the run's
    contention figures and live swap counts."""
    policies = [arg for policy in POLICIES_AT[kv] for arg in ("--policy", policy)]  # skip-join: proactive
    cmd = [sys.executable, "-m", "fastserve", "validate", "--model", model, "--trace", trace, *policies,
           "--profile-budget-s", str(budget_s), *capacity(kv), "-o", str(out)]
    done = subprocess.run(cmd, capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed:\n{done.stderr[-2000:]}")
    info = json.loads((out / "validation.json").read_text())
    summary = pd.read_csv(out / "live" / "summary.csv").set_index("policy")
    swaps = summary["num_swaps"].to_dict()
    if "skip-join-mlfq" not in summary.index:  # the chunked baseline alone
        return pd.read_csv(out / "validation.csv"), {"contention": info["contention"], "live_swaps": swaps}
    if summary.loc["skip-join-mlfq", "swap"] != "proactive":
        raise SystemExit(f"{out}: skip-join-mlfq ran with {summary.loc['skip-join-mlfq', 'swap']} swapping")
    if swaps["skip-join-mlfq"] < MIN_SWAPS[kv]:
        raise SystemExit(f"{out}: skip-join-mlfq swapped {swaps['skip-join-mlfq']} times with {kv} KV; "
                         f"the check needs >= {MIN_SWAPS[kv]}")
    return pd.read_csv(out / "validation.csv"), {"contention": info["contention"], "live_swaps": swaps}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", nargs="+", default=["tiny-llama", "tiny-opt"], help="Catalog models to validate.")
    ap.add_argument("--repeats", type=int, default=5, help="Fresh-process repetitions per model (a figure is their median).")
    ap.add_argument("--trace", default=TRACE, help="Trace spec served and simulated.")
    ap.add_argument("--kv", nargs="+", choices=list(DEVICE_KV_TOKENS), default=list(DEVICE_KV_TOKENS),
                    help="Device KV sizes to validate at (see above).")
    ap.add_argument("--profile-budget-s", type=float, default=60.0, help="Time budget of each profiling run, seconds.")
    ap.add_argument("--wait-quiet-s", type=float, default=0.0, help="wait up to this long for a quiet machine")
    ap.add_argument("--quiet-load", type=float, default=1.0, help="1-minute load average counted as quiet")
    ap.add_argument("--out", default=None, help="keep the validate directories here [a temporary directory]")
    args = ap.parse_args()
    root = Path(args.out or tempfile.mkdtemp(prefix="validate_targets_"))
    loads = ", ".join(f"{kv} {LOAD.get(kv, 'the rate above')}" for kv in args.kv)
    print(f"trace {args.trace}\nload {loads}\n"
          f"device KV {', '.join(f'{k} {DEVICE_KV_TOKENS[k]}' for k in args.kv)} tokens; "
          f"{args.repeats} repetitions per model and KV size; runs in {root}")
    rows, failed = [], 0
    for model in args.models:
        for kv in args.kv:
            for rep in range(args.repeats):
                rows.append(_repetition(args, root, model, kv, rep))
    runs = pd.concat(rows, ignore_index=True)
    print(f"\n{'model':>10} {'kv':>10} {'policy':>15} {'metric':>19} {'median err':>10} {'range':>19} {'quiet':>5} "
          f"{'target':>7}  verdict")
    for (model, kv, policy, metric), g in runs.groupby(["model", "kv", "policy", "metric"], sort=False):
        quiet = g[g["quiet"]]
        use = quiet if len(quiet) else g
        err = use["rel_error"].median()
        target = TARGETS.get(metric)
        verdict = "" if target is None else ("PASS" if abs(err) <= target else "FAIL")
        if target is not None and not len(quiet):
            verdict += " (all repetitions contended)"
        failed += verdict.startswith("FAIL")
        print(f"{model:>10} {kv:>10} {policy:>15} {metric:>19} {err:>+10.2%} [{g['rel_error'].min():+.2%}, "
              f"{g['rel_error'].max():+.2%}] {len(quiet):>2}/{len(g)} "
              f"{'' if target is None else f'{target:.0%}':>7}  {verdict}")
    print(f"\n{failed} target(s) missed" if failed else "\nall targets met")
    if failed:
        raise SystemExit(1)  # a benchmark with a target fails when it misses it


def _repetition(args, root: Path, model: str, kv: str, rep: int) -> pd.DataFrame:
    """One fresh `fastserve validate`; its rows, marked quiet or contended."""
    load = wait_quiet(args.wait_quiet_s, args.quiet_load) if args.wait_quiet_s else os.getloadavg()[0]
    table, info = validate_once(model, root / f"{model}_{kv}_{rep}", args.trace, args.profile_budget_s, kv)
    share = min(c["busy_cpu_share"] for c in info["contention"].values())
    others = [c.get("other_cpu_cores") for c in info["contention"].values()]
    others = None if None in others else max(others)
    print(f"{model} {kv} repetition {rep}: load average {load:.2f}, live CPU share while busy {share:.2f}, "
          f"other processes' CPU during the live runs {'n/a' if others is None else f'{others:.2f}'} cores, "
          f"live swaps {info['live_swaps']}")
    quiet = share >= QUIET_SHARE and (others is None or others < QUIET_OTHERS_CORES)
    return table.assign(model=model, kv=kv, rep=rep, quiet=quiet)


if __name__ == "__main__":
    main()
