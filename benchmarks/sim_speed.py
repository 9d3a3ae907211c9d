"""Simulator speed against a baseline commit, side by side: start-up, large batches, large traces.

Checks the baseline (default dd9d495, issue 17's reference) out in a temporary `git worktree`
and runs the same `fastserve` commands with the old and the new code in subprocesses,
interleaved (old, new, new, old...), so that both see the same machine load. Times are those of
the whole command, start-up included: its CPU time (user + system) by default, which other
sessions' load on a shared machine inflates far less than wall time (`--clock wall` for wall
time; both are printed). Each is the best of its repetitions. A baseline run that exceeds
--old-timeout-s counts as that long in wall time (a lower bound on the ratio).

Workloads:
- `fastserve --help`;
- Vidur's README workload: Llama-2-70B TP2 on A100-80GB (roofline profile from `fastserve
  profiles roofline`), 10,000 arxiv-like requests (traces/lengths.py, `max_total_tokens=4096`)
  all at t=0, vllm-fcfs, batch 256, 4,096 prefill tokens per batch, max-seq 4,096, block 16;
- the same requests with Poisson arrivals at 80% of the replica's capacity (finished requests
  per second of the t=0 run), at 10k, 100k and 1M requests, batch 16 and 256;
- a batch 256 that compute bounds (the Vidur workload's is memory-bound at ~14 jobs): Llama-3-8B
  on H100-SXM (roofline), 20,000 requests of 100-600 prompt and 100-500 output tokens at 28 req/s
  (~80 %), mean batch ~90, vllm-fcfs and skip-join-mlfq; ratios printed, no target;
- event skipping against `--no-skip` (new code) on issue 5's batch-16 workload: ShareGPT-like
  lengths, OPT-13B / A100-80GB, skip-join MLFQ, Poisson at ~90% of capacity;
- the same behind 16 replicas (round-robin) at 16x the rate, old against new (no target).

Targets (ratios, new vs baseline): Vidur workload >= 5x (stretch 10x); --help >= 6x; 1M requests
at batch 16 >= 2x; 1M at batch 256 finishes; time per request within 1.5x from the smallest to
the largest size at both batches; skipping >= 5x faster than --no-skip with identical results.
Old and new results must be identical request for request, unless the baseline predates
POLICY_CHANGED (issue 14 changed vllm-fcfs's preemption and admission on purpose: a baseline
before it prints whether results match but does not count it). Exits 1 when a target is missed.

    python benchmarks/sim_speed.py                  # everything (the 1M runs take long)
    python benchmarks/sim_speed.py --quick          # smaller sizes, one repetition, no 1M
    python benchmarks/sim_speed.py --sizes 10000 100000 --old-timeout-s 900
    python benchmarks/sim_speed.py --profile-run    # cProfile of the Vidur workload, new code
    python benchmarks/sim_speed.py --split          # us per decision by part, and start-up (new code)
"""

from __future__ import annotations

import argparse
import re
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))  # the new code is this checkout's

from baseline_tree import baseline_tree  # noqa: E402  (benchmarks/ is on sys.path as the script's folder)

BASELINE = "dd9d495"
SIM_FLAGS = ["--policy", "vllm-fcfs", "--max-prefill-tokens", "4096", "--max-seq-tokens", "4096",
             "--block-size", "16"]
DECISIONS = re.compile(r"([\d,]+) decisions")
POLICY_CHANGED = "36b7a8b"  # issue 14's policy rules: results differ from any earlier commit by design


CLOCK = {"name": "cpu"}  # which time the ratios use: set from --clock


@dataclass
class Timed:
    wall_s: float  # inf when it did not finish
    cpu_s: float = float("inf")  # user + system time of the command's process
    decisions: int = 0
    run_dir: Path | None = None

    @property
    def s(self) -> float:
        """The time the ratios use (--clock)."""
        return self.cpu_s if CLOCK["name"] == "cpu" else self.wall_s

    @property
    def finished(self) -> bool:
        return self.wall_s < float("inf")


def run_cli(tree: Path, args: list[str], timeout_s: float | None = None) -> Timed:
    """`python -m fastserve ARGS` with `tree`'s code; its wall time and decision count."""
    env = {"PYTHONPATH": str(tree), "PATH": "/usr/bin:/bin", "HOME": str(Path.home()),
           "PYTHONHASHSEED": "0"}
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    try:
        proc = subprocess.run([sys.executable, "-m", "fastserve", *args], cwd=tree, env=env,
                              capture_output=True, text=True, timeout=timeout_s)
    except subprocess.TimeoutExpired:
        return Timed(float("inf"))
    wall_s = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu_s = after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime
    if proc.returncode != 0:
        raise SystemExit(f"{tree}: fastserve {' '.join(args)} failed:\n{proc.stderr[-2000:]}")
    m = DECISIONS.search(proc.stderr)
    return Timed(wall_s, cpu_s, int(m.group(1).replace(",", "")) if m else 0)


