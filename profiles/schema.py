"""The profile: one model x hardware x parallelism, as a validated dataclass and versioned JSON.

JSON layout (schema_version 1); paths in error messages use these names:

    schema_version   1
    source           "roofline" | "measured"
    generated_by     the command that wrote the file
    model            ModelSpec fields (architecture and dtype; see profiles/models.py)
    hardware         {"name": ..., more free-form figures}
    software         {package: version}
    parallelism      {"tp": T, "pp": P}
    mixed_batch      "fused" (default) | "sequential": how a prefill+decode iteration is costed
    transfers        optional, "async" | "sync": whether the engine's KV swaps overlap compute
                     (a GPU's copy streams) or block it (a CPU engine copies in its own thread).
                     Absent: "sync" when hardware.name is "cpu", else "async"
    decode_context   optional, "mean" (default) | "max": which context of a decode batch the
                     decode grid's context axis stands for. "mean" suits kernels whose cost
                     follows the summed context (paged attention); "max" suits an engine that
                     pads every decode job to the batch's longest context (the executor's
                     pooled attention on CPU does, see executor/attention.py)
    mixed_shared_s   optional: what the prefill and decode parts of one fused mixed iteration
                     share (weights read once, fixed framework cost), measured as
                     prefill + decode - mixed at a few grid points; absent: the decode grid
                     extrapolated to zero jobs (see profiles/cost.py)
    forward_scale    optional (default 1): multiplies every grid lookup. The grids are medians of
                     passes repeated in a tight loop; inside a running engine the same passes run
                     slower (its own work between passes evicts caches: ~3-7 % on a tiny CPU
                     model). Measured on the engine's decode iterations of reused plans: the
                     median of their forward time over the grids' prediction, i.e. the typical
                     pass (a new plan's first pass is slower still: engine_overhead.first_pass_s)
    forward_scale_by_batch  optional (default none): the same ratio as a function of the pass's
                     job count, as [batch_size, scale] pairs with ascending batch sizes; a pass
                     of n jobs is priced at the scale interpolated linearly at n (clamped at the
                     ends), in place of forward_scale. The engine's slowdown grows with the batch
                     (more KV and activations to bring back into the caches its own work
                     evicted: 1.02x at 1 job to 1.08x at 20 on tiny-opt, CPU), so one median
                     scale, dominated by small batches, under-priced the busy batches of a loaded
                     run by ~4 % (executor/calibration.py)
    forward_noise    optional (default none): how the engine's passes spread around the typical
                     one, as K ascending numbers: the means of K equal-count groups of (pass time
                     / typical pass time) over the same iterations. Pass times are skewed (clock
                     noise: interrupts, co-tenants; on a 2-core CPU VM ~1 pass in 8 is 10-60 %
                     slower, in a tight loop too), so the mean pass, which the JCT sums, is
                     typical x mean(forward_noise). The simulator draws a group per iteration
                     (profiles/cost.py), so both its typical and its mean iteration match
    engine_overhead  optional {"iteration_s", "per_job_s", "per_prefill_s", "per_plan_s",
                     "per_admission_s", "per_plan_end_s", "per_finish_s", "first_pass_s",
                     "per_decode_plan_s", "per_plan_job_s", "per_plan_end_job_s", "per_swap_s"}: the serving
                     engine's own time beyond a reused plan's forward pass, measured by running
                     the engine. Every iteration costs iteration_s + per_job_s * jobs +
                     per_prefill_s * prefills more (KV and token bookkeeping, records); every
                     new plan costs, before its first iteration, per_plan_s + per_plan_job_s *
                     jobs + per_admission_s * requests admitted since the last one (scheduling,
                     synthesized prompt ids) + first_pass_s (its first forward pass runs slower
                     than a reused plan's: planning and a new batch shape evict the caches the
                     passes share) + per_decode_plan_s if it is pure decode (the engine asks the
                     policy how long it may reuse it); every plan costs, after its last
                     iteration, per_plan_end_s + per_plan_end_job_s * jobs + per_finish_s *
                     requests it finished (reporting the iterations to the policy, retiring
                     requests). A reused plan's iterations cost none of the per-plan terms.
                     Every transfer costs per_swap_s of engine time on the critical path, beyond
                     the swap curve's copy (the policy's swap decision, block bookkeeping,
                     reporting the landing)
                     Absent means 0 (a roofline, or a profile from before); the fields after
                     per_admission_s may be absent alone (profiles measured before them)
    engine_overhead_by_policy
                     optional {policy name: engine_overhead object}: the same, measured with
                     that policy (planning runs the policy's code, whose cost differs by
                     policy); engine_overhead is the default for policies not listed
    kv               {"bytes_per_token", "device_tokens", "host_tokens"}
    prefill          {"batch_sizes", "prompt_tokens", "latency_s"}   latency_s[i][j]: one
                     iteration prefilling batch_sizes[i] prompts of prompt_tokens[j] tokens each
    decode           {"batch_sizes", "context_tokens", "latency_s"}  latency_s[i][j]: one decode
                     iteration of batch_sizes[i] jobs whose context (prompt + generated so far,
                     the tokens each new token attends to) is context_tokens[j] each
    prefill_context  optional {"chunk_tokens", "context_tokens", "latency_s"}: latency_s[i][j]
                     is one iteration prefilling ONE chunk of chunk_tokens[i] tokens whose
                     job already has context_tokens[j] tokens of KV (chunked prefill: the chunk
                     attends to the earlier chunks' KV too). context_tokens starts at 0. The
                     cost model adds T(n, c) - T(n, 0) per chunk to the prefill grid's price.
                     Absent: the chunk's extra attention is estimated from the prefill grid
                     (profiles/cost.py)
    mixed_chunk      optional {"chunk_tokens", "context_tokens", "latency_s"}: latency_s[i][j]
                     is what ONE prefill chunk of chunk_tokens[i] tokens after context_tokens[j]
                     tokens of its job's KV ADDS to a decode iteration it joins (chunked prefill
                     beside running decodes), measured as (decodes + chunk) - (decodes alone),
                     the two passes timed back to back. context_tokens starts at 0. With it the
                     cost model prices a mixed iteration of a chunked policy as the decode grid
                     plus these marginals instead of max(Tp, Td, Tp + Td - F) (profiles/cost.py)
    swap             {"bytes", "out_s", "in_s"}: moving this much KV device->host / host->device
                     (bytes of the whole replica; TP/PP ranks move their shares in parallel)
    collectives      optional {"send_recv": {"bytes", "latency_s"}, "all_reduce": {...}};
                     send_recv (activations across one pipeline-stage boundary) is required
                     when pp > 1
    notes            optional free-form object (how capacities and grids were derived)

For pp > 1 the grids hold the time of one micro-batch through all stages, without the
stage-boundary transfers. Invariants (checked in `Profile.__post_init__`; each failure is one
`ProfileError` naming the field): axes are strictly increasing positive integers with at least
two points, grids match their axes' shape, latencies are finite and > 0, capacities >= 0 and
the device one > 0.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from profiles.models import ModelSpec

SCHEMA_VERSION = 1
SOURCES = ("roofline", "measured")
MIXED_BATCH_MODES = ("fused", "sequential")
DECODE_CONTEXT_MODES = ("mean", "max")
TRANSFER_MODES = ("async", "sync")


class ProfileError(ValueError):
    """A profile that breaks the schema: names the field (and the file, once known)."""

    def __init__(self, field_path: str, message: str, origin: str | None = None) -> None:
        self.field_path, self.message, self.origin = field_path, message, origin
        where = f"{origin}: " if origin else "profile: "
        super().__init__(f"{where}field '{field_path}': {message}")

    def at(self, origin: str) -> ProfileError:
        return ProfileError(self.field_path, self.message, origin)


def _plain(value):
    """Lists, tuples and numpy arrays -> nested tuples of Python numbers (hashable, comparable)."""
    if hasattr(value, "tolist"):  # numpy arrays and scalars
        value = value.tolist()
    if isinstance(value, list | tuple):
        return tuple(_plain(v) for v in value)
    return value


@dataclass(frozen=True)
class LatencyGrid:
    """Validated as part of a `Profile` (the error names need the field path there)."""
    batch_sizes: tuple[int, ...]
    tokens: tuple[int, ...]  # prompt tokens (prefill) or context tokens (decode) per job
    latency_s: tuple[tuple[float, ...], ...]  # [batch][tokens]

    def __post_init__(self) -> None:
        for name in ("batch_sizes", "tokens", "latency_s"):
            object.__setattr__(self, name, _plain(getattr(self, name)))


@dataclass(frozen=True)
class LatencyCurve:
    size_bytes: tuple[int, ...]
    latency_s: tuple[float, ...]

    def __post_init__(self) -> None:
        for name in ("size_bytes", "latency_s"):
            object.__setattr__(self, name, _plain(getattr(self, name)))


@dataclass(frozen=True)
class EngineOverhead:
    """Engine time per iteration outside the model (see `engine_overhead` above), in seconds.

    Why it exists: on a tiny model the forward pass is ~0.5 ms, and the engine's Python work
    around it (plan, block growth, token appends, records, admitting a request) is a few
    percent per decode iteration and ~15 % of a prefill iteration; without it the simulator
    runs systematically fast against the live executor (`fastserve validate`).
    """
    iteration_s: float
    per_job_s: float
    per_prefill_s: float
    per_plan_s: float = 0.0
    per_admission_s: float = 0.0
    per_plan_end_s: float = 0.0
    per_finish_s: float = 0.0
    first_pass_s: float = 0.0
    per_decode_plan_s: float = 0.0
    per_plan_job_s: float = 0.0
    per_plan_end_job_s: float = 0.0
    per_swap_s: float = 0.0

    FIELDS = ("iteration_s", "per_job_s", "per_prefill_s", "per_plan_s", "per_admission_s",
              "per_plan_end_s", "per_finish_s", "first_pass_s", "per_decode_plan_s", "per_plan_job_s",
              "per_plan_end_job_s", "per_swap_s")
    OPTIONAL_FIELDS = FIELDS[5:]  # 0 when absent (profiles measured before they existed)

    def s(self, num_jobs: int, num_prefills: int) -> float:
        """One iteration's overhead. Fixed operation order: the cost model's scalar and vector
        paths both add this one Python float, which keeps them bit-identical."""
        return self.iteration_s + self.per_job_s * num_jobs + self.per_prefill_s * num_prefills

    def plan_s(self, num_admitted: int, pure_decode: bool = False, num_jobs: int = 0) -> float:
        """One new plan's cost before its first iteration, `num_admitted` requests admitted
        since the last plan, `num_jobs` in its batch: planning, admissions, the slower first
        forward pass and, for a pure-decode plan, the engine's check of how long it may reuse it."""
        decode_s = self.per_decode_plan_s if pure_decode else 0.0
        return (self.per_plan_s + self.per_plan_job_s * num_jobs + self.per_admission_s * num_admitted
                + self.first_pass_s + decode_s)

    def plan_end_s(self, num_finished: int, num_jobs: int = 0) -> float:
        """One plan's cost after its last iteration, which finished `num_finished` of its
        `num_jobs` requests."""
        return self.per_plan_end_s + self.per_plan_end_job_s * num_jobs + self.per_finish_s * num_finished


