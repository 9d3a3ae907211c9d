"""How heavily swapped requests fare in the live engine and in the simulator, side by side.

Issue 9's open gap: in the swap-heavy regime (tiny-opt, 768 device KV tokens) the simulator
under-predicts skip-join-mlfq's mean JCT, and the per-request JCT ratio falls with the number of
swaps a request had, while per-iteration and per-transfer costs agree. This serves the validate
workload live (with spans) and simulates it with the same profile, then prints, for requests
with few and with many live swap-ins: swap-ins per request in each engine, and the mean wait
from a swap-in landing to the request's next running span.

    python benchmarks/swap_dynamics_probe.py [--model tiny-opt] [--profile FILE] [--heavy-swaps 4]
"""

from __future__ import annotations

import argparse

import numpy as np
import pandas as pd
import torch

import profiles
import traces
from executor.engine import EngineConfig
from executor.serve import LiveServer, ModelConfig, load_model
from policy import Job, SchedulerConfig
from sim import SimConfig, simulate

TRACE = "synth:num_requests=600,rate=200,cv=2,lengths=uniform:prompt=8-64,output=8-96,seed=5"
POLICY = "skip-join-mlfq"


def per_request(spans: pd.DataFrame) -> pd.DataFrame:
    """Per request: swap-ins, and the mean time from a swap-in's end to the next running span."""
    rows = {}
    for rid, g in spans.sort_values(["request_id", "start_s"]).groupby("request_id"):
        runs = g.loc[g["kind"] == "running", "start_s"].to_numpy()
        ends = g.loc[g["kind"] == "swap_in", "end_s"].to_numpy()
        later = np.searchsorted(runs, ends - 1e-9)
        waits = [runs[i] - e for i, e in zip(later, ends, strict=True) if i < len(runs)]
        rows[rid] = (len(ends), float(np.mean(waits)) if waits else np.nan)
    return pd.DataFrame.from_dict(rows, orient="index", columns=["swap_ins", "wait_s"])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="tiny-opt", help="Catalog model built with random weights.")
    ap.add_argument("--profile", default=None, help="Profile JSON [the bundled MODEL_cpu_tp1].")
    ap.add_argument("--heavy-swaps", type=int, default=4, help="Live swap-ins from which a request counts as heavy.")
    ap.add_argument("--no-skip", action="store_true", help="Plan every iteration in both engines (no plan reuse, no event skipping).")
    args = ap.parse_args()
    if args.heavy_swaps < 1:
        ap.error("--heavy-swaps must be >= 1")
    torch.set_num_threads(1)  # as `fastserve serve` and `fastserve validate` on CPU
    cost = profiles.cost_model(profiles.load_profile(args.profile or f"{args.model}_cpu_tp1"))
    trace = traces.resolve(TRACE, seed=0)
    jobs = [Job(int(i), float(a), int(p), int(o)) for i, a, p, o in
            zip(trace.request_id, trace.arrival_s, trace.prompt_tokens, trace.output_tokens, strict=True)]
    sched = SchedulerConfig(device_kv_tokens=768, host_kv_tokens=16384, max_seq_tokens=160, block_size_tokens=16)
    server = LiveServer(load_model(ModelConfig(args.model)),
                        EngineConfig(time_scale=1.0, record_spans=True, skip=not args.no_skip))
    server.run(jobs[:50], POLICY, sched, cost)  # untimed: a process's first run pays one-time costs
    live, _ = server.run(jobs, POLICY, sched, cost)
    if live.error is not None:
        raise SystemExit(f"live run failed: {live.error}")
    sim = simulate(trace, cost, POLICY, sched, SimConfig(record_spans=True, skip=not args.no_skip))
    both = per_request(live.spans).join(per_request(sim.spans), how="outer", lsuffix="_live", rsuffix="_sim")
    both["group"] = np.where(both["swap_ins_live"] >= args.heavy_swaps, f">= {args.heavy_swaps} swap-ins", "fewer")
    table = both.groupby("group")[["swap_ins_live", "swap_ins_sim", "wait_s_live", "wait_s_sim"]].mean()
    table.insert(0, "requests", both.groupby("group").size())
    print(table.to_string(float_format=lambda v: f"{v:.4g}"))

    def mean_jct_s(result) -> float:
        f = result.log.floats
        return float(np.nanmean(np.asarray(f["finish_s"]) - np.asarray(f["arrival_s"])))

    print(f"mean JCT: live {mean_jct_s(live):.4f} s, simulated {mean_jct_s(sim):.4f} s")


if __name__ == "__main__":
    main()