def simulate(tree: Path, trace: Path, profile: Path, batch: int, out: Path, extra=(),
             timeout_s: float | None = None) -> Timed:
    t = run_cli(tree, ["simulate", "--trace", str(trace), "--profile", str(profile), *SIM_FLAGS,
                       "--max-batch", str(batch), *extra, "-o", str(out)], timeout_s)
    t.run_dir = out
    return t


def same_results(a: Path, b: Path) -> bool:
    import pandas as pd
    return pd.read_parquet(a / "requests.parquet").equals(pd.read_parquet(b / "requests.parquet"))


def interleaved(reps: int, old, new) -> tuple[Timed, Timed]:
    """Best of `reps` runs of each, alternating which goes first."""
    best = {"old": None, "new": None}
    for i in range(reps):
        order = [("old", old), ("new", new)] if i % 2 == 0 else [("new", new), ("old", old)]
        for name, fn in order:
            t = fn(i)
            if best[name] is None or t.s < best[name].s:
                best[name] = t
    return best["old"], best["new"]


class Verdicts:
    def __init__(self) -> None:
        self.lines: list[tuple[str, bool | None]] = []

    def check(self, what: str, ok: bool | None) -> None:
        self.lines.append((what, ok))

    def report(self) -> int:
        print("\ntargets:")
        for what, ok in self.lines:
            print(f"  {'ok    ' if ok else 'n/a   ' if ok is None else 'MISSED'} {what}")
        return 1 if any(ok is False for _, ok in self.lines) else 0


def prepare(tmp: Path, sizes: list[int], skip_size: int) -> dict:
    """Profiles and traces, written once by the new code; the old code reads the same files."""
    import numpy as np

    import profiles
    import traces
    from policy import SchedulerConfig
    from profiles.store import save_profile
    from sim import SimConfig
    from sim import simulate as run

    llama = tmp / "llama-2-70b_a100-80gb_tp2.json"
    run_cli(REPO, ["profiles", "roofline", "--model", "llama-2-70b", "--gpu", "a100-80gb", "--tp", "2",
                   "-o", str(llama)])
    arxiv = traces.Filters(max_total_tokens=4096)
    t0, _ = traces.synthesize_filtered(10_000, "constant:rate=1", "arxiv-like", 0, arxiv)
    at_once = traces.Trace(np.zeros(len(t0)), t0.prompt_tokens, t0.output_tokens)
    traces.save(at_once, tmp / "arxiv10k_t0.csv")
    opt = tmp / "opt13b.json"
    save_profile(profiles.load_profile(profiles.DEFAULT_PROFILE), opt)
    # issue 5's workload runs at 90% of skip-join MLFQ's saturated rate (all requests at once)
    cost = profiles.cost_model(profiles.load_profile(str(opt)))
    sharegpt = traces.Filters(max_prompt_tokens=1024, max_total_tokens=2048)
    saturated, _ = traces.synthesize_filtered(2000, "poisson:rate=1e6", "sharegpt-multiturn-like", 0, sharegpt)
    sched = SchedulerConfig(device_kv_tokens=cost.device_kv_tokens, host_kv_tokens=cost.host_kv_tokens,
                            max_batch_size=16, swap="proactive")
    r = run(saturated, cost, "skip-join-mlfq", sched, SimConfig())
    # A batch that compute, not memory, bounds: Llama-3-8B on one H100 keeps ~90 of 256 slots busy
    # at ~80 % of its capacity (the profile sustains ~33 req/s of these lengths)
    llama8b = tmp / "llama-3-8b_h100-sxm.json"
    run_cli(REPO, ["profiles", "roofline", "--model", "llama-3-8b", "--gpu", "h100-sxm", "-o", str(llama8b)])
    short, _ = traces.synthesize_filtered(20_000, "poisson:rate=28", "uniform:prompt=100-600,output=100-500", 0,
                                          traces.Filters())
    traces.save(short, tmp / "short20k.parquet")
    return {"llama": llama, "opt": opt, "vidur_trace": tmp / "arxiv10k_t0.csv", "arxiv": arxiv,
            "llama8b": llama8b, "short": tmp / "short20k.parquet",
            "sizes": sizes, "skip_size": skip_size, "sharegpt": sharegpt, "sharegpt_rate": 0.9 * r.stats["finished"] / r.stats["end_s"]}