@dataclass(frozen=True)
class Profile:
    model: ModelSpec
    hardware: dict
    software: dict
    tp: int
    pp: int
    prefill: LatencyGrid
    decode: LatencyGrid
    swap_out: LatencyCurve
    swap_in: LatencyCurve
    kv_bytes_per_token: int
    device_kv_tokens: int
    host_kv_tokens: int
    source: str
    generated_by: str
    send_recv: LatencyCurve | None = None
    all_reduce: LatencyCurve | None = None
    mixed_batch: str = "fused"
    notes: dict = field(default_factory=dict)
    decode_context: str = "mean"
    transfers: str = "async"
    overhead: EngineOverhead | None = None
    policy_overhead: dict = field(default_factory=dict)  # policy name -> EngineOverhead
    mixed_shared_s: float | None = None
    forward_scale: float = 1.0
    forward_noise: tuple[float, ...] = ()
    forward_scale_by_batch: tuple[tuple[float, float], ...] = ()
    prefill_context: LatencyGrid | None = None  # batch_sizes: chunk tokens; tokens: context tokens
    mixed_chunk: LatencyGrid | None = None  # the same axes; added seconds
    schema_version: int = SCHEMA_VERSION

    def __post_init__(self) -> None:
        if self.schema_version != SCHEMA_VERSION:
            raise ProfileError("schema_version", f"expected {SCHEMA_VERSION}, got {self.schema_version!r}")
        if self.source not in SOURCES:
            raise ProfileError("source", f"must be one of {SOURCES}, got {self.source!r}")
        if not isinstance(self.generated_by, str) or not self.generated_by.strip():
            raise ProfileError("generated_by", "must be a non-empty string (the command that wrote it)")
        if not isinstance(self.hardware, dict) or not isinstance(self.hardware.get("name"), str):
            raise ProfileError("hardware.name", "must be a string")
        if not isinstance(self.software, dict):
            raise ProfileError("software", "must be an object of package versions")
        if self.mixed_batch not in MIXED_BATCH_MODES:
            raise ProfileError("mixed_batch", f"must be one of {MIXED_BATCH_MODES}, got {self.mixed_batch!r}")
        if self.transfers not in TRANSFER_MODES:
            raise ProfileError("transfers", f"must be one of {TRANSFER_MODES}, got {self.transfers!r}")
        if self.decode_context not in DECODE_CONTEXT_MODES:
            raise ProfileError("decode_context", f"must be one of {DECODE_CONTEXT_MODES}, got {self.decode_context!r}")
        if self.mixed_shared_s is not None and (isinstance(self.mixed_shared_s, bool) or not isinstance(
                self.mixed_shared_s, int | float) or not math.isfinite(self.mixed_shared_s) or self.mixed_shared_s < 0):
            raise ProfileError("mixed_shared_s", f"must be a finite number >= 0, got {self.mixed_shared_s!r}")
        if isinstance(self.forward_scale, bool) or not isinstance(self.forward_scale, int | float) or not (
                math.isfinite(self.forward_scale) and self.forward_scale > 0):
            raise ProfileError("forward_scale", f"must be a finite number > 0, got {self.forward_scale!r}")
        object.__setattr__(self, "forward_noise", _plain(self.forward_noise))
        noise = self.forward_noise
        if not isinstance(noise, tuple) or len(noise) == 1 or any(
                isinstance(v, bool) or not isinstance(v, int | float) or not math.isfinite(v) or v <= 0 for v in noise):
            raise ProfileError("forward_noise", f"must list at least 2 finite numbers > 0 (or none), got {noise!r}")
        if list(noise) != sorted(noise):
            raise ProfileError("forward_noise", "must be ascending")
        _check_scale_curve(self)
        if self.overhead is not None:
            _check_overhead("engine_overhead", self.overhead)
        if not isinstance(self.policy_overhead, dict):
            raise ProfileError("engine_overhead_by_policy", "must be an object of policy name -> engine overhead")
        if self.policy_overhead and self.overhead is None:
            raise ProfileError("engine_overhead_by_policy", "needs engine_overhead (the default for other policies)")
        for policy, overhead in self.policy_overhead.items():
            if not isinstance(policy, str) or not isinstance(overhead, EngineOverhead):
                raise ProfileError(f"engine_overhead_by_policy.{policy}", "must be an engine overhead object")
            _check_overhead(f"engine_overhead_by_policy.{policy}", overhead)
        _positive_int("parallelism.tp", self.tp)
        _positive_int("parallelism.pp", self.pp)
        _positive_int("kv.bytes_per_token", self.kv_bytes_per_token)
        _positive_int("kv.device_tokens", self.device_kv_tokens)
        _positive_int("kv.host_tokens", self.host_kv_tokens, allow_zero=True)
        _check_grid("prefill", "prompt_tokens", self.prefill)
        _check_grid("decode", "context_tokens", self.decode)
        if self.prefill_context is not None:
            _check_grid("prefill_context", "context_tokens", self.prefill_context, "chunk_tokens", first_token=0)
        if self.mixed_chunk is not None:
            _check_grid("mixed_chunk", "context_tokens", self.mixed_chunk, "chunk_tokens", first_token=0)
        _check_curve("swap", "out_s", self.swap_out)
        _check_curve("swap", "in_s", self.swap_in)
        if self.swap_out.size_bytes != self.swap_in.size_bytes:
            raise ProfileError("swap.bytes", "out_s and in_s must share one bytes axis")
        for name in ("send_recv", "all_reduce"):
            curve = getattr(self, name)
            if curve is not None:
                _check_curve(f"collectives.{name}", "latency_s", curve)
        if self.pp > 1 and self.send_recv is None:
            raise ProfileError("collectives.send_recv", f"required when pp > 1 (pp = {self.pp})")

    @property
    def name(self) -> str:
        """Conventional file stem: model_hardware_tpT[_ppP]."""
        stem = f"{self.model.name}_{self.hardware['name']}_tp{self.tp}"
        return stem + (f"_pp{self.pp}" if self.pp > 1 else "")


