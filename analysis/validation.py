"""Fidelity report: the simulator against the live executor on one trace (`fastserve validate`).

Reads two run directories of the same trace, policies and scheduler configuration, one written
by the live executor and one by the simulator, and gives per policy five rows of
`validation.csv` (columns `policy, metric, measured, simulated, rel_error`):

- `jct_mean_s`, `jct_p50_s`, `jct_p99_s`, `ttft_mean_s`: the run summaries' statistics over
  finished requests (analysis/metrics.py); measured is the live run's, simulated the
  simulator's, and rel_error = (simulated - measured) / measured;
- `iteration_s`: the cost model against the live iterations themselves. Each recorded live
  iteration's batch composition is priced by the cost model (`iteration_s`), plus, for an
  iteration that began a new plan, the engine's planning and admission cost
  (`plan_overhead_s` of the policy, `for_policy`, when the cost model has them; profiles/plan_events.py tells which
  iterations did and how many requests they admitted), plus, for an iteration that ended a
  plan and was followed by more work, the engine's wrap-up of the plan (`plan_end_overhead_s`
  of the requests it finished), and compared with its measured time:
  from its start to the next iteration's start while the engine had work left (the engine's
  bookkeeping between two iterations belongs to the first, as in the simulator, whose
  iterations tile its busy time and whose profile measured its overhead that way), else to its
  own end (an idle wait follows). The live engine starts a new plan's iteration before planning
  and before issuing the plan's KV transfers, so a row with transfers is also charged what the
  simulator charges for them (`swaps_s`: each one's issue cost, and on a CPU device, which
  copies synchronously, the copy).
  measured and simulated are the medians of the two series; rel_error is the MEDIAN OF THE
  PER-ITERATION ERRORS (predicted - measured) / measured, a paired comparison, so it is not
  simulated / measured - 1.

With the run that replays the live clock (`fastserve validate` writes RUN_DIR/replay: the same
simulation, its k-th iteration priced at the profile's price times the live run's k-th
measured / priced, `replay_factors` and profiles/replay.py), three more rows per policy:
`replayed_jct_mean_s`, `replayed_jct_p50_s` and `replayed_jct_p99_s`, measured the live run's,
simulated the replay's. The profile-only rows answer "does the simulator, given a profile,
predict this machine?"; the replayed rows "given this run's own iteration times, does it
reproduce its queueing?". The gap between the two is the machine's drift between profiling
and serving, which no profile measured beforehand can know.

A chunked policy's iterations (`chunked_prefill_tokens` in the run's config, or a policy that
always chunks, sarathi) are priced as chunked prefill, as the simulator prices them: each
prefill's chunk context is passed, zeros included, so a profile's `mixed_chunk` grid prices
their mixed iterations (profiles/cost.py); the record's `prefill_context_tokens` is split
evenly over the chunks.

A live iteration record holds sums, not per-job lengths: its `num_prefills` prompts are given
`prefill_tokens` split as evenly as integers allow, and its decodes `decode_context_tokens`
split the same way, except that one decode gets `decode_max_context_tokens` when the record
has it (the executor's does). Both the mean and the longest context are thereby exact, which
is all the cost model reads (profiles/cost.py). Nothing is dropped: a policy missing from
either run, or a run without iterations, is an `InputError`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Protocol

import numpy as np
import pandas as pd

from analysis.load import InputError, RunData
from policy import POLICIES
from profiles.plan_events import plan_ends, plan_events, swap_copies_s

COLUMNS = ["policy", "metric", "measured", "simulated", "rel_error"]
SUMMARY_METRICS = ("jct_mean_s", "jct_p50_s", "jct_p99_s", "ttft_mean_s")
ITERATION_METRIC = "iteration_s"
METRICS = (*SUMMARY_METRICS, ITERATION_METRIC)
# rows of the simulation that replays the live run's clock (`replay_factors`): replayed_jct_mean_s, ...
REPLAYED_PREFIX = "replayed_"
REPLAYED_METRICS = tuple(REPLAYED_PREFIX + m for m in SUMMARY_METRICS[:3])
ITERATION_INPUTS = ("batch_size", "num_prefills", "prefill_tokens", "decode_context_tokens", "num_iterations")


class IterationCost(Protocol):
    def iteration_s(self, prefill_tokens: Sequence[int], decode_context_tokens: Sequence[int]) -> float: ...


def rel_error(measured: float, simulated: float) -> float:
    """(simulated - measured) / measured; NaN when measured is 0 or either is missing."""
    if not (np.isfinite(measured) and np.isfinite(simulated)) or measured == 0:
        return float("nan")
    return (simulated - measured) / measured


def split_evenly(total: int, parts: int) -> list[int]:
    """`parts` integers summing to `total`, differing by at most one (larger first)."""
    base, extra = divmod(int(total), parts)
    return [base + 1] * extra + [base] * (parts - extra)


def batch_of(batch_size: int, num_prefills: int, prefill_tokens: int, decode_context_tokens: int,
             decode_max_context_tokens: int = 0) -> tuple[list[int], list[int]]:
    """(prompt lengths, decode contexts) of one iteration record, as described above
    (`decode_max_context_tokens` 0: not recorded)."""
    num_decodes = batch_size - num_prefills
    prompts = split_evenly(prefill_tokens, num_prefills) if num_prefills else []
    if not num_decodes:
        return prompts, []
    if decode_max_context_tokens and num_decodes > 1:
        rest = split_evenly(decode_context_tokens - decode_max_context_tokens, num_decodes - 1)
        return prompts, [decode_max_context_tokens, *rest]
    return prompts, split_evenly(decode_context_tokens, num_decodes)


def iteration_errors(iterations: pd.DataFrame, cost: IterationCost, arrival_s=None, finish_s=None,
                     where: str = "iterations", chunked: bool = False) -> pd.DataFrame:
    """One run's iteration rows, sorted by start, with measured_s, predicted_s and rel_error
    added. `arrival_s`: the run's request arrivals, to charge new plans; `finish_s`: its finish
    times, to measure up to the next start while work was left (see above); without them, new
    plans cost nothing extra and an iteration lasts end_s - start_s. `chunked`: the policy
    chunked its prefills (see above)."""
    missing = [c for c in ITERATION_INPUTS if c not in iterations.columns]
    if missing:
        raise InputError(f"{where}: missing column(s) {', '.join(missing)}")
    bad = iterations.index[iterations["num_iterations"] != 1]
    if len(bad):
        raise InputError(f"{where}: row {bad[0]} covers {iterations.loc[bad[0], 'num_iterations']} iterations; "
                         "per-iteration errors need one row per iteration (a live run's records)")
    iterations = iterations.sort_values("start_s", kind="stable")
    measured = (iterations["end_s"] - iterations["start_s"]).to_numpy(np.float64)
    busy = np.zeros(len(iterations), dtype=bool)
    if finish_s is not None and "num_queued" in iterations:
        # jobs left after the iteration: queued + batch - those that finished as it ended
        finished = pd.Series(np.asarray(finish_s, dtype=np.float64)).value_counts()
        left = (iterations["num_queued"] + iterations["batch_size"]
                - iterations["end_s"].map(finished).fillna(0)).to_numpy()
        period = (iterations["start_s"].shift(-1) - iterations["start_s"]).to_numpy(np.float64)
        busy = (left > 0) & np.isfinite(period)
        measured = np.where(busy, period, measured)
    longest = (iterations["decode_max_context_tokens"].fillna(0) if "decode_max_context_tokens" in iterations
               else pd.Series(0, index=iterations.index))
    columns = [iterations[c].astype("int64").tolist() for c in ITERATION_INPUTS[:4]] + [longest.astype("int64").tolist()]
    predicted = np.array([cost.iteration_s(*batch_of(*row)) for row in zip(*columns, strict=True)], dtype=np.float64)
    context_tokens = (iterations["prefill_context_tokens"] if "prefill_context_tokens" in iterations
                      else pd.Series(0, index=iterations.index))
    if chunked or (context_tokens > 0).any():
        # chunked prefill: chunks after earlier chunks also attend to their KV (split evenly);
        # a chunked policy's chunks are priced as chunks even after 0 tokens, as the simulator does
        as_chunks = ((iterations["num_prefills"] > 0) if chunked else (context_tokens > 0)).to_numpy()
        for i in np.flatnonzero(as_chunks):
            row = [c[i] for c in columns]
            prompts, decodes = batch_of(*row)
            context = split_evenly(int(context_tokens.iloc[i]), len(prompts))
            predicted[i] = cost.iteration_s(prompts, decodes, context)
    plan_overhead_s = getattr(cost, "plan_overhead_s", None)
    if plan_overhead_s is not None and arrival_s is not None:
        new_plan, admitted = plan_events(iterations["start_s"], iterations["end_s"], arrival_s)
        pure_decode = (iterations["num_prefills"] == 0).to_numpy()
        predicted += np.array([plan_overhead_s(int(a), bool(d), int(b)) if p else 0.0 for p, a, d, b
                               in zip(new_plan, admitted, pure_decode, iterations["batch_size"], strict=True)])
    predicted += swaps_s(iterations, cost, where)
    plan_end_overhead_s = getattr(cost, "plan_end_overhead_s", None)
    if plan_end_overhead_s is not None and busy.any():
        # the wrap-up lies between the iteration's end and the next start: in `measured` only when busy
        ends_plan, finished = plan_ends(iterations["start_s"], iterations["end_s"], finish_s)
        predicted += np.array([plan_end_overhead_s(int(f), int(b)) if e else 0.0
                               for e, f, b in zip(ends_plan & busy, finished, iterations["batch_size"], strict=True)])
    with np.errstate(divide="ignore", invalid="ignore"):
        errors = np.where(measured > 0, (predicted - measured) / measured, np.nan)
    return iterations.assign(measured_s=measured, predicted_s=predicted, rel_error=errors)


def swaps_s(iterations: pd.DataFrame, cost, where: str = "iterations") -> np.ndarray:
    """Per row, what its plan's KV transfers add before its forward pass, as the simulator
    charges them (sim/replica.py, `_apply_swaps`): each transfer's issue cost
    (`swap_overhead_s`), and, when the engine copies synchronously (`sync_transfers`: a CPU
    device), the copy itself at its direction's mean size (`swap_s`, the swap curve). The live
    engine starts a plan's row before issuing them, so they are in the measured time; on a
    GPU the copies run on their own streams beside compute. Zeros without swap counts in the
    rows (`num_swaps_out`, `num_swaps_in`) or swap prices in the cost model."""
    added = np.zeros(len(iterations))
    issue_s = cost.swap_overhead_s() if callable(getattr(cost, "swap_overhead_s", None)) else 0.0
    swap_s = getattr(cost, "swap_s", None) if getattr(cost, "sync_transfers", False) else None
    for direction in ("out", "in"):
        if f"num_swaps_{direction}" not in iterations:
            continue
        counts = iterations[f"num_swaps_{direction}"].to_numpy(np.int64)
        added += counts * issue_s
        if swap_s is not None:
            if f"swap_{direction}_tokens" not in iterations:
                raise InputError(f"{where}: column num_swaps_{direction} without swap_{direction}_tokens "
                                 "(the copies' size prices them)")
            added += swap_copies_s(counts, iterations[f"swap_{direction}_tokens"], swap_s, direction)
    return added


def chunks_prefills(config: dict, policy: str) -> bool:
    """Whether `policy` chunked its prefills in the run of `config` (its config.json): a
    `chunked_prefill_tokens` budget set, or a built-in policy that always chunks."""
    settings = config.get("policies", {}).get(policy, {}) if isinstance(config.get("policies"), dict) else {}
    if isinstance(settings, dict) and settings.get("chunked_prefill_tokens") is not None:
        return True
    return getattr(POLICIES.get(policy), "default_chunked_prefill_tokens", None) is not None


def _summary_row(run: RunData, policy: str, which: str) -> pd.Series:
    rows = run.summary[run.summary["policy"] == policy]
    if rows.empty:
        raise InputError(f"{run.path}: policy {policy} is missing from the {which} run's summary.csv")
    if len(rows) > 1:
        raise InputError(f"{run.path}: policy {policy} has {len(rows)} summary rows (several swap modes); "
                         "validate one swap mode per policy")
    return rows.iloc[0]


def validation_table(live: RunData, sim: RunData, cost: IterationCost, replay: RunData | None = None) -> pd.DataFrame:
    """validation.csv's rows: METRICS for each policy of the live run, in its order, and with
    `replay` (the simulation over the live run's own clock, `replay_factors`) REPLAYED_METRICS."""
    if live.iterations is None:
        raise InputError(f"{live.path}: no iterations.parquet (serve with --timeline)")
    rows = []
    for policy in dict.fromkeys(live.summary["policy"]):
        measured, simulated = _summary_row(live, policy, "live"), _summary_row(sim, policy, "simulated")
        for metric in SUMMARY_METRICS:
            m, s = float(measured[metric]), float(simulated[metric])
            rows.append((policy, metric, m, s, rel_error(m, s)))
        err = _priced_iterations(live, policy, cost)
        rows.append((policy, ITERATION_METRIC, float(err["measured_s"].median()),
                     float(err["predicted_s"].median()), float(err["rel_error"].median())))
        if replay is not None:
            replayed = _summary_row(replay, policy, "replayed")
            for name in REPLAYED_METRICS:
                metric = name.removeprefix(REPLAYED_PREFIX)
                m, s = float(measured[metric]), float(replayed[metric])
                rows.append((policy, name, m, s, rel_error(m, s)))
    return pd.DataFrame(rows, columns=COLUMNS)


def replay_factors(live: RunData, policy: str, cost: IterationCost) -> np.ndarray:
    """The live run's clock, for `profiles.replay.ReplayedClock`: each live iteration's measured
    time over its price (`iteration_errors`, so the same measured and predicted times as the
    iteration_s row), in the order the iterations ran. Rows either side cannot price (a zero
    time) are left out."""
    err = _priced_iterations(live, policy, cost)
    measured, predicted = err["measured_s"].to_numpy(np.float64), err["predicted_s"].to_numpy(np.float64)
    ok = np.isfinite(measured) & np.isfinite(predicted) & (measured > 0) & (predicted > 0)
    if not ok.any():
        raise InputError(f"{live.path}/iterations.parquet: no iteration of policy {policy} with a measured and a "
                         "priced time above zero")
    return measured[ok] / predicted[ok]


def _priced_iterations(live: RunData, policy: str, cost: IterationCost) -> pd.DataFrame:
    if live.iterations is None:
        raise InputError(f"{live.path}: no iterations.parquet (serve with --timeline)")
    its = live.iterations[live.iterations["policy"] == policy]
    if its.empty:
        raise InputError(f"{live.path}/iterations.parquet: no iterations of policy {policy}")
    requests = live.requests[live.requests["policy"] == policy]
    for_policy = getattr(cost, "for_policy", None)  # a profile's overhead measured with this policy
    return iteration_errors(its, for_policy(policy) if for_policy is not None else cost, requests["arrival_s"],
                            requests["finish_s"].dropna(), f"{live.path}/iterations.parquet",
                            chunked=chunks_prefills(live.config, policy))


SATURATED_QUEUED_SHARE = 0.9  # requests waited this much of the time: a run at or past the knee


def queued_time_share(iterations: pd.DataFrame) -> float:
    """The share of a run's iteration time during which requests waited to be admitted
    (`num_queued` > 0). A batching server is busy whenever any request is in it, so its busy
    share says little (~0.9 even at 60 % of its capacity); a queue that stays says the server
    is at the knee or past it, where a mean JCT is mostly queueing and moves several times as
    much as the iteration times that cause it. The chunked fidelity check at a fixed rate had
    a queue 93-98 % of the time and one code's live mean JCT spread over 0.10-2.04 s; at
    `--load 0.8`, 24-96 % (median 50 %). NaN without iterations."""
    if iterations.empty:
        return math.nan
    duration_s = (iterations["end_s"] - iterations["start_s"]).to_numpy(np.float64)
    total_s = float(duration_s.sum())
    waiting = iterations["num_queued"].to_numpy() > 0
    return float(duration_s[waiting].sum()) / total_s if total_s > 0 else math.nan


def within(table: pd.DataFrame, bounds: dict[str, float]) -> pd.DataFrame:
    """The table with `bound` and `ok` (|rel_error| <= bound) for the metrics `bounds` names."""
    out = table[table["metric"].isin(list(bounds))].copy()
    out["bound"] = out["metric"].map(bounds)
    out["ok"] = out["rel_error"].abs() <= out["bound"]
    return out.reset_index(drop=True)
