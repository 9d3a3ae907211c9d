"""Forward calibration: the profiler's grids, fitted to the forward passes of the running engine.

The grids are medians of passes repeated in a tight loop. Inside the engine (executor/overhead.py
runs it) the same passes run slower, because the engine's own work between passes evicts the
caches they share, and by how much depends on what happened just before:

- a pass of a reused plan (the engine only appended tokens and grew blocks since the last pass)
  is the typical iteration under load: `forward_scale` prices it;
- the first pass of a new plan follows planning, admissions and a new batch shape: it is slower
  still (~+7 % of a decode pass on tiny-opt, CPU, mostly gone by the next pass). That is a cost
  of making a plan, so `engine_overhead.first_pass_s` prices it and the cost model charges it
  once per new plan (`plan_overhead_s`), where it happens. (One scale over every pass priced the
  typical pass ~4 % high and the first passes low: the simulator then got the sum of a run's
  iterations right but not its typical iteration.)

The values, from the engine rows (rows slower than twice the grid are left out of all of them:
a time slice lost to another process, as in `fit_overhead`):

- forward_scale: over the decode-only rows of reused plans, the median of forward_s over the
  grid prediction: the typical pass;
- forward_scale_by_batch: the same ratio by batch size (`scale_curve`). The engine's slowdown
  grows with the batch (tiny-opt, CPU: 1.02x at 1 job, 1.04x at 6, 1.07x at 12, 1.08x at 20),
  so the single median, dominated by the many small batches of these runs, priced a loaded
  run's busy batches ~4 % low, which near saturation made its JCT ~7 % low (issue 9's
  swap-heavy regime). The cost model prices a pass at its job count's scale;
- forward_noise: the same rows' forward_s over their typical pass (the grid at their batch's
  scale), sorted, as the means of
  NUM_NOISE_GROUPS equal-count groups (none with fewer rows). Pass times are right-skewed by
  clock noise (a tight loop of identical passes on a 2-core CPU VM: mean 1.03 x median, 1 pass
  in 8 over 1.12 x), so no single scale prices both the typical pass, which a per-iteration
  comparison sees, and the mean pass, which a run's sum and its JCT see: forward_scale x
  mean(forward_noise) is the mean, and the simulator draws the groups (profiles/cost.py);
- first_pass_s: over the decode-only rows that began a new plan, the mean of forward_s minus the
  mean pass (typical x mean(forward_noise)), clamped at >= 0. Prefill-only rows are left out of all of these: here
  they are each run's first iteration, cold (~1.7x the grid on tiny-llama, CPU), as after an
  idle wait in serving, which is rare under load;
- mixed_shared_s: over the mixed rows (a prefill joining running decodes), the median of prefill
  + decode (grids at the whole pass's scale) - (forward_s - first_pass_s for a row that began a plan),
  clamped at >= 0; unchanged if there is none.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pandas as pd

from profiles import Profile, cost_model


def row_batch(row) -> tuple[list[int], list[int]]:
    """Prompt lengths and decode contexts of a row, as the cost model reads them: prompts at
    their mean (split evenly), decodes at their longest context (`decode_context = "max"`)."""
    base, extra = divmod(int(row.prefill_tokens), max(int(row.num_prefills), 1))
    prompts = [base + 1] * extra + [base] * (int(row.num_prefills) - extra)
    return prompts, [int(row.decode_max_context_tokens)] * (int(row.batch_size) - int(row.num_prefills))


NUM_NOISE_GROUPS = 20
MIN_CURVE_ROWS = 30  # rows a batch-size bucket needs to give a point of forward_scale_by_batch


def noise_groups(relative: np.ndarray, num_groups: int) -> tuple[float, ...]:
    """The means of `num_groups` equal-count groups of the sorted values (the first groups one
    value shorter when they do not divide evenly), ascending."""
    return tuple(float(g.mean()) for g in np.array_split(np.sort(relative), num_groups))


def scale_curve(batch_sizes: np.ndarray, ratio: np.ndarray, grid_batch_sizes) -> tuple[tuple[float, float], ...]:
    """`forward_scale_by_batch` from warm decode rows: the rows bucketed by the decode grid's
    batch sizes ((previous size, size]); each bucket of at least MIN_CURVE_ROWS rows gives one
    point, (the median batch size, the median ratio). Fewer than two points: none."""
    points, low = [], 0
    for high in grid_batch_sizes:
        inside = (batch_sizes > low) & (batch_sizes <= high)
        if inside.sum() >= MIN_CURVE_ROWS:
            points.append((float(np.median(batch_sizes[inside])), float(np.median(ratio[inside]))))
        low = high
    return tuple(points) if len(points) >= 2 else ()


def calibrate(profile: Profile, rows: pd.DataFrame) -> Profile:
    """`profile` with forward_scale, forward_scale_by_batch, forward_noise, mixed_shared_s and
    first_pass_s (in `overhead` and every `policy_overhead`) measured on the engine's rows
    (columns of the iteration records plus `new_plan`), as described above."""
    plain = dict(overhead=None, policy_overhead={}, mixed_shared_s=None, forward_noise=())  # the grids alone
    bare = cost_model(replace(profile, **plain, forward_scale=1.0, forward_scale_by_batch=()))
    mixed = (rows["num_prefills"] > 0) & (rows["num_prefills"] < rows["batch_size"])
    single = rows[rows["num_prefills"] == 0]
    grid = np.array([bare.iteration_s(*row_batch(r)) for r in single.itertuples()], dtype=np.float64)
    forward = single["forward_s"].to_numpy(np.float64)
    kept = forward <= 2 * grid
    first = single["new_plan"].to_numpy(bool)
    warm = kept & ~first if (kept & ~first).any() else kept
    ratio = forward[warm] / grid[warm]
    scale = float(np.median(ratio)) if warm.any() else 1.0
    curve = scale_curve(single["batch_size"].to_numpy(np.int64)[warm], ratio, profile.decode.batch_sizes)
    scaled = cost_model(replace(profile, **plain, forward_scale=scale, forward_scale_by_batch=curve))
    # each row's typical pass: the grid at its batch's scale
    typical = np.array([scaled.iteration_s(*row_batch(r)) for r in single.itertuples()], dtype=np.float64)
    relative = forward[warm] / typical[warm]
    noise = noise_groups(relative, NUM_NOISE_GROUPS) if len(relative) >= NUM_NOISE_GROUPS else ()
    noise_mean = float(np.mean(noise)) if noise else 1.0  # the mean pass over the typical one
    cold = kept & first
    first_pass_s = max(float(np.mean(forward[cold] - noise_mean * typical[cold])), 0.0) if cold.any() else 0.0
    shared = []
    for r in rows[mixed].itertuples():
        prompts, decodes = row_batch(r)
        warm_forward_s = float(r.forward_s) - (first_pass_s if r.new_plan else 0.0)
        # both parts at the scale of the whole pass, as the cost model prices a mixed pass
        both = scaled.forward_scale_at(len(prompts) + len(decodes))
        shared.append(both * (bare.iteration_s(prompts, []) + bare.iteration_s([], decodes)) - warm_forward_s)
    shared_s = max(float(np.median(shared)), 0.0) if shared else profile.mixed_shared_s
    with_first = (lambda o: replace(o, first_pass_s=first_pass_s))  # noqa: E731
    return replace(profile, forward_scale=scale, forward_scale_by_batch=curve, forward_noise=noise,
                   mixed_shared_s=shared_s,
                   overhead=with_first(profile.overhead) if profile.overhead is not None else None,
                   policy_overhead={p: with_first(o) for p, o in profile.policy_overhead.items()})
