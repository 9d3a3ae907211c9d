"""Per-transfer time inside the live engine, under two loads, against what the simulator charges.

Issue 9's swap-heavy regime (tiny-opt, 768 device KV tokens, 16-token blocks as `fastserve
validate` uses) under-predicts skip-join's mean JCT by ~7.5 %. This checks the transfers: it runs
the engine (`LiveServer`, one torch thread, as serve and validate do) on the validate workload and
on the same requests all at t = 0, and prints each direction's median transfer span next to the
profile's swap curve and per-swap term. Measured on tiny-opt: spans 28-30 us (trace) and 23-26 us
(burst) against 8-12 us of curve + 15 us per swap, so the transfers are priced within ~15 %.
(`fastserve serve` defaults to 1-token blocks: its transfers take ~46 us, a different layout.)

    python benchmarks/swap_span_probe.py [--model tiny-opt] [--profile FILE] [--progress]
"""

from __future__ import annotations

import argparse
import dataclasses
import statistics

import numpy as np
import torch

import profiles
import traces
from executor.engine import EngineConfig
from executor.serve import LiveServer, ModelConfig, load_model
from policy import Job, SchedulerConfig

TRACE = "synth:num_requests=600,rate=200,cv=2,lengths=uniform:prompt=8-64,output=8-96,seed=5"


def spans_us(server: LiveServer, jobs: list[Job], sched: SchedulerConfig, cost) -> dict[str, float]:
    result, _ = server.run(jobs, "skip-join-mlfq", sched, cost)
    if result.error is not None:
        raise SystemExit(f"engine run failed: {result.error}")
    sp = result.spans
    out = {}
    for kind in ("swap_out", "swap_in"):
        g = sp[sp["kind"] == kind]
        out[kind] = statistics.median((g["end_s"] - g["start_s"]) * 1e6) if len(g) else float("nan")
        out[f"num_{kind}"] = len(g)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="tiny-opt", help="Catalog model built with random weights.")
    ap.add_argument("--profile", default=None, help="Profile JSON [the bundled MODEL_cpu_tp1].")
    ap.add_argument("--progress", action="store_true", help="Show the engine's progress bar (as serve and validate do).")
    args = ap.parse_args()
    torch.set_num_threads(1)  # as `fastserve serve` on CPU
    cost = profiles.cost_model(profiles.load_profile(args.profile or f"{args.model}_cpu_tp1"))
    server = LiveServer(load_model(ModelConfig(args.model)), EngineConfig(time_scale=1.0, record_spans=True, progress=args.progress))
    trace = traces.resolve(TRACE, seed=0)
    jobs = [Job(int(i), float(a), int(p), int(o)) for i, a, p, o in
            zip(trace.request_id, trace.arrival_s, trace.prompt_tokens, trace.output_tokens, strict=True)]
    sched = SchedulerConfig(device_kv_tokens=768, host_kv_tokens=16384, max_seq_tokens=160, block_size_tokens=16)
    mean_tokens = int(np.mean(trace.prompt_tokens + trace.output_tokens / 2))
    print(f"{args.model}: profile curve at ~{mean_tokens} tokens: out {cost.swap_s(mean_tokens, 'out') * 1e6:.1f} us, "
          f"in {cost.swap_s(mean_tokens, 'in') * 1e6:.1f} us; per_swap_s "
          f"{cost.for_policy('skip-join-mlfq').swap_overhead_s() * 1e6:.1f} us")
    for name, load in (("trace", jobs), ("burst", [dataclasses.replace(j, arrival_s=0.0) for j in jobs])):
        r = spans_us(server, load, sched, cost)
        print(f"{name:>5}: swap_out median {r['swap_out']:.1f} us ({r['num_swap_out']}), "
              f"swap_in median {r['swap_in']:.1f} us ({r['num_swap_in']})")


if __name__ == "__main__":
    main()