def poisson_trace(tmp: Path, n: int, rate: float, lengths: str, filters, name: str) -> Path:
    import traces
    path = tmp / f"{name}_{n}.parquet"
    if not path.exists():
        trace, _ = traces.synthesize_filtered(n, f"poisson:rate={rate:.6g}", lengths, 0, filters)
        traces.save(trace, path)
    return path


def capacity_rps(run_dir: Path) -> float:
    import pandas as pd
    finish = pd.read_parquet(run_dir / "requests.parquet")["finish_s"]
    return len(finish) / float(finish.max())


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="Reduced run: sizes 5k and 20k, one repetition, skip test at 5k.")
    ap.add_argument("--baseline", default=BASELINE, help="Commit to compare against.")
    ap.add_argument("--sizes", type=int, nargs="+", default=None, help="Poisson trace sizes [10k 100k 1M; quick: 5k 20k].")
    ap.add_argument("--reps", type=int, default=None, help="Repetitions of --help and the Vidur workload [5 and 3; quick: 3 and 1].")
    ap.add_argument("--old-timeout-s", type=float, default=3600.0, help="Give up on one baseline run after this long (reported as a lower bound).")
    ap.add_argument("--clock", choices=["cpu", "wall"], default="cpu",
                    help="Time the ratios use: each command's CPU time (user + system; robust to other load on a "
                         "shared machine) or its wall time. Both are printed.")
    ap.add_argument("--profile-run", action="store_true", help="Only cProfile the Vidur workload with the new code.")
    ap.add_argument("--split", action="store_true",
                    help="Only split the new code's time per decision by part (Vidur and the skip workload, with "
                         "and without skipping) and its start-up by import (benchmarks/decision_split.py).")
    args = ap.parse_args()
    CLOCK["name"] = args.clock
    sizes = args.sizes or ([5_000, 20_000] if args.quick else [10_000, 100_000, 1_000_000])
    help_reps, vidur_reps = (args.reps, args.reps) if args.reps else ((3, 1) if args.quick else (5, 3))
    skip_size = 5_000 if args.quick else 20_000

    tmp = Path(tempfile.mkdtemp(prefix="sim_speed_"))
    try:
        inputs = prepare(tmp, sizes, skip_size)
        if args.profile_run:
            return profile_vidur(inputs)
        if args.split:
            return split_decisions(inputs, tmp)
        with baseline_tree(args.baseline) as old:
            return compare(REPO, old, tmp, inputs, help_reps, vidur_reps, args.old_timeout_s, args.quick)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def compare(new: Path, old: Path, tmp: Path, inputs: dict, help_reps: int, vidur_reps: int,
            old_timeout_s: float, quick: bool) -> int:
    v = Verdicts()
    runs = tmp / "runs"
    # results must match only when the baseline already has issue 14's policy rules
    comparable = subprocess.run(["git", "merge-base", "--is-ancestor", POLICY_CHANGED, "HEAD"], cwd=old,
                                check=False).returncode == 0
    if not comparable:
        print(f"baseline predates {POLICY_CHANGED} (issue 14's policy rules): results are compared, not required equal")

    def ratio_line(what: str, o: Timed, n: Timed) -> float:
        r = o.s / n.s
        print(f"{what:<34} old {o.s:8.2f} s  new {n.s:8.2f} s  {r:6.2f}x   (wall {o.wall_s:.2f} s vs {n.wall_s:.2f} s)")
        return r

    print(f"baseline {old.name} at {subprocess.run(['git', 'rev-parse', '--short', 'HEAD'], cwd=old, capture_output=True, text=True).stdout.strip()}; "
          f"new = {new}\n")
    o, n = interleaved(help_reps, lambda i: run_cli(old, ["--help"]), lambda i: run_cli(new, ["--help"]))
    v.check(f"fastserve --help: {ratio_line('fastserve --help', o, n):.2f}x (>= 6x)", o.s / n.s >= 6)

    def vidur(tree: Path, tag: str):
        return lambda i: simulate(tree, inputs["vidur_trace"], inputs["llama"], 256, runs / f"{tag}-vidur-{i}")

    o, n = interleaved(vidur_reps, vidur(old, "old"), vidur(new, "new"))
    r = ratio_line("Vidur workload (10k at t=0, b256)", o, n)
    print(f"{'':<34} {n.decisions:,} decisions, {n.s / n.decisions * 1e6:.0f} us/decision new "
          f"(old {o.s / o.decisions * 1e6:.0f}), start-up included")
    same = same_results(o.run_dir, n.run_dir)
    v.check(f"Vidur workload: {r:.2f}x (>= 5x; stretch 10x); results identical: {same}",
            r >= 5 and (same or not comparable))
    print("\nbatch 256 bound by compute (Llama-3-8B/H100, 20,000 requests of 100-600/100-500 tokens at "
          "28 req/s; no target):")
    for policy in ("vllm-fcfs", "skip-join-mlfq"):
        flags = ["simulate", "--trace", str(inputs["short"]), "--profile", str(inputs["llama8b"]), "--policy", policy,
                 "--max-batch", "256", "--block-size", "16"]
        o8, n8 = interleaved(1, lambda i, f=flags, p=policy: run_cli(old, [*f, "-o", str(runs / f"old-short-{p}")]),
                             lambda i, f=flags, p=policy: run_cli(new, [*f, "-o", str(runs / f"new-short-{p}")]))
        ratio_line(f"  {policy}", o8, n8)
        print(f"{'':<34} {n8.s / n8.decisions * 1e6:.0f} us/decision new, results identical: "
              f"{same_results(runs / f'old-short-{policy}', runs / f'new-short-{policy}')}")
    cap = capacity_rps(n.run_dir)
    rate = 0.8 * cap
    shutil.rmtree(runs, ignore_errors=True)
    print(f"\ncapacity {cap:.4f} req/s (t=0 run); Poisson arrivals at {rate:.4f} req/s (80%)")
    print(f"{'requests':>10} {'batch':>5} {'old s':>9} {'new s':>9} {'ratio':>7} {'new us/req':>10} "
          f"{'decisions/req':>13} {'us/decision':>11}  identical")
    per_request: dict[int, list[float]] = {16: [], 256: []}
    for size in inputs["sizes"]:
        trace = poisson_trace(tmp, size, rate, "arxiv-like", inputs["arxiv"], "arxiv")
        for batch in (16, 256):
            o = simulate(old, trace, inputs["llama"], batch, runs / f"old-{size}-{batch}", timeout_s=old_timeout_s)
            n = simulate(new, trace, inputs["llama"], batch, runs / f"new-{size}-{batch}")
            same = same_results(o.run_dir, n.run_dir) if o.finished else None
            per_request[batch].append(n.s / size)
            # a baseline that timed out gives a lower bound on the ratio
            ratio = f"{o.s / n.s:.2f}x" if o.finished else f">={old_timeout_s / n.wall_s:.2f}x"
            old_s = f"{o.s:9.1f}" if o.finished else f">{old_timeout_s:7.0f}w"
            print(f"{size:>10,} {batch:>5} {old_s} {n.s:>9.1f} {ratio:>7} {n.s / size * 1e6:>10.0f} "
                  f"{n.decisions / size:>13.2f} {n.s / n.decisions * 1e6:>11.0f}  {same}  "
                  f"(wall {o.wall_s:.1f} s vs {n.wall_s:.1f} s)", flush=True)
            if same is False and comparable:
                v.check(f"{size:,} requests, batch {batch}: old and new results differ", False)
            if size == 1_000_000:
                if batch == 16:
                    r = old_timeout_s / n.wall_s if not o.finished else o.s / n.s
                    v.check(f"1M requests at 80% load, batch 16: {r:.2f}x (>= 2x)", r >= 2)
                else:
                    v.check(f"1M requests at 80% load, batch 256 finishes: {n.s:.0f} s", n.finished)
            shutil.rmtree(runs, ignore_errors=True)
        trace.unlink()
    if 1_000_000 not in inputs["sizes"]:
        v.check("1M requests (not run: sizes " + ", ".join(f"{s:,}" for s in inputs["sizes"]) + ")", None)
    for batch, values in per_request.items():
        if len(values) > 1:
            spread = values[-1] / values[0]
            v.check(f"time per request, batch {batch}, {inputs['sizes'][-1]:,} vs {inputs['sizes'][0]:,}: "
                    f"{spread:.2f}x (<= 1.5x)", spread <= 1.5)

    # Event skipping, issue 5's batch-16 workload, new code only.
    size = inputs["skip_size"]
    sg = poisson_trace(tmp, size, inputs["sharegpt_rate"], "sharegpt-multiturn-like", inputs["sharegpt"], "sharegpt")
    flags = ["--trace", str(sg), "--profile", str(inputs["opt"]), "--policy", "skip-join-mlfq", "--max-batch", "16"]
    skip, step = interleaved(1, lambda i: run_cli(new, ["simulate", *flags, "-o", str(runs / "skip")]),
                             lambda i: run_cli(new, ["simulate", *flags, "--no-skip", "-o", str(runs / "step")]))
    same = same_results(runs / "skip", runs / "step")
    r = step.s / skip.s
    print(f"\nskip vs --no-skip, {size:,} ShareGPT-like requests, skip-join-mlfq, batch 16: skip {skip.s:.2f} s "
          f"({skip.decisions:,} decisions), --no-skip {step.s:.2f} s ({step.decisions:,}): {r:.2f}x, identical: {same}")
    v.check(f"skipping vs --no-skip at batch 16: {r:.2f}x (>= 5x), identical results: {same}", r >= 5 and same)

    # A cluster: 16 replicas behind round-robin, 16x the rate (no target).
    cluster = poisson_trace(tmp, size, 16 * inputs["sharegpt_rate"], "sharegpt-multiturn-like", inputs["sharegpt"],
                            "sharegpt16")
    flags = ["--trace", str(cluster), "--profile", str(inputs["opt"]), "--policy", "skip-join-mlfq", "--max-batch", "16",
             "--replicas", "16"]
    o, n = interleaved(1, lambda i: run_cli(old, ["simulate", *flags, "-o", str(runs / "old-cluster")]),
                       lambda i: run_cli(new, ["simulate", *flags, "-o", str(runs / "new-cluster")]))
    print(f"\n16 replicas (round-robin), {size:,} ShareGPT-like requests at 16x the rate, skip-join-mlfq, batch 16 "
          f"(no target):")
    ratio_line("  16 replicas", o, n)
    print(f"{'':<34} {o.decisions / size:.2f} decisions a request old, {n.decisions / size:.2f} new; results "
          f"identical: {same_results(runs / 'old-cluster', runs / 'new-cluster')}")
    if quick:
        print("\n--quick: smaller sizes and one repetition; the 1M targets are not measured")
    return v.report()


