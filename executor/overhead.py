"""Engine overhead: the live engine's own time per iteration, outside the model's forward pass.

The profiler's grids time `ModelRunner.step` alone. The engine around it also plans (or checks
that a plan can be reused), grows KV blocks, appends tokens, records rows, admits requests
(synthesized prompt ids, `scheduler.add`) and retires finished ones. On a tiny CPU model that is
a few percent of a decode iteration and ~15 % of a prefill iteration, so a simulator that
charges the grids alone runs fast against the live engine (`fastserve validate` showed it).

Measured by running the real `Engine` (never a model of it) on a serving-like load: for each
batch size b, `rounds` runs (after one untimed warm-up run) of b requests present at t = 0 and b
more arriving one by one, `arrival_gap_iterations` decode iterations apart, while the first ones
still decode; `mlfq` serves them (KV grows block by block, plans change at arrivals, finishes
and quantum ends) with `max_batch_size` = b + ceil(b / 2) and ample KV. So most prefills join a
running batch alone, some arrivals wait for room (admission and prefill fall apart, as in a
queue), and plans are both made and reused. Per iteration row:

    overhead = (start of the next row - start of this row) - forward_s

so the gap after a plan's last iteration (advance, records of finished jobs), which no row
covers, is charged too; a run's last row uses its own end. Which rows began a new plan and how
many requests were admitted before it come from `profiles.plan_events`. Fit: least squares of
overhead on (1, batch_size, num_prefills, new_plan, admitted), coefficients clamped at >= 0:
`profiles.EngineOverhead`'s iteration_s, per_job_s, per_prefill_s, per_plan_s and
per_admission_s. Rows whose residual exceeds half a median forward pass are dropped and the fit
redone: such a gap is a time slice lost to another process (2-core machines shared with other
jobs) or an idle wait for the next arrival, not engine work. The drop is counted in the note.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
import pandas as pd

from executor.engine import EngineConfig
from executor.serve import LiveServer
from policy import Job, SchedulerConfig
from profiles import EngineOverhead, Profile, cost_model
from profiles.plan_events import plan_events

POLICY = "mlfq"


@dataclass(frozen=True)
class OverheadConfig:
    batch_sizes: tuple[int, ...] = (1, 2, 4, 8, 16)
    rounds: int = 3
    prompt_tokens: tuple[int, int] = (8, 64)  # uniform range, inclusive
    output_tokens: tuple[int, int] = (16, 64)
    arrival_gap_iterations: float = 4.0  # in units of the caller's iteration time estimate
    block_size_tokens: int = 16
    seed: int = 0

    def __post_init__(self) -> None:
        if not self.batch_sizes or any(b <= 0 for b in self.batch_sizes) or self.rounds < 1:
            raise ValueError(f"batch_sizes must be positive and rounds >= 1, got {self.batch_sizes}, {self.rounds}")
        for name in ("prompt_tokens", "output_tokens"):
            lo, hi = getattr(self, name)
            if not 0 < lo <= hi:
                raise ValueError(f"{name} must be a range 0 < lo <= hi, got {(lo, hi)}")
        if self.block_size_tokens <= 0:
            raise ValueError(f"block_size_tokens must be positive, got {self.block_size_tokens}")

    @property
    def num_runs(self) -> int:
        return len(self.batch_sizes) * self.rounds


def overhead_rows(iterations: pd.DataFrame, arrival_s) -> pd.DataFrame:
    """One run's iteration rows with `overhead_s` (time to the next row's start, minus the
    forward) and the plan events `new_plan`, `admitted` (profiles/plan_events.py)."""
    it = iterations.sort_values("start_s", kind="stable")
    period = it["start_s"].shift(-1).fillna(it["end_s"]) - it["start_s"]
    new_plan, admitted = plan_events(it["start_s"], it["end_s"], arrival_s)
    return it.assign(overhead_s=period - it["forward_s"], new_plan=new_plan, admitted=admitted)


FEATURES = ("batch_size", "num_prefills", "new_plan", "admitted")  # after the constant


def fit_overhead(rows: pd.DataFrame) -> tuple[EngineOverhead, int]:
    """`EngineOverhead` from rows with the FEATURES, overhead_s and forward_s; and how many rows
    were dropped as lost time slices."""
    x = np.column_stack([np.ones(len(rows)), *(rows[c] for c in FEATURES)]).astype(np.float64)
    y = rows["overhead_s"].to_numpy(np.float64)
    coef = _nonnegative_lstsq(x, y)
    limit_s = 0.5 * float(rows["forward_s"].median())
    keep = (y - x @ coef) <= limit_s
    coef = _nonnegative_lstsq(x[keep], y[keep])
    return EngineOverhead(*(float(c) for c in coef)), int((~keep).sum())


def _nonnegative_lstsq(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Least squares with every coefficient >= 0: drop the negative ones and refit (3 unknowns)."""
    active = np.ones(x.shape[1], dtype=bool)
    coef = np.zeros(x.shape[1])
    while active.any():
        sol = np.linalg.lstsq(x[:, active], y, rcond=None)[0]
        if (sol >= 0).all():
            coef[active] = sol
            return coef
        active[np.flatnonzero(active)[np.argmin(sol)]] = False
    return coef


