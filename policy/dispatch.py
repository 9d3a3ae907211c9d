"""Dispatchers: which replica a new request goes to.

Both engines use these when they run more than one replica. A dispatcher sees only what a real
front end knows at arrival (each replica's unfinished jobs and their prompt tokens), never
output lengths. Ties go to the lowest replica index, so choices are deterministic.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from policy.job import Job


@dataclass(frozen=True, slots=True)
class ReplicaLoad:
    num_jobs: int
    outstanding_prompt_tokens: int


class Dispatcher:
    name = ""

    def choose(self, job: Job, loads: Sequence[ReplicaLoad]) -> int:
        raise NotImplementedError


class RoundRobin(Dispatcher):
    name = "round-robin"

    def __init__(self) -> None:
        self._next = 0

    def choose(self, job: Job, loads: Sequence[ReplicaLoad]) -> int:
        i = self._next % len(loads)
        self._next = i + 1
        return i


class LeastWork(Dispatcher):
    """Fewest outstanding prompt tokens: the work a front end can see without oracle lengths."""

    name = "least-work"

    def choose(self, job: Job, loads: Sequence[ReplicaLoad]) -> int:
        return min(range(len(loads)), key=lambda i: (loads[i].outstanding_prompt_tokens, i))


class ShortestQueue(Dispatcher):
    name = "shortest-queue"

    def choose(self, job: Job, loads: Sequence[ReplicaLoad]) -> int:
        return min(range(len(loads)), key=lambda i: (loads[i].num_jobs, i))


DISPATCHERS: dict[str, type[Dispatcher]] = {
    d.name: d for d in (RoundRobin, LeastWork, ShortestQueue)
}


def make_dispatcher(name: str) -> Dispatcher:
    try:
        return DISPATCHERS[name]()
    except KeyError:
        raise ValueError(f"unknown dispatcher {name!r}; choose one of {', '.join(DISPATCHERS)}") from None
