"""Simulator options (the engine side; scheduling options live in `policy.SchedulerConfig`)."""

from __future__ import annotations

from dataclasses import dataclass

from policy.dispatch import DISPATCHERS


@dataclass(frozen=True, slots=True)
class SimConfig:
    num_replicas: int = 1
    pp: int = 1  # pipeline stages per replica; up to `pp` micro-batches in flight
    dispatcher: str = "round-robin"
    skip: bool = True  # event skipping; False steps every iteration (`--no-skip`)
    max_skip_iterations: int = 4096  # cap on one skip's precomputed duration array
    record_iterations: bool = False
    record_spans: bool = False
    progress: bool = False

    def __post_init__(self) -> None:
        for name in ("num_replicas", "pp", "max_skip_iterations"):
            value = getattr(self, name)
            if not isinstance(value, int) or value <= 0:
                raise ValueError(f"{name} must be a positive integer, got {value!r}")
        if self.dispatcher not in DISPATCHERS:
            raise ValueError(f"unknown dispatcher {self.dispatcher!r}; choose one of {', '.join(DISPATCHERS)}")
