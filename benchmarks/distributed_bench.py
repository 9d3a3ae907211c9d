"""Throughput of `fastserve serve` at TP = 1, TP = 2 and PP = 2 on CPU (gloo), and token agreement.

Runs the CLI once per shape on the same trace (default: the bundled bursty-small sample with
tiny-llama), reads each run directory, and prints requests/s and output tokens/s over the
run's makespan (first arrival to last finish), with the ratio to TP = 1. On a CPU, tensor and
pipeline parallelism only add communication (gloo round trips of a few hundred microseconds
per all-reduce against a forward pass under a millisecond), so a slowdown is expected; what
the shapes must agree on is correctness, which tests/executor/test_distributed_tokens.py checks
token by token. Busy machines inflate the gloo numbers most (every all-reduce waits for
the other process to be scheduled); the script prints the load average next to the figures.

    python benchmarks/distributed_bench.py                      # time scale 0: all at once
    python benchmarks/distributed_bench.py --time-scale 0.1     # arrivals 10x faster than the trace
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd

SHAPES = {"tp1": [], "tp2": ["--tp", "2"], "pp2": ["--pp", "2"]}


def run(shape: str, args: argparse.Namespace, out: Path) -> dict:
    cmd = [sys.executable, "-m", "fastserve", "serve", "--trace", args.trace, "--model", args.model,
           "--policy", args.policy, "--time-scale", str(args.time_scale), "--no-timeline", "-o", str(out),
           *SHAPES[shape]]
    t = time.perf_counter()
    done = subprocess.run(cmd, capture_output=True, text=True)
    wall_s = time.perf_counter() - t
    if done.returncode != 0:
        raise SystemExit(f"{shape}: {done.stderr.strip().splitlines()[-1]}")
    req = pd.read_parquet(out / "requests.parquet")
    req = req[req["status"] == "finished"]
    makespan_s = req["finish_s"].max() - req["arrival_s"].min()
    return {"shape": shape, "requests": len(req), "makespan_s": makespan_s,
            "req_per_s": len(req) / makespan_s, "tokens_per_s": req["output_tokens"].sum() / makespan_s,
            "jct_mean_s": req["jct_s"].mean(), "command_wall_s": wall_s}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trace", default="sample:bursty-small", help="Trace to serve (file, sample:NAME or synth:...).")
    parser.add_argument("--model", default="tiny-llama", help="Catalog model to build with random weights.")
    parser.add_argument("--policy", default="skip-join-mlfq", help="Scheduling policy.")
    parser.add_argument("--time-scale", type=float, default=0.0, help="Multiply arrival times by this (0: every request at once).")
    args = parser.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for shape in SHAPES:
            rows.append(run(shape, args, Path(tmp) / shape))
    df = pd.DataFrame(rows)
    base = df.loc[df["shape"] == "tp1"].iloc[0]
    df["vs_tp1"] = df["tokens_per_s"] / base["tokens_per_s"]
    print(f"{args.model}, {args.trace}, {args.policy}, time scale {args.time_scale:g}, "
          f"{os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f}")
    print(df.to_string(index=False, float_format=lambda v: f"{v:.3f}"))


if __name__ == "__main__":
    main()