def measure_engine_overhead(model, cfg: OverheadConfig, iteration_s: float = 5e-4, on_run=None
                            ) -> tuple[EngineOverhead, str, pd.DataFrame]:
    """Run the engine as described above (`iteration_s`: a decode iteration's time, which spaces
    the arrivals); returns the fit, a one-line note of the method and the iteration rows."""
    rng = np.random.default_rng(cfg.seed)
    max_seq = cfg.prompt_tokens[1] + cfg.output_tokens[1]
    if max_seq > model.config.max_position_embeddings:
        raise ValueError(f"overhead runs need {max_seq} positions; the model has {model.config.max_position_embeddings}")
    gap_s = cfg.arrival_gap_iterations * iteration_s
    server = LiveServer(model, EngineConfig(time_scale=1.0))
    frames, warmed = [], False

    def job(i: int, arrival_s: float) -> Job:
        return Job(i, arrival_s, int(rng.integers(cfg.prompt_tokens[0], cfg.prompt_tokens[1] + 1)),
                   int(rng.integers(cfg.output_tokens[0], cfg.output_tokens[1] + 1)))

    for b in cfg.batch_sizes:
        blocks = -(-max_seq // cfg.block_size_tokens)
        sched = SchedulerConfig(device_kv_tokens=2 * b * blocks * cfg.block_size_tokens, host_kv_tokens=0,
                                block_size_tokens=cfg.block_size_tokens, max_batch_size=b + (b + 1) // 2,
                                max_seq_tokens=max_seq)
        for _ in range(cfg.rounds + (not warmed)):
            jobs = [job(i, 0.0) for i in range(b)] + [job(b + k, (k + 1) * gap_s) for k in range(b)]
            result, _ = server.run(jobs, POLICY, sched)
            if result.error is not None:
                raise RuntimeError(f"engine overhead run (batch {b}) failed: {result.error}")
            if not warmed:  # the process's first engine run pays one-time costs: untimed
                warmed = True
                continue
            frames.append(overhead_rows(result.iterations, [j.arrival_s for j in jobs]))
            if on_run is not None:
                on_run()
    rows = pd.concat(frames, ignore_index=True)
    overhead, num_dropped = fit_overhead(rows)
    note = (f"engine runs of {POLICY}, batch sizes {list(cfg.batch_sizes)} x {cfg.rounds} rounds, b requests at t=0 "
            f"and b arriving {gap_s * 1e3:.3g} ms apart; least squares of (next start - start - forward) on "
            f"(1, jobs, prefills, new plan, admitted) over {len(rows)} iterations, {num_dropped} dropped as lost time slices or idle "
            "(residual > half a median forward)")
    return overhead, note, rows


def _batch(row) -> tuple[list[int], list[int]]:
    """Prompt lengths and decode contexts of a row, as the cost model reads them: prompts at
    their mean (split evenly), decodes at their longest context (`decode_context = "max"`)."""
    base, extra = divmod(int(row.prefill_tokens), max(int(row.num_prefills), 1))
    prompts = [base + 1] * extra + [base] * (int(row.num_prefills) - extra)
    return prompts, [int(row.decode_max_context_tokens)] * (int(row.batch_size) - int(row.num_prefills))


def calibrate(profile: Profile, rows: pd.DataFrame) -> Profile:
    """`profile` with `forward_scale` and `mixed_shared_s` measured on the engine's rows.

    forward_scale: over the decode-only rows, summed forward_s over the summed grid prediction
    (a ratio of sums, so the mean pass, which the JCT sums, is kept), leaving out rows slower
    than twice the grid (a time slice lost to another process, as in `fit_overhead`). Prefill-only rows are left
    out: here they are each run's first iteration, cold (~1.7x the grid on tiny-llama, CPU), as
    after an idle wait in serving, which is rare under load.
    mixed_shared_s: over the mixed rows (a prefill joining running decodes), the median of
    prefill + decode (scaled grids) - forward_s, clamped at >= 0; unchanged if there is none.
    """
    bare = cost_model(replace(profile, overhead=None, mixed_shared_s=None, forward_scale=1.0))
    mixed = (rows["num_prefills"] > 0) & (rows["num_prefills"] < rows["batch_size"])
    single = rows[rows["num_prefills"] == 0]
    grid = np.array([bare.iteration_s(*_batch(r)) for r in single.itertuples()], dtype=np.float64)
    forward = single["forward_s"].to_numpy(np.float64)
    kept = forward <= 2 * grid
    scale = float(forward[kept].sum() / grid[kept].sum()) if kept.any() else 1.0
    scaled = cost_model(replace(profile, overhead=None, mixed_shared_s=None, forward_scale=scale))
    shared = []
    for r in rows[mixed].itertuples():
        prompts, decodes = _batch(r)
        shared.append(scaled.iteration_s(prompts, []) + scaled.iteration_s([], decodes) - float(r.forward_s))
    shared_s = max(float(np.median(shared)), 0.0) if shared else profile.mixed_shared_s
    return replace(profile, forward_scale=scale, mixed_shared_s=shared_s)