VIDUR_CONFIG = {"max_batch_size": 256, "max_prefill_tokens": 4096, "max_seq_tokens": 4096, "block_size_tokens": 16}


def in_process(profile: Path, trace: Path, policy: str, skip: bool = True, **config):
    """A simulation with the new code in this process, as `fastserve simulate` runs it (iteration
    rows on: they are, up to 20,000 requests): a callable returning its stats."""
    import profiles
    import traces
    from policy import SchedulerConfig
    from sim import SimConfig
    from sim import simulate as run

    cost = profiles.cost_model(profiles.load_profile(str(profile)))
    loaded = traces.load(str(trace))
    sched = SchedulerConfig(device_kv_tokens=cost.device_kv_tokens, host_kv_tokens=cost.host_kv_tokens, **config)
    return lambda: run(loaded, cost, policy, sched, SimConfig(skip=skip, record_iterations=True)).stats


def split_decisions(inputs: dict, tmp: Path) -> int:
    import decision_split

    print("start-up, CPU time of an interpreter importing (best of 5):")
    decision_split.startup()
    print("\nVidur workload (10k at t=0, batch 256, vllm-fcfs):")
    decision_split.split(in_process(inputs["llama"], inputs["vidur_trace"], "vllm-fcfs", **VIDUR_CONFIG))
    size = inputs["skip_size"]
    sg = poisson_trace(tmp, size, inputs["sharegpt_rate"], "sharegpt-multiturn-like", inputs["sharegpt"], "sharegpt")
    for skip in (True, False):
        print(f"\nskip workload ({size:,} ShareGPT-like requests, skip-join-mlfq, batch 16), "
              f"{'skipping' if skip else '--no-skip'}:")
        decision_split.split(in_process(inputs["opt"], sg, "skip-join-mlfq", skip, max_batch_size=16))
    return 0


def profile_vidur(inputs: dict) -> int:
    import cProfile
    import pstats

    run = in_process(inputs["llama"], inputs["vidur_trace"], "vllm-fcfs", **VIDUR_CONFIG)
    prof = cProfile.Profile()
    prof.enable()
    stats = run()
    prof.disable()
    pstats.Stats(prof).sort_stats("tottime").print_stats(25)
    print(stats)
    return 0


if __name__ == "__main__":
    sys.exit(main())
