"""Does a preemptive policy keep the server's capacity? The acceptance runs of issue 14.

    python benchmarks/policy_capacity.py            # every case (about 15 CPU-minutes)
    python benchmarks/policy_capacity.py --only starvation --only overload

Cases, each simulated with the bundled profiles and the policies' defaults:
- starvation: OPT-13B / A100-40GB, multi-turn ShareGPT-like lengths, Poisson 1.1 req/s, 1,000
  requests, seeds 0-4: skip-join MLFQ with starvation prevention on, against alpha = 1e6 s (off).
  Targets: throughput >= 90 % of the arrival rate in every seed, mean JCT within 15 % of the
  run without starvation prevention, swaps within 2x.
- overload: the README's trace (Gamma CV 3, 5.3 req/s offered) on A100-80GB; the same lengths
  at 2.5 req/s on A100-40GB; and 10,000 arXiv-like requests at t = 0 on Llama-2-70B TP2
  A100-80GB (batch 256, 4,096 tokens per batch, 53,248 KV tokens, block 16). Target: mlfq and
  skip-join-mlfq deliver >= 0.95x the throughput of fcfs and vllm-fcfs (the burst: makespan
  within 5 % of vllm-fcfs's).
- tail: lognormal outputs (sigma 1.5) at 95 % of the knee on A100-40GB (the knee measured as
  vllm-fcfs's throughput with every request at t = 0): the longest time any job waits between
  two of its iterations (or from arrival to its first), with starvation prevention on and off.
  Target: no wait longer than alpha plus the longest quantum a job can wait behind (the bottom
  level's), shorter than without starvation prevention, and throughput >= 0.95x vllm-fcfs's.
Prints a table per case and exits non-zero when a target is missed.
"""

from __future__ import annotations

import argparse
import sys
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import profiles  # noqa: E402
import traces  # noqa: E402
from policy import SchedulerConfig  # noqa: E402
from sim import SimConfig, simulate  # noqa: E402

SHAREGPT = "lengths=sharegpt-multiturn-like,max_prompt_tokens=1024,max_total_tokens=2048"
STARVATION = ("opt-13b_a100-40gb_tp1", f"synth:num_requests=1000,rate=1.1,{SHAREGPT}")
OVERLOAD = {
    "README 5.3 req/s, A100-80GB": ("opt-13b_a100-80gb_tp1", f"synth:num_requests=1000,rate=4,cv=3,seed=1,{SHAREGPT}", {}),
    "2.5 req/s, A100-40GB": ("opt-13b_a100-40gb_tp1", f"synth:num_requests=1000,rate=2.5,{SHAREGPT}", {}),
}
BURST = ("llama-2-70b", "a100-80gb", 2,
         "synth:num_requests=10000,arrivals=constant:rate=1000000000,lengths=arxiv-like,max_total_tokens=4096",
         dict(max_batch_size=256, max_prefill_tokens=4096, max_seq_tokens=4096, block_size_tokens=16,
              device_kv_tokens=53_248))
TAIL = ("opt-13b_a100-40gb_tp1",
        "synth:num_requests=1000,{arrivals},lengths=lognormal:prompt_mean=300,prompt_sigma=0.8,output_mean=250,"
        "output_sigma=1.5,max_prompt_tokens=1024,max_total_tokens=2048")
TAIL_LOAD = 0.95  # of the knee: near it, where jobs queue long enough for alpha to matter


def _cost(profile):
    if isinstance(profile, tuple):
        model, gpu, tp = profile
        return profiles.cost_model(profiles.roofline.roofline_profile(model, gpu, tp=tp))
    return profiles.cost_model(profiles.load_profile(profile))


def run(profile, trace_spec: str, policy: str, seed: int = 0, spans: bool = False, **fields) -> dict:
    cost = _cost(profile)
    trace = traces.resolve(trace_spec, seed=seed)
    cfg = SchedulerConfig(**{"device_kv_tokens": cost.device_kv_tokens, "host_kv_tokens": cost.host_kv_tokens,
                             **fields})
    result = simulate(trace, cost, policy, cfg, SimConfig(record_iterations=False, record_spans=spans))
    log = result.log
    finish = np.frombuffer(log.floats["finish_s"])
    arrival = np.frombuffer(log.floats["arrival_s"])
    done = np.array([s == "finished" for s in log.status])
    span_s = finish[done].max() - arrival.min()
    out = {
        "policy": policy, "seed": seed, "finished": int(done.sum()), "requests": len(arrival),
        "rate_rps": len(arrival) / max(arrival.max() - arrival.min(), 1e-9),
        "throughput_rps": done.sum() / span_s, "makespan_s": span_s,
        "jct_mean_s": float((finish - arrival)[done].mean()),
        "swaps": int(np.frombuffer(log.ints["num_swaps"], dtype=np.int64).sum()),
        "recomputes": int(np.frombuffer(log.ints["num_recomputes"], dtype=np.int64).sum()),
    }
    if spans:
        out["waits"] = _longest_waits(result.spans, arrival, np.frombuffer(log.ints["request_id"], dtype=np.int64))
    return out


def _longest_waits(spans, arrival, request_ids) -> dict:
    """Per request: its longest gap between running spans (arrival to first run included)."""
    running = spans[spans["kind"] == "running"].sort_values(["request_id", "start_s"])
    arrival_of = dict(zip(request_ids.tolist(), arrival.tolist(), strict=True))
    longest: dict[int, float] = {}
    for rid, group in running.groupby("request_id"):
        starts, ends = group["start_s"].to_numpy(), group["end_s"].to_numpy()
        gaps = np.concatenate([[starts[0] - arrival_of[rid]], starts[1:] - ends[:-1]])
        longest[int(rid)] = float(gaps.max())
    return longest


