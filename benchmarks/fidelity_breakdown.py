"""Where a `validate_targets.py` run's error comes from: per repetition, and for the forward passes.

Reads the directories `validate_targets.py --out DIR` kept (one `fastserve validate` run directory
per model, KV size and repetition) and prints, for one policy:

1. per repetition: the mean JCT, p99 and median-iteration errors (validation.csv), the mean JCT
   and p99 errors of the simulation over the live run's own clock (`replayed_*`, NaN for runs
   from before it existed); the share of
   its iteration time during which requests waited (`analysis.validation.queued_time_share`);
   the profile's `forward_scale`; the error of the summed iteration prices against the summed
   live iterations (typical prices, before the simulator's clock noise); the share of live
   rows that took over twice their price (`over_2x`: slow episodes, which no profile
   statistic keeps); and how closely the live and simulated queues track each other over time
   (`queue_corr`, the correlation of the two queue lengths sampled every QUEUE_STEP_S);
2. per batch size and queue length, the median over repetitions of each repetition's median
   live forward pass over the profile's grid, decode-only rows. The grid is the profile's
   tight-loop table without any calibration (forward_scale 1, no curve, no overhead), so the
   table shows how the engine's passes in a served run compare with the grid. A full batch
   over a queue that runs slower than the same batch without one marks the machine as slower
   when queues form (README, the paragraphs on `validate_targets.py`).

    python benchmarks/fidelity_breakdown.py DIR [--policy sarathi] [--kv chunked]
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import warnings
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

import profiles  # noqa: E402
from analysis.load import InputError, load_run  # noqa: E402
from analysis.validation import batch_of, chunks_prefills, iteration_errors, queued_time_share  # noqa: E402

QUEUE_STEP_S = 0.25


def queue_series(iterations: pd.DataFrame, step_s: float, end_s: float) -> np.ndarray:
    """Requests waiting at each step: the `num_queued` of the last iteration begun by then."""
    its = iterations.sort_values("start_s")
    at = np.searchsorted(its["start_s"].to_numpy(), np.arange(0.0, end_s, step_s), side="right") - 1
    return np.where(at >= 0, its["num_queued"].to_numpy()[np.maximum(at, 0)], 0)


def repetition(run: Path, policy: str) -> tuple[dict, pd.DataFrame]:
    """One validate directory's summary row and its decode rows' forward / grid."""
    live = load_run(run / "live")
    prof = profiles.load_profile(run / "profile.json")
    cost = profiles.cost_model(prof)
    errors = pd.read_csv(run / "validation.csv").query("policy == @policy").set_index("metric")["rel_error"]
    its = live.iterations[live.iterations["policy"] == policy]
    requests = live.requests[live.requests["policy"] == policy]
    if its.empty:
        raise InputError(f"{run}/live: no iterations of policy {policy}")
    priced = iteration_errors(its, cost.for_policy(policy), requests["arrival_s"], requests["finish_s"].dropna(),
                              chunked=chunks_prefills(live.config, policy))
    bare = profiles.cost_model(replace(prof, overhead=None, policy_overhead={}, mixed_shared_s=None, forward_noise=(),
                                       forward_scale=1.0, forward_scale_by_batch=()))
    decode = its[its["num_prefills"] == 0]
    grid = np.array([bare.iteration_s(*batch_of(r.batch_size, 0, 0, r.decode_context_tokens,
                                                 r.decode_max_context_tokens))
                     for r in decode.itertuples()], dtype=np.float64)
    sim = load_run(run / "sim").iterations
    sim = sim[sim["policy"] == policy]
    end_s = float(min(its["end_s"].max(), sim["end_s"].max()))
    live_queue, sim_queue = queue_series(its, QUEUE_STEP_S, end_s), queue_series(sim, QUEUE_STEP_S, end_s)
    steady = live_queue.std() == 0 or sim_queue.std() == 0
    row = {"repetition": run.name, "jct": errors.get("jct_mean_s"), "p99": errors.get("jct_p99_s"),
           "replayed_jct": errors.get("replayed_jct_mean_s", math.nan),
           "replayed_p99": errors.get("replayed_jct_p99_s", math.nan),
           "iteration": errors.get("iteration_s"), "queued": queued_time_share(its),
           "forward_scale": prof.forward_scale,
           "summed": priced["predicted_s"].sum() / priced["measured_s"].sum() - 1,
           "over_2x": float((priced["measured_s"] > 2 * priced["predicted_s"]).mean()),
           "queue_corr": math.nan if steady else float(np.corrcoef(live_queue, sim_queue)[0, 1])}
    rows = pd.DataFrame({"batch": decode["batch_size"].to_numpy(), "queued": decode["num_queued"].to_numpy(),
                         "ratio": decode["forward_s"].to_numpy() / grid, "repetition": run.name})
    return row, rows


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("root", type=Path, help="A validate_targets.py --out directory.")
    ap.add_argument("--policy", default="sarathi", help="Policy to break down.")
    ap.add_argument("--kv", default="chunked", help="KV configuration (the directories' middle name).")
    args = ap.parse_args()
    # the validate runs warned of their profiles' extrapolations already; pricing again repeats them
    warnings.simplefilter("ignore", profiles.ExtrapolationWarning)
    runs = sorted(p for p in args.root.glob(f"*_{args.kv}_*") if (p / "validation.csv").exists())
    if not runs:
        raise SystemExit(f"{args.root}: no *_{args.kv}_* directory with a validation.csv")
    for model in sorted({r.name.split(f"_{args.kv}_")[0] for r in runs}):
        mine = [r for r in runs if r.name.startswith(f"{model}_{args.kv}_")]
        rows, passes = zip(*(repetition(r, args.policy) for r in mine), strict=True)
        table = pd.DataFrame(rows)
        print(f"\n{model}, {args.kv}, {args.policy}: {len(mine)} repetitions (errors are simulated / measured - 1)")
        print(table.to_string(index=False, float_format=lambda v: f"{v:+.3f}"))
        print("medians:", json.dumps({c: round(float(table[c].median()), 3) for c in table.columns[1:]}))
        forward = pd.concat(passes, ignore_index=True)
        forward["batch"] = pd.cut(forward["batch"], [0, 4, 8, 12, 15, 16, 32, 64, 128, 256, 512])
        forward["queued"] = pd.cut(forward["queued"], [-1, 0, 3, 10, 10**9], labels=["0", "1-3", "4-10", ">10"])
        per_rep = forward.groupby(["repetition", "batch", "queued"], observed=True)["ratio"].median()
        print("live forward pass / grid, decode rows (median over repetitions of each one's median), by batch "
              "and queued requests:")
        print(per_rep.groupby(["batch", "queued"], observed=True).median().unstack().round(3).to_string())
    return 0


if __name__ == "__main__":
    sys.exit(main())
