"""Engine overhead: the live engine's own time per iteration, outside the model's forward pass.

The profiler's grids time `ModelRunner.step` alone. The engine around it also plans (or checks
that a plan can be reused), grows KV blocks, appends tokens, records rows, admits requests
(synthesized prompt ids, `scheduler.add`) and retires finished ones. On a tiny CPU model that is
a few percent of a decode iteration and ~15 % of a prefill iteration, so a simulator that
charges the grids alone runs fast against the live engine (`fastserve validate` showed it).

Measured by running the real `Engine` (never a model of it) on a serving-like load, once per
policy in `OverheadConfig.policies`: planning, the reuse check (`horizon`), admission and the
wrap-up of a plan run the policy's own code, whose cost differs by policy (on tiny-opt, CPU,
fcfs's `horizon` took ~90 us a call and skip-join-mlfq's ~28 us; a profile that priced every
policy like one under-priced fcfs's busy time by ~2 %). For each batch size b, `rounds` runs
(after one untimed warm-up run per process) of b requests present at t = 0 and b more arriving
one by one, `arrival_gap_iterations` decode iterations apart, while the first ones still
decode, with `max_batch_size` = b + ceil(b / 2) and ample KV. So most prefills join a running
batch alone, some arrivals wait for room, and plans are both made and reused. Every policy
serves the same requests. Per iteration row:

    overhead = (start of the next row - start of this row) - forward_s - admit_s

so the gap after a plan's last iteration (the wrap-up), which no row covers, is charged too; a
run's last row uses its own end. `admit_s` (the engine times its admissions, executor/records.py)
is taken out and priced directly: per_admission_s = summed admit_s / requests admitted. (Fitted
instead, it was confounded with the prefill that follows most admissions here, and came out at
less than half the measured time.) Which rows began a new plan, which ended one and how many
requests they finished come from `profiles.plan_events`. Fit (`fit_overhead`, two stages,
coefficients clamped at >= 0): `profiles.EngineOverhead`'s per-iteration terms (iteration_s,
per_job_s, per_prefill_s), per-plan terms before its first iteration (per_plan_s,
per_plan_job_s, per_decode_plan_s: a new pure-decode plan, the only kind the engine asks
`horizon` about) and after its last (per_plan_end_s, per_plan_end_job_s, per_finish_s).
Without the plan terms the wrap-up and the planning were spread over every iteration, which
priced the typical (reused-plan) iteration high and the plans low. Rows whose residual
exceeds half a median forward pass are dropped and the fit redone: such a gap is a time slice
lost to another process (2-core machines shared with other jobs) or an idle wait for the next
arrival, not engine work. The drop is counted in the note. Each policy gets its own fit, and
the pooled rows one more (the profile's default, for policies not measured).
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
import pandas as pd

from executor.engine import EngineConfig
from executor.serve import LiveServer
from policy import POLICIES, Job, SchedulerConfig
from policy.loading import load_policy_class
from profiles import EngineOverhead
from profiles.plan_events import plan_ends, plan_events, swap_copies_s


@dataclass(frozen=True)
class OverheadConfig:
    batch_sizes: tuple[int, ...] = (1, 2, 4, 8, 16)
    rounds: int = 3
    prompt_tokens: tuple[int, int] = (8, 64)  # uniform range, inclusive
    output_tokens: tuple[int, int] = (16, 64)
    arrival_gap_iterations: float = 4.0  # in units of the caller's iteration time estimate
    block_size_tokens: int = 16
    seed: int = 0
    policies: tuple[str, ...] = tuple(POLICIES)
    # runs per batch size with the device KV for b / 2 requests, a roomy host and 4x the
    # requests, so that the preemptive policies swap (the per-swap term); 0: none
    swap_rounds: int = 1

    def __post_init__(self) -> None:
        if self.swap_rounds < 0:
            raise ValueError(f"swap_rounds must be >= 0, got {self.swap_rounds}")
        if not self.batch_sizes or any(b <= 0 for b in self.batch_sizes) or self.rounds < 1:
            raise ValueError(f"batch_sizes must be positive and rounds >= 1, got {self.batch_sizes}, {self.rounds}")
        for name in ("prompt_tokens", "output_tokens"):
            lo, hi = getattr(self, name)
            if not 0 < lo <= hi:
                raise ValueError(f"{name} must be a range 0 < lo <= hi, got {(lo, hi)}")
        if self.block_size_tokens <= 0:
            raise ValueError(f"block_size_tokens must be positive, got {self.block_size_tokens}")
        for policy in self.policies:  # a built-in name or any spec policy.loading resolves
            load_policy_class(policy)
        if not self.policies or len(set(self.policies)) != len(self.policies):
            raise ValueError(f"policies must be distinct, got {self.policies}")

    @property
    def num_runs(self) -> int:
        return len(self.batch_sizes) * (self.rounds + self.swap_rounds) * len(self.policies)


def overhead_rows(iterations: pd.DataFrame, arrival_s, finish_s, swap_s=None) -> pd.DataFrame:
    """One run's iteration rows with `overhead_s` (time to the next row's start, minus the forward,
    the admissions and, given `swap_s(tokens, direction)`, the copies of the transfers the row's
    plan made, each at its direction's mean size: the swap curve prices those) and the plan events
    `new_plan`, `admitted`, `decode_plan`, `ends_plan`, `finished` (profiles/plan_events.py;
    `finish_s`: the finished requests' finish times), and `num_swaps`."""
    it = iterations.sort_values("start_s", kind="stable")
    period = it["start_s"].shift(-1).fillna(it["end_s"]) - it["start_s"]
    new_plan, admitted = plan_events(it["start_s"], it["end_s"], arrival_s)
    ends_plan, finished = plan_ends(it["start_s"], it["end_s"], finish_s)
    counts = {d: it[f"num_swaps_{d}"].to_numpy(np.int64) if f"num_swaps_{d}" in it else np.zeros(len(it), np.int64)
              for d in ("out", "in")}
    copy_s = np.zeros(len(it))
    if swap_s is not None:
        for d, n in counts.items():
            copy_s += swap_copies_s(n, it[f"swap_{d}_tokens"], swap_s, d)
    return it.assign(overhead_s=period - it["forward_s"] - it["admit_s"] - copy_s, new_plan=new_plan,
                     admitted=admitted, decode_plan=new_plan & (it["num_prefills"] == 0).to_numpy(),
                     ends_plan=ends_plan, finished=finished, num_swaps=counts["out"] + counts["in"])


# the per-iteration terms, from reused-plan rows that do not end their plan: (1, batch_size)
ITERATION_COEFFICIENTS = ("iteration_s", "per_job_s")
# the rest, from every other row, after the per-iteration terms: feature -> EngineOverhead field
PLAN_FEATURES = {"num_prefills": "per_prefill_s", "new_plan": "per_plan_s", "plan_jobs": "per_plan_job_s",
                 "decode_plan": "per_decode_plan_s", "ends_plan": "per_plan_end_s",
                 "end_jobs": "per_plan_end_job_s", "finished": "per_finish_s", "num_swaps": "per_swap_s"}


def fit_overhead(rows: pd.DataFrame) -> tuple[EngineOverhead, int]:
    """`EngineOverhead` (first_pass_s 0: `executor.calibration` measures it) from rows with
    batch_size, num_prefills, new_plan, decode_plan, ends_plan, finished, overhead_s, admit_s,
    admitted, forward_s and (optional) num_swaps; and how many rows were dropped as lost time
    slices.

    Two stages, because plans come every few iterations here: a joint fit let the planning
    work that grows with the batch (walking it to plan, to check reuse, to report) pass for
    per-iteration work, and priced a reused iteration of 12 jobs at ~2x its measured overhead.
    1. iteration_s, per_job_s: the rows of reused plans that do not end them (no plan work);
    2. the plan terms: every other row, less stage 1's prediction, on PLAN_FEATURES
    (`plan_jobs`, `end_jobs`: the batch size of a row that begins, or ends, a plan)."""
    limit_s = 0.5 * float(rows["forward_s"].median())
    y = rows["overhead_s"].to_numpy(np.float64)
    batch = rows["batch_size"].to_numpy(np.float64)
    if "num_swaps" not in rows:
        rows = rows.assign(num_swaps=0)
    mid = ~rows["new_plan"].to_numpy(bool) & ~rows["ends_plan"].to_numpy(bool) & (rows["num_swaps"] == 0).to_numpy()
    x1 = np.column_stack([np.ones(len(rows)), batch])
    coef1, keep1 = _robust_fit(x1[mid], y[mid], limit_s) if mid.sum() >= 2 else (np.zeros(2), np.ones(0, bool))
    plan_rows = rows.assign(plan_jobs=rows["new_plan"] * rows["batch_size"],
                            end_jobs=rows["ends_plan"] * rows["batch_size"])[~mid]
    x2 = plan_rows[list(PLAN_FEATURES)].to_numpy(np.float64)
    coef2, keep2 = _robust_fit(x2, y[~mid] - x1[~mid] @ coef1, limit_s)
    keep = np.ones(len(rows), dtype=bool)
    keep[np.flatnonzero(mid)[~keep1]] = False
    keep[np.flatnonzero(~mid)[~keep2]] = False
    admitted = int(rows["admitted"][keep].sum())
    per_admission_s = float(rows["admit_s"][keep].sum()) / admitted if admitted else 0.0
    fields = {**dict(zip(ITERATION_COEFFICIENTS, coef1.tolist(), strict=True)),
              **dict(zip(PLAN_FEATURES.values(), coef2.tolist(), strict=True))}
    return EngineOverhead(**fields, per_admission_s=per_admission_s), int((~keep).sum())


def _robust_fit(x: np.ndarray, y: np.ndarray, limit_s: float) -> tuple[np.ndarray, np.ndarray]:
    """Non-negative least squares, then again without the rows whose residual exceeds `limit_s`
    (lost time slices); returns the coefficients and the kept rows."""
    coef = _nonnegative_lstsq(x, y)
    keep = (y - x @ coef) <= limit_s
    return _nonnegative_lstsq(x[keep], y[keep]), keep


def _nonnegative_lstsq(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Least squares with every coefficient >= 0: drop the most negative one and refit until none is."""
    active = np.ones(x.shape[1], dtype=bool)
    coef = np.zeros(x.shape[1])
    while active.any():
        sol = np.linalg.lstsq(x[:, active], y, rcond=None)[0]
        if (sol >= 0).all():
            coef[active] = sol
            return coef
        active[np.flatnonzero(active)[np.argmin(sol)]] = False
    return coef


def measure_engine_overhead(model, cfg: OverheadConfig, iteration_s: float = 5e-4, on_run=None, cost=None
                            ) -> tuple[dict[str, EngineOverhead], EngineOverhead, str, pd.DataFrame]:
    """Run the engine as described above (`iteration_s`: a decode iteration's time, which spaces
    the arrivals; `cost`: the policies' cost estimate, which skip-join-mlfq needs); returns the
    fit of each policy, the pooled fit, a one-line note of the method and the iteration rows
    (with a `policy` column)."""
    max_seq = cfg.prompt_tokens[1] + cfg.output_tokens[1]
    if max_seq > model.config.max_position_embeddings:
        raise ValueError(f"overhead runs need {max_seq} positions; the model has {model.config.max_position_embeddings}")
    gap_s = cfg.arrival_gap_iterations * iteration_s
    server = LiveServer(model, EngineConfig(time_scale=1.0))
    frames, warmed = [], False
    for policy in cfg.policies:
        rng = np.random.default_rng(cfg.seed)  # every policy serves the same requests
        for b in cfg.batch_sizes:
            blocks = -(-max_seq // cfg.block_size_tokens) * cfg.block_size_tokens
            # q_1 = the decode iteration measured so far: the "auto" rule, before a profile exists
            roomy = SchedulerConfig(device_kv_tokens=2 * b * blocks, host_kv_tokens=0,
                                    block_size_tokens=cfg.block_size_tokens, max_batch_size=b + (b + 1) // 2,
                                    max_seq_tokens=max_seq, base_quantum_s=iteration_s)
            tight = replace(roomy, device_kv_tokens=max(blocks, b * blocks // 2), host_kv_tokens=4 * b * blocks)
            for sched in [roomy] * (cfg.rounds + (not warmed)) + [tight] * cfg.swap_rounds:
                # tight runs serve 4x the requests, so that the KV pools fragment as in serving
                k_jobs = b if sched is roomy else 4 * b
                jobs = _jobs(rng, cfg, [0.0] * k_jobs + [(k + 1) * gap_s for k in range(k_jobs)])
                result, _ = server.run(jobs, policy, sched, cost)
                if result.error is not None:
                    raise RuntimeError(f"engine overhead run ({policy}, batch {b}) failed: {result.error}")
                if not warmed:  # the process's first engine run pays one-time costs: untimed
                    warmed = True
                    continue
                finish_s = [t for t in result.log.floats["finish_s"] if np.isfinite(t)]
                rows = overhead_rows(result.iterations, [j.arrival_s for j in jobs], finish_s,
                                     cost.swap_s if cost is not None else None)
                frames.append(rows.assign(policy=policy))
                if on_run is not None:
                    on_run()
    rows = pd.concat(frames, ignore_index=True)
    fits = {p: fit_overhead(rows[rows["policy"] == p]) for p in cfg.policies}
    pooled, num_dropped = fit_overhead(rows)
    note = (f"engine runs of {', '.join(cfg.policies)}, batch sizes {list(cfg.batch_sizes)} x {cfg.rounds} rounds, "
            f"b requests at t=0 and b arriving {gap_s * 1e3:.3g} ms apart; admissions timed by the engine "
            "(summed admit time / admitted); least squares of (next start - start - forward - admit time) on "
            "(1, jobs) over reused-plan rows, then the rest on (prefills, new plan, its jobs, new decode plan, "
            f"plan end, its jobs, finished, swaps beyond the swap curve's copy; {cfg.swap_rounds} run(s) per "
            "batch size with device KV for b requests), per policy and pooled, over "
            f"{len(rows)} iterations, {num_dropped} dropped from the pooled fit "
            f"({', '.join(f'{p}: {d}' for p, (_, d) in fits.items())}) as lost time slices or idle "
            "(residual > half a median forward)")
    return {p: fit for p, (fit, _) in fits.items()}, pooled, note, rows


def _jobs(rng: np.random.Generator, cfg: OverheadConfig, arrivals_s: list[float]) -> list[Job]:
    return [Job(i, arrival_s, int(rng.integers(cfg.prompt_tokens[0], cfg.prompt_tokens[1] + 1)),
                int(rng.integers(cfg.output_tokens[0], cfg.output_tokens[1] + 1)))
            for i, arrival_s in enumerate(arrivals_s)]