def starvation_case(pool) -> bool:
    profile, spec = STARVATION
    on = [pool.submit(run, profile, spec, "skip-join-mlfq", seed) for seed in range(5)]
    off = [pool.submit(run, profile, spec, "skip-join-mlfq", seed, alpha_s=1e6) for seed in range(5)]
    print("\nstarvation: skip-join-mlfq, OPT-13B / A100-40GB, 1.1 req/s, starvation on vs off (alpha 1e6 s)")
    print("seed | rate | throughput on / off | mean JCT on / off (s) | swaps on / off | verdict")
    ok_all = True
    for seed, (a, b) in enumerate(zip(on, off, strict=True)):
        a, b = a.result(), b.result()
        ok = (a["throughput_rps"] >= 0.9 * a["rate_rps"] and a["jct_mean_s"] <= 1.15 * b["jct_mean_s"]
              and a["swaps"] <= 2 * b["swaps"])
        ok_all &= ok
        print(f"{seed} | {a['rate_rps']:.3f} | {a['throughput_rps']:.3f} / {b['throughput_rps']:.3f} | "
              f"{a['jct_mean_s']:.1f} / {b['jct_mean_s']:.1f} | {a['swaps']:,} / {b['swaps']:,} | {'ok' if ok else 'MISS'}")
    return ok_all


def overload_case(pool) -> bool:
    policies = ("fcfs", "vllm-fcfs", "mlfq", "skip-join-mlfq")
    cases = {name: {p: pool.submit(run, prof, spec, p, **fields) for p in policies}
             for name, (prof, spec, fields) in OVERLOAD.items()}
    model, gpu, tp, spec, fields = BURST
    cases["burst 10k arXiv at t=0, Llama-2-70B TP2"] = {
        p: pool.submit(run, (model, gpu, tp), spec, p, **fields) for p in ("vllm-fcfs", "mlfq", "skip-join-mlfq")}
    print("\noverload: throughput (req/s) and makespan (s); MLFQ ratios to the best FCFS")
    print("case | policy | throughput | makespan | swaps | recomputes | ratio | verdict")
    ok_all = True
    for name, runs in cases.items():
        results = {p: f.result() for p, f in runs.items()}
        base = max(results[p]["throughput_rps"] for p in ("fcfs", "vllm-fcfs") if p in results)
        for p, r in results.items():
            ratio = r["throughput_rps"] / base
            verdict = ""
            if p in ("mlfq", "skip-join-mlfq"):
                ok = ratio >= 0.95
                ok_all &= ok
                verdict = "ok" if ok else "MISS"
            print(f"{name} | {p} | {r['throughput_rps']:.3f} | {r['makespan_s']:,.0f} | {r['swaps']:,} | "
                  f"{r['recomputes']:,} | {ratio:.3f} | {verdict}")
    return ok_all


def tail_case(pool) -> bool:
    profile, spec = TAIL
    knee_rps = pool.submit(run, profile, spec.format(arrivals="arrivals=constant:rate=1000000000"),
                           "vllm-fcfs", 0).result()["throughput_rps"]
    at_load = spec.format(arrivals=f"rate={TAIL_LOAD * knee_rps:.4f}")
    on = pool.submit(run, profile, at_load, "skip-join-mlfq", 0, spans=True)
    off = pool.submit(run, profile, at_load, "skip-join-mlfq", 0, spans=True, alpha_s=1e6)
    base = pool.submit(run, profile, at_load, "vllm-fcfs", 0).result()
    on, off = on.result(), off.result()
    cost = _cost(profile)
    q1_s = cost.min_iteration_s()
    alpha_s = SchedulerConfig().alpha_s
    # a job waits at level <= 9; its bound is alpha plus the longest quantum it can wait behind
    bound_s = alpha_s + q1_s * 2 ** (SchedulerConfig().num_levels - 1)
    longest_on, longest_off = max(on["waits"].values()), max(off["waits"].values())
    ok = (longest_on <= bound_s and longest_on < longest_off
          and on["throughput_rps"] >= 0.95 * base["throughput_rps"])
    print(f"\ntail: skip-join-mlfq, lognormal outputs sigma 1.5, {on['rate_rps']:.2f} req/s = {TAIL_LOAD:.0%} of the "
          f"knee ({knee_rps:.2f} req/s); throughput: vllm-fcfs {base['throughput_rps']:.3f}, skip-join "
          f"{on['throughput_rps']:.3f}")
    print("starvation prevention | longest wait (s) | p99 of longest waits (s) | requests that once waited > alpha "
          "| mean JCT (s)")
    for name, r in (("on (alpha 3 s)", on), ("off (alpha 1e6 s)", off)):
        waits = list(r["waits"].values())
        print(f"{name} | {max(waits):.2f} | {np.percentile(waits, 99):.2f} | {sum(w > alpha_s for w in waits)} of "
              f"{len(waits)} | {r['jct_mean_s']:.1f}")
    print(f"bound alpha + q_bottom = {bound_s:.2f} s: {'ok' if ok else 'MISS'}")
    return ok


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--only", action="append", choices=("starvation", "overload", "tail"),
                        help="Case to run; repeat for several [all].")
    parser.add_argument("--workers", type=int, default=2, help="Simulations run in parallel [2].")
    args = parser.parse_args()
    cases = {"starvation": starvation_case, "overload": overload_case, "tail": tail_case}
    ok = True
    with ProcessPoolExecutor(args.workers) as pool:
        for name in args.only or cases:
            ok &= cases[name](pool)
    print("\nall targets met" if ok else "\nsome targets missed")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
