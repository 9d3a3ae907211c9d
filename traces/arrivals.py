"""Arrival processes: when requests arrive, in seconds from the start of the trace.

Every process is a frozen dataclass with `generate(num_requests, rng) -> arrival_s`, where `rng`
is a seeded `numpy.random.Generator` owned by the caller (no global RNG). Invariants of the
result: float64, length `num_requests`, non-decreasing, first arrival at 0 s (so that the
sample's duration is the sum of `num_requests - 1` gaps and `(n - 1) / duration` estimates
the rate), except for `replay`, which keeps the recorded timestamps.

Spec strings: `poisson:rate=R`, `gamma:rate=R,cv=C`, `constant:rate=R`, `replay:PATH`.
Rescaling a real trace to a target rate, or its time by a factor, is `Trace.rescale_rate` and
`Trace.scale_time`.
"""

from __future__ import annotations

import abc
import math
from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from traces.errors import SpecError
from traces.specs import format_number, parse_pairs, split_kind, to_float


class ArrivalSpec(abc.ABC):
    """An arrival process; `str(spec)` is a spec string that parses back to an equal spec."""

    kind: ClassVar[str]
    keys: ClassVar[frozenset[str]] = frozenset()  # the keys its spec string takes

    @abc.abstractmethod
    def generate(self, num_requests: int, rng: np.random.Generator) -> np.ndarray: ...


def _check_rate(kind: str, rate_rps: float) -> None:
    if not (math.isfinite(rate_rps) and rate_rps > 0):
        raise SpecError(f"{kind} arrivals: key 'rate' must be > 0 requests/s, got {rate_rps}")


def _from_gaps(gaps_s: np.ndarray) -> np.ndarray:
    """Cumulative arrival times with the first request at 0 s."""
    if gaps_s.size:
        gaps_s[0] = 0.0
    return np.cumsum(gaps_s)


@dataclass(frozen=True)
class PoissonArrivals(ArrivalSpec):
    """Exponential inter-arrival gaps: the memoryless process of the vLLM and FastServe evaluations."""

    rate_rps: float
    kind: ClassVar[str] = "poisson"
    keys: ClassVar[frozenset[str]] = frozenset({"rate"})

    def __post_init__(self) -> None:
        _check_rate(self.kind, self.rate_rps)

    def generate(self, num_requests: int, rng: np.random.Generator) -> np.ndarray:
        return _from_gaps(rng.exponential(1.0 / self.rate_rps, size=num_requests))

    def __str__(self) -> str:
        return f"poisson:rate={format_number(self.rate_rps)}"


@dataclass(frozen=True)
class GammaArrivals(ArrivalSpec):
    """Gamma gaps with mean 1/rate and coefficient of variation `cv` (cv > 1 is bursty).

    Shape k = 1/cv^2 and scale = 1/(rate * k) give mean 1/rate and std cv/rate; cv = 1 is Poisson.
    """

    rate_rps: float
    cv: float
    kind: ClassVar[str] = "gamma"
    keys: ClassVar[frozenset[str]] = frozenset({"rate", "cv"})

    def __post_init__(self) -> None:
        _check_rate(self.kind, self.rate_rps)
        if not (math.isfinite(self.cv) and self.cv > 0):
            raise SpecError(f"gamma arrivals: key 'cv' must be > 0, got {self.cv}")

    def generate(self, num_requests: int, rng: np.random.Generator) -> np.ndarray:
        shape = 1.0 / self.cv**2
        return _from_gaps(rng.gamma(shape, 1.0 / (self.rate_rps * shape), size=num_requests))

    def __str__(self) -> str:
        return f"gamma:rate={format_number(self.rate_rps)},cv={format_number(self.cv)}"


@dataclass(frozen=True)
class ConstantArrivals(ArrivalSpec):
    """One request every 1/rate seconds (no randomness; `rng` is unused)."""

    rate_rps: float
    kind: ClassVar[str] = "constant"
    keys: ClassVar[frozenset[str]] = frozenset({"rate"})

    def __post_init__(self) -> None:
        _check_rate(self.kind, self.rate_rps)

    def generate(self, num_requests: int, rng: np.random.Generator) -> np.ndarray:
        return np.arange(num_requests, dtype=np.float64) / self.rate_rps

    def __str__(self) -> str:
        return f"constant:rate={format_number(self.rate_rps)}"


@dataclass(frozen=True)
class ReplayArrivals(ArrivalSpec):
    """The first `num_requests` recorded arrival times of a trace file (any format with times).

    The file is read in `generate`, never in the constructor.
    """

    path: str
    kind: ClassVar[str] = "replay"

    def __post_init__(self) -> None:
        if not self.path:
            raise SpecError("replay arrivals: missing PATH (use replay:PATH)")

    def generate(self, num_requests: int, rng: np.random.Generator) -> np.ndarray:
        from traces.io import load  # io parses arrival specs, so import it late

        trace = load(self.path)
        if len(trace) < num_requests:
            raise SpecError(
                f"replay arrivals: {self.path} has {len(trace)} requests, fewer than the "
                f"{num_requests} asked for"
            )
        return np.array(trace.arrival_s[:num_requests], dtype=np.float64)

    def __str__(self) -> str:
        return f"replay:{self.path}"


ARRIVAL_KINDS: dict[str, type[ArrivalSpec]] = {
    cls.kind: cls for cls in (PoissonArrivals, GammaArrivals, ConstantArrivals, ReplayArrivals)
}


def from_rate(rate_rps: float, cv: float = 1.0) -> ArrivalSpec:
    """The CLI's `--rate R [--cv C]`: Poisson when cv == 1, Gamma otherwise."""
    return PoissonArrivals(rate_rps) if cv == 1.0 else GammaArrivals(rate_rps, cv)


def parse_arrivals(spec: str | ArrivalSpec) -> ArrivalSpec:
    """An `ArrivalSpec` from a spec string (an `ArrivalSpec` passes through unchanged)."""
    if isinstance(spec, ArrivalSpec):
        return spec
    kind, rest = split_kind(spec, "arrivals")
    what = f"arrivals spec '{spec}'"
    if kind not in ARRIVAL_KINDS:
        raise SpecError(f"{what}: unknown kind '{kind}' (choose {', '.join(ARRIVAL_KINDS)})")
    if kind == "replay":
        return ReplayArrivals(rest)
    cls = ARRIVAL_KINDS[kind]
    pairs = parse_pairs(rest, what, sorted(cls.keys), required=sorted(cls.keys))
    rate_rps = to_float(pairs["rate"], "rate", what)
    if kind == "gamma":
        return GammaArrivals(rate_rps, to_float(pairs["cv"], "cv", what))
    return cls(rate_rps)
