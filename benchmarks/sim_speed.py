"""Simulator speed: wall time and requests/s, with and without event skipping.

Workload (issue 5): ShareGPT-like lengths (prompt <= 1024, total <= 2048), Poisson arrivals at
about 90% of one replica's capacity, the bundled OPT-13B / A100 profile, max batch 16,
skip-join MLFQ with proactive swapping. Capacity is measured first: the finished-request rate
of a saturated run (all requests at t=0).

    python benchmarks/sim_speed.py                      # 10k, 100k, 1M requests
    python benchmarks/sim_speed.py --sizes 10000 100000 --no-skip-size 20000
    python benchmarks/sim_speed.py --profile-run 100000 # cProfile of one run, top functions
"""

from __future__ import annotations

import argparse
import cProfile
import pstats
import time

import numpy as np

import profiles
import traces
from policy import SchedulerConfig
from sim import SimConfig, simulate

FILTERS = traces.Filters(max_prompt_tokens=1024, max_total_tokens=2048)


def workload(num_requests: int, rate: float, seed: int = 0):
    trace, _ = traces.synthesize_filtered(num_requests, f"poisson:rate={rate}", "sharegpt-multiturn-like", seed, FILTERS)
    return trace


def capacity_rps(cost, sched) -> float:
    trace = workload(2000, 1e6)  # everything arrives at once: the replica runs saturated
    r = simulate(trace, cost, "skip-join-mlfq", sched, SimConfig())
    return r.stats["finished"] / r.stats["end_s"]


def run(trace, cost, sched, skip: bool):
    t = time.perf_counter()
    r = simulate(trace, cost, "skip-join-mlfq", sched, SimConfig(skip=skip))
    wall = time.perf_counter() - t
    assert r.stats["finished"] == len(trace.arrival_s), r.stats
    return wall, r


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000, 1_000_000], help="Trace sizes to time.")
    ap.add_argument("--no-skip-size", type=int, default=20_000, help="Size of the skip vs --no-skip comparison.")
    ap.add_argument("--load", type=float, default=0.9, help="Arrival rate as a share of measured capacity.")
    ap.add_argument("--profile-run", type=int, default=None, help="Only cProfile one run of this size.")
    args = ap.parse_args()

    cost = profiles.cost_model(profiles.load_profile(profiles.DEFAULT_PROFILE))
    sched = SchedulerConfig(device_kv_tokens=cost.device_kv_tokens, host_kv_tokens=cost.host_kv_tokens,
                            max_batch_size=16, swap="proactive")
    cap = capacity_rps(cost, sched)
    rate = args.load * cap
    print(f"capacity {cap:.2f} req/s; arrivals at {rate:.2f} req/s ({args.load:.0%})")

    if args.profile_run:
        trace = workload(args.profile_run, rate)
        prof = cProfile.Profile()
        prof.enable()
        run(trace, cost, sched, True)
        prof.disable()
        pstats.Stats(prof).sort_stats("tottime").print_stats(20)
        return

    trace = workload(args.no_skip_size, rate)
    skip_wall, r = run(trace, cost, sched, True)
    step_wall, r2 = run(trace, cost, sched, False)
    print(f"{args.no_skip_size:>9,} requests: skip {skip_wall:.2f} s ({r.stats['num_decisions']:,} decisions), "
          f"no-skip {step_wall:.2f} s ({r2.stats['num_decisions']:,}): skipping is {step_wall / skip_wall:.1f}x faster")

    print(f"{'requests':>10} {'wall s':>8} {'req/s':>9} {'us/req':>8} {'decisions/req':>14} {'mean JCT s':>10}")
    per_request = []
    for n in args.sizes:
        trace = workload(n, rate)
        wall, r = run(trace, cost, sched, True)
        finish = np.frombuffer(r.log.floats["finish_s"])
        arrival = np.frombuffer(r.log.floats["arrival_s"])
        per_request.append(wall / n)
        print(f"{n:>10,} {wall:>8.1f} {n / wall:>9,.0f} {wall / n * 1e6:>8.0f} "
              f"{r.stats['num_decisions'] / n:>14.2f} {np.mean(finish - arrival):>10.2f}")
    print(f"time per request, largest / smallest size: {per_request[-1] / per_request[0]:.2f}x")


if __name__ == "__main__":
    main()