def _check_overhead(path: str, overhead: EngineOverhead) -> None:
    for name in EngineOverhead.FIELDS:
        v = getattr(overhead, name)
        if isinstance(v, bool) or not isinstance(v, int | float) or not math.isfinite(v) or v < 0:
            raise ProfileError(f"{path}.{name}", f"must be a finite number >= 0, got {v!r}")


def _positive_int(path: str, value, allow_zero: bool = False) -> None:
    if not isinstance(value, int) or isinstance(value, bool) or value < (0 if allow_zero else 1):
        bound = ">= 0" if allow_zero else "> 0"
        raise ProfileError(path, f"must be an integer {bound}, got {value!r}")


def _check_axis(path: str, axis, first: int | None = None) -> None:
    """At least 2 strictly increasing positive integers; with `first`, starting at that value."""
    if not isinstance(axis, tuple) or len(axis) < 2:
        raise ProfileError(path, f"must list at least 2 points, got {axis!r}")
    if first is not None and axis[0] != first:
        raise ProfileError(path, f"must start at {first}, got {axis[0]!r}")
    for i, v in enumerate(axis):
        if not isinstance(v, int) or isinstance(v, bool) or v < (1 if first is None or i else first):
            raise ProfileError(path, f"point {i} must be a positive integer, got {v!r}")
        if i and v <= axis[i - 1]:
            raise ProfileError(path, f"must be strictly increasing: point {i} ({v}) follows {axis[i - 1]}")


