"""The cost model of a profile: `policy.CostModel` answered from the profile's latency tables.

How an iteration is costed (all lookups are piecewise linear, see profiles/interp.py):

- prefill part Tp: the prefill grid at (number of prompts, mean prompt length). Using the mean
  keeps the linear-layer work (linear in total tokens) exact; attention's quadratic term is
  under-counted for very uneven prompts (for OPT-13B at 2048 tokens attention is ~7% of prefill
  FLOPs, so the error stays small);
- prefill chunks (chunked prefill): a chunk of n tokens after c tokens of the job's KV also
  attends to those c tokens. Each chunk adds extra(n, c) = T(n, c) - T(n, 0) to the prefill
  lookup (which is at the chunks' mean length), T the profile's `prefill_context` grid (one
  chunk of n tokens after c). A profile without that grid estimates it from the prefill grid,
  whose prompts are P(L) ~ F + a L + b L^2 (F the fixed cost below, b the causal attention):
  extra(n, c) = P(c + n) - P(c) - P(n) + F, which is 2 b c n, the chunk's queries times the
  earlier keys (clamped at 0);
- decode part Td: the decode grid at (number of jobs, mean context). Decode cost is
  a + b * jobs + c * sum(context), which bilinear interpolation in (jobs, mean context)
  reproduces exactly. With `decode_context = "max"` the lookup is at the longest context
  instead: an engine that pads every decode job to the longest one (the executor's pooled
  attention) pays jobs * max(context), and its profiler measures the grid that way;
- mixed batch (prefills and decodes in one iteration), `mixed_batch = "fused"`: both grid
  latencies include the fixed per-iteration cost F of reading every weight once (plus kernel
  launches), but one fused forward pass reads the weights once. F is the decode grid
  extrapolated to zero jobs at its smallest context (for a memory-bound decode it is the
  weight-read time), unless the profile measured it (`mixed_shared_s`: prefill + decode - mixed
  at a few grid points; on a tiny CPU model a mixed pass also pays ~10 % of F for packing two
  kinds of work, which the extrapolation misses). So T = max(Tp, Td, Tp + Td - F).
  `mixed_batch = "sequential"` is for
  engines that run the two parts as separate forward passes: T = Tp + Td.
- mixed chunk iteration (chunked prefill: the caller passes `prefill_context_tokens`, as the
  simulator does for every plan of a chunked policy, zeros included) with a `mixed_chunk` grid
  and fused passes: T = Td + sum over chunks of M(n, c), M the grid's measured marginal of one
  chunk joining a decode pass. Why not the rule above: a chunk's share of such a pass is small
  (~0.2 ms of ~1.3 ms on tiny-opt, CPU), and Tp - F prices it as the difference of a prefill
  grid point and a fixed cost measured at other moments (F by the calibration's engine runs):
  across 10 validate profiles that difference ranged -0.02 to 0.68 ms while the live one held at
  0.17-0.31 ms, a -17 % to +18 % error on two thirds of a chunked run's iterations. M is
  measured as one difference of two passes timed back to back (executor/profiler.py);
- forward scale (optional `forward_scale`, default 1): Tp and Td are multiplied by it before
  they are combined: the engine's passes are slower than the grids' tight-loop medians. With
  `forward_scale_by_batch` the scale is the curve's, interpolated at the pass's job count
  (prefills plus decodes; a skipped run's passes share one), since the slowdown grows with
  the batch;
- clock noise (optional `forward_noise`): `iteration_s` is the typical iteration. The
  simulator asks `noisy_iteration_s(..., index)` for its index-th iteration instead: the
  forward part times the noise group of that index (profiles/clock_noise.py: a
  low-discrepancy sequence over the K equal-probability groups), so the simulated iterations
  have the measured spread (their median the typical one, their mean the mean) with no random
  state: the same index gives the same time with and without event skipping;
- engine overhead (optional `engine_overhead`, measured by running the live engine): the
  engine's own time outside the forward pass, added to every iteration:
  iteration_s + per_job_s * jobs + per_prefill_s * prefills. The grids time the forward pass
  alone, so without it a simulator runs fast against a Python engine serving a tiny model.
  Planning is not per iteration (a reused plan is not planned again): `plan_overhead_s` is what
  an engine charges once per new plan, before its first iteration (planning, admissions, the
  reuse check of a pure-decode plan, and the extra time of a new plan's first forward pass over
  a reused plan's, `first_pass_s`; `forward_scale` prices the reused plans' passes), and
  `plan_end_overhead_s` what it
  charges once per plan after its last iteration (reporting it to the policy, retiring the
  requests it finished). Charging them per plan, where they happen, is what lets the
  per-iteration terms price the typical iteration while the sums stay right. Planning runs the
  policy's code, so a profile may hold one overhead per policy: `for_policy(name)` is the cost
  model with that policy's (the simulator asks for it once per run).

Pipeline parallelism: for pp > 1 the grids hold the time of one micro-batch through all stages,
without stage-boundary transfers. The simulator divides that per-stage work by pp and adds
`pp_send_recv_s(num_tokens)` per stage boundary.

Outside the grids the tables extrapolate (see interp.py); `exits` (profiles/grid_exits.py) counts
those lookups, warns once, and keeps the furthest past each axis's top.

`decode_iterations_s` shares the lookup arithmetic with `iteration_s` (numpy float64 vs Python
floats, same operations in the same order), so element i equals
`iteration_s([], [c + i for c in ctx])` bit for bit; the simulator's event skipping relies on it.
The scalar path is Python arithmetic on cached lists: a few microseconds per call.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import replace

import numpy as np

from profiles.clock_noise import noise_group, noise_groups
from profiles.grid_exits import GridExits, beyond
from profiles.interp import Table1D, Table2D
from profiles.schema import Profile


class TableCostModel:
    """Implements `policy.CostModel` from one validated `Profile`; no I/O."""

    def __init__(self, profile: Profile) -> None:
        self.profile = profile
        self.name = profile.name
        self.kv_bytes_per_token = profile.kv_bytes_per_token
        self.device_kv_tokens = profile.device_kv_tokens
        self.host_kv_tokens = profile.host_kv_tokens
        self.tp, self.pp = profile.tp, profile.pp
        self.exits = GridExits(profile.name)
        self._fused = profile.mixed_batch == "fused"
        self._decode_max = profile.decode_context == "max"
        self._overhead = profile.overhead
        self._scale = profile.forward_scale
        self._scale_curve = profile.forward_scale_by_batch
        self._scale_of: dict[int, float] = {}  # job count -> scale, filled as asked
        self._prefill = Table2D(profile.prefill.batch_sizes, profile.prefill.tokens, profile.prefill.latency_s)
        self._decode = Table2D(profile.decode.batch_sizes, profile.decode.tokens, profile.decode.latency_s)
        pc = profile.prefill_context
        self._prefill_context = Table2D(pc.batch_sizes, pc.tokens, pc.latency_s) if pc is not None else None
        mc = profile.mixed_chunk
        self._mixed_chunk = Table2D(mc.batch_sizes, mc.tokens, mc.latency_s) if mc is not None and self._fused else None
        self._swap = {"out": Table1D(profile.swap_out.size_bytes, profile.swap_out.latency_s),
                      "in": Table1D(profile.swap_in.size_bytes, profile.swap_in.latency_s)}
        sr = profile.send_recv
        self._send_recv = Table1D(sr.size_bytes, sr.latency_s) if sr is not None else None
        self._activation_bytes_per_token = profile.model.hidden_size * profile.model.dtype_bytes
        self.fixed_s = (profile.mixed_shared_s if profile.mixed_shared_s is not None
                        else _fixed_cost(profile) * profile.forward_scale)
        self._grid_fixed_s = _fixed_cost(profile)  # unscaled: the chunk estimate is in grid time
        self.forward_noise = profile.forward_noise
        # The engine's swaps block compute (CPU) instead of overlapping it (GPU copy streams).
        self.sync_transfers = profile.transfers == "sync"
        self._noise = np.array(profile.forward_noise, dtype=np.float64)

    def for_policy(self, policy: str) -> TableCostModel:
        """This cost model with the engine overhead measured for `policy`, if the profile has one
        (`engine_overhead_by_policy`: planning runs the policy's own code); else itself."""
        overhead = self.profile.policy_overhead.get(policy)
        if overhead is None or overhead == self._overhead:
            return self
        return TableCostModel(replace(self.profile, overhead=overhead))

    # -- policy.CostEstimate --------------------------------------------------------------
    def prefill_s(self, prompt_tokens: int) -> float:
        return self.iteration_s((prompt_tokens,), ())

    def min_iteration_s(self) -> float:
        """One job at the grid's shortest prompt or context, whichever is quicker (the tables grow
        with tokens, so this is the profile's shortest iteration)."""
        return min(self.iteration_s((), (self.profile.decode.tokens[0],)),
                   self.iteration_s((self.profile.prefill.tokens[0],), ()))

    def swap_s(self, tokens: int, direction: str) -> float:
        table = self._swap.get(direction)
        if table is None:
            raise ValueError(f"swap direction must be 'out' or 'in', got {direction!r}")
        if tokens <= 0:
            return 0.0
        size = tokens * self.kv_bytes_per_token
        value, outside = table.scalar(size)
        if outside:
            self.exits.left(f"swap of {size} bytes", self.profile.swap_out.size_bytes)
        return value

    # -- policy.CostModel -----------------------------------------------------------------
    def iteration_s(self, prefill_tokens: Sequence[int], decode_context_tokens: Sequence[int],
                    prefill_context_tokens: Sequence[int] = ()) -> float:
        """`prefill_context_tokens`: per prefill, the tokens of KV its chunk attends to beyond
        its own (chunked prefill); empty when every prefill starts at 0."""
        num_decodes = len(decode_context_tokens)
        num_prefills = len(prefill_tokens)
        if not (num_decodes or num_prefills):
            return 0.0
        overhead = self._overhead.s(num_decodes + num_prefills, num_prefills) if self._overhead else 0.0
        scale = self.forward_scale_at(num_decodes + num_prefills) if self._scale_curve else self._scale
        if num_decodes:
            context = self._decode_context(decode_context_tokens)
            td, outside = self._decode.scalar(num_decodes, context)
            td *= scale
            if outside:
                self.exits.decode(self.profile.decode, num_decodes, context, "longest" if self._decode_max else "mean")
            if not num_prefills:
                return td + overhead
            if prefill_context_tokens and self._mixed_chunk is not None:
                return td + scale * self.mixed_chunk_s(prefill_tokens, prefill_context_tokens) + overhead
        total = sum(prefill_tokens)
        tp, outside = self._prefill.scalar(num_prefills, total / num_prefills)
        if prefill_context_tokens:
            tp += self.chunk_context_s(prefill_tokens, prefill_context_tokens)
        tp *= scale
        if outside:
            self.exits.prefill(self.profile.prefill, num_prefills, total / num_prefills)
        if not num_decodes:
            return tp + overhead
        if self._fused:
            return max(tp, td, tp + td - self.fixed_s) + overhead
        return tp + td + overhead

    def chunk_context_s(self, prefill_tokens: Sequence[int], prefill_context_tokens: Sequence[int]) -> float:
        """What prefill chunks pay beyond prefills of their own length for attending to the KV
        of their earlier chunks (unscaled; see the module docstring)."""
        extra = 0.0
        table = self._prefill_context
        for n, c in zip(prefill_tokens, prefill_context_tokens, strict=True):
            if c <= 0:
                continue
            if table is not None:
                with_c, outside = table.scalar(n, c)
                if outside:
                    g = self.profile.prefill_context
                    # the grid's batch axis holds chunk tokens, its token axis context tokens
                    self.exits.left(f"prefill chunk of {n} tokens after {c}",
                                  beyond(n, g.batch_sizes, "chunk tokens") or beyond(c, g.tokens, "context tokens"))
                extra += max(0.0, with_c - table.scalar(n, 0)[0])
            else:
                whole = self._prefill.scalar(1, c + n)[0]
                extra += max(0.0, whole - self._prefill.scalar(1, c)[0] - self._prefill.scalar(1, n)[0]
                             + self._grid_fixed_s)
        return extra

    def mixed_chunk_s(self, prefill_tokens: Sequence[int], prefill_context_tokens: Sequence[int]) -> float:
        """What the prefill chunks add to the decode pass they join: the `mixed_chunk` grid's
        marginal of each (unscaled; a profile without the grid: ValueError)."""
        table = self._mixed_chunk
        if table is None:
            raise ValueError(f"profile {self.name}: no mixed_chunk grid (or not fused passes)")
        added = 0.0
        for n, c in zip(prefill_tokens, prefill_context_tokens, strict=True):
            value, outside = table.scalar(n, c)
            if outside:
                g = self.profile.mixed_chunk
                self.exits.left(f"prefill chunk of {n} tokens after {c} beside decodes",
                              beyond(n, g.batch_sizes, "chunk tokens") or beyond(c, g.tokens, "context tokens"))
            added += max(0.0, value)
        return added

    def noisy_iteration_s(self, prefill_tokens: Sequence[int], decode_context_tokens: Sequence[int],
                          index: int, prefill_context_tokens: Sequence[int] = ()) -> float:
        """The `index`-th iteration of a simulated run: `iteration_s` with its forward part
        times the clock-noise factor of `index` (see above); `iteration_s` without noise."""
        value = self.iteration_s(prefill_tokens, decode_context_tokens, prefill_context_tokens)
        if not self.forward_noise or not value:
            return value
        n = len(prefill_tokens) + len(decode_context_tokens)
        overhead = self._overhead.s(n, len(prefill_tokens)) if self._overhead else 0.0
        return overhead + (value - overhead) * self.forward_noise[noise_group(index, len(self.forward_noise))]

    def noisy_decode_iterations_s(self, decode_context_tokens: Sequence[int], num_iterations: int,
                                  first_index: int) -> np.ndarray:
        """`decode_iterations_s` as iterations first_index, first_index + 1, ...; element i
        equals `noisy_iteration_s([], [c + i for c in ctx], first_index + i)` bit for bit."""
        values = self.decode_iterations_s(decode_context_tokens, num_iterations)
        if not self.forward_noise or not len(decode_context_tokens):
            return values
        overhead = self._overhead.s(len(decode_context_tokens), 0) if self._overhead else 0.0
        index = np.arange(first_index, first_index + num_iterations, dtype=np.int64)
        return overhead + (values - overhead) * self._noise[noise_groups(index, len(self.forward_noise))]

    def forward_scale_at(self, num_jobs: int) -> float:
        """The scale of a pass of `num_jobs` jobs: `forward_scale_by_batch` interpolated at it,
        clamped at its ends; `forward_scale` without a curve."""
        if not self._scale_curve:
            return self._scale
        scale = self._scale_of.get(num_jobs)
        if scale is None:
            curve = self._scale_curve
            if num_jobs <= curve[0][0]:
                scale = curve[0][1]
            elif num_jobs >= curve[-1][0]:
                scale = curve[-1][1]
            else:
                (b0, s0), (b1, s1) = next((a, b) for a, b in zip(curve[:-1], curve[1:], strict=True) if b[0] >= num_jobs)
                scale = s0 + (s1 - s0) * (num_jobs - b0) / (b1 - b0)
            self._scale_of[num_jobs] = scale
        return scale

    def _decode_context(self, decode_context_tokens: Sequence[int]) -> float:
        if self._decode_max:
            return float(max(decode_context_tokens))
        return sum(decode_context_tokens) / len(decode_context_tokens)

    @property
    def prices_planning(self) -> bool:
        """Whether it charges a measured engine's own time per plan (`plan_overhead_s`,
        `plan_end_overhead_s` are 0 otherwise)."""
        return self._overhead is not None

    def plan_overhead_s(self, num_admitted: int, pure_decode: bool = False, num_jobs: int = 0) -> float:
        """Engine time to admit `num_admitted` requests and make one new plan of `num_jobs` jobs,
        pure decode or not (0 without a measured `engine_overhead`)."""
        return self._overhead.plan_s(num_admitted, pure_decode, num_jobs) if self._overhead is not None else 0.0

    def swap_overhead_s(self) -> float:
        """Engine time per KV transfer beyond the swap curve's copy, on the critical path (0
        without a measured `engine_overhead`)."""
        return self._overhead.per_swap_s if self._overhead is not None else 0.0

    def plan_end_overhead_s(self, num_finished: int, num_jobs: int = 0) -> float:
        """Engine time after the last iteration of a plan of `num_jobs` jobs, which finished
        `num_finished` of them (0 without a measured `engine_overhead`)."""
        return self._overhead.plan_end_s(num_finished, num_jobs) if self._overhead is not None else 0.0

    def decode_iterations_s(self, decode_context_tokens: Sequence[int], num_iterations: int) -> np.ndarray:
        if num_iterations < 0:
            raise ValueError(f"num_iterations must be >= 0, got {num_iterations}")
        num_decodes = len(decode_context_tokens)
        if not num_decodes:
            return np.zeros(num_iterations)
        steps = np.arange(num_iterations, dtype=np.int64)
        if self._decode_max:  # every context grows by one, so the longest stays the longest
            context = (int(max(decode_context_tokens)) + steps).astype(np.float64)
        else:
            totals = int(sum(decode_context_tokens)) + num_decodes * steps
            context = totals / num_decodes  # float64, correctly rounded like Python's int / int
        values, num_outside = self._decode.many_increasing(num_decodes, context)  # contexts only grow
        scale = self.forward_scale_at(num_decodes) if self._scale_curve else self._scale
        values = values * scale  # as in iteration_s: one IEEE multiply per element
        if num_outside:
            self.exits.decode(self.profile.decode, num_decodes, float(context[-1]), "longest" if self._decode_max else "mean",
                             num_outside)
        if self._overhead is not None:  # the same Python float added as in iteration_s
            values = values + self._overhead.s(num_decodes, 0)
        return values

    def decode_iterations_lazy(self, decode_context_tokens: Sequence[int],
                               num_iterations: int) -> Iterator[float] | None:
        """`decode_iterations_s`'s values one at a time, as Python floats with the same bits, for
        a caller that may stop early (the simulator ends a skip at the next arrival or policy
        deadline); None when its lookups would leave the grid or cross a grid segment, where
        `decode_iterations_s` serves. A run of a few iterations then costs about a microsecond
        each, not numpy's fixed cost per call."""
        num_decodes = len(decode_context_tokens)
        if not num_decodes:
            return None
        scale = self.forward_scale_at(num_decodes) if self._scale_curve else self._scale
        # without an overhead, + 0.0 leaves a (positive) latency's bits as they are
        overhead = self._overhead.s(num_decodes, 0) if self._overhead is not None else 0.0
        if self._decode_max:
            return self._decode.increasing_lazy(num_decodes, int(max(decode_context_tokens)), 1, 1,
                                                num_iterations, scale, overhead)
        return self._decode.increasing_lazy(num_decodes, int(sum(decode_context_tokens)), num_decodes, num_decodes,
                                            num_iterations, scale, overhead)

    # -- engines ------------------------------------------------------------------------------
    def pp_send_recv_s(self, num_tokens: int) -> float:
        """Activations of `num_tokens` tokens across one pipeline-stage boundary."""
        if self.pp == 1 or num_tokens <= 0:
            return 0.0
        size = num_tokens * self._activation_bytes_per_token
        value, outside = self._send_recv.scalar(size)
        if outside:
            self.exits.left(f"send/recv of {size} bytes", self.profile.send_recv.size_bytes)
        return value

    @property
    def num_extrapolations(self) -> int:
        return self.exits.count


def _fixed_cost(profile: Profile) -> float:
    """Per-iteration cost shared by any batch: the decode grid extrapolated to zero jobs."""
    g = profile.decode
    b0, b1 = g.batch_sizes[0], g.batch_sizes[1]
    v0, v1 = g.latency_s[0][0], g.latency_s[1][0]
    return min(max(v0 - b0 * (v1 - v0) / (b1 - b0), 0.0), v0)


def cost_model(profile: Profile) -> TableCostModel:
    return TableCostModel(profile)