def _check_latencies(path: str, values, length: int) -> None:
    if not isinstance(values, tuple) or len(values) != length:
        got = len(values) if isinstance(values, tuple) else type(values).__name__
        raise ProfileError(path, f"must have {length} values to match its axis, got {got}")
    for i, v in enumerate(values):
        if isinstance(v, bool) or not isinstance(v, int | float) or not math.isfinite(v) or v <= 0:
            raise ProfileError(f"{path}[{i}]", f"latency must be a finite number > 0, got {v!r}")


def _check_grid(prefix: str, token_axis: str, grid: LatencyGrid, row_axis: str = "batch_sizes",
                first_token: int | None = None) -> None:
    _check_axis(f"{prefix}.{row_axis}", grid.batch_sizes)
    _check_axis(f"{prefix}.{token_axis}", grid.tokens, first_token)
    rows = grid.latency_s
    if not isinstance(rows, tuple) or len(rows) != len(grid.batch_sizes):
        got = len(rows) if isinstance(rows, tuple) else type(rows).__name__
        per = "batch size" if row_axis == "batch_sizes" else f"{row_axis} point"
        raise ProfileError(f"{prefix}.latency_s", f"must have one row per {per} "
                                                  f"({len(grid.batch_sizes)}), got {got}")
    for i, row in enumerate(rows):
        _check_latencies(f"{prefix}.latency_s[{i}]", row, len(grid.tokens))


def _check_curve(prefix: str, values_name: str, curve: LatencyCurve) -> None:
    _check_axis(f"{prefix}.bytes", curve.size_bytes)
    _check_latencies(f"{prefix}.{values_name}", curve.latency_s, len(curve.size_bytes))


def _check_scale_curve(profile: Profile) -> None:
    """forward_scale_by_batch: none, or at least 2 [batch_size >= 1, scale > 0] pairs, batch
    sizes strictly ascending (normalized to a tuple of float pairs)."""
    raw = profile.forward_scale_by_batch
    bad = ProfileError("forward_scale_by_batch",
                       f"must list at least 2 [batch_size >= 1, scale > 0] pairs (or none), got {raw!r}")
    if not isinstance(raw, list | tuple):
        raise bad
    pairs = []
    for pair in raw:
        if not isinstance(pair, list | tuple) or len(pair) != 2 or any(
                isinstance(v, bool) or not isinstance(v, int | float) or not math.isfinite(v) for v in pair):
            raise bad
        if pair[0] < 1 or pair[1] <= 0:
            raise bad
        pairs.append((float(pair[0]), float(pair[1])))
    if len(pairs) == 1:
        raise bad
    if any(b <= a for (a, _), (b, _) in zip(pairs[:-1], pairs[1:], strict=True)):
        raise ProfileError("forward_scale_by_batch", "batch sizes must be strictly ascending")
    object.__setattr__(profile, "forward_scale_by_batch", tuple(pairs))
