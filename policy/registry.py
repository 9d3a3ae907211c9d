"""The policy registry: names to scheduler classes, and one constructor that checks the name."""

from __future__ import annotations

from policy.config import SchedulerConfig
from policy.cost import CostEstimate
from policy.fcfs import FCFS, VLLMFCFS
from policy.mlfq import MLFQ, SkipJoinMLFQ
from policy.sarathi import Sarathi
from policy.scheduler import Scheduler
from policy.srpt import SRPT

POLICIES: dict[str, type[Scheduler]] = {
    cls.name: cls for cls in (FCFS, VLLMFCFS, MLFQ, SkipJoinMLFQ, SRPT, Sarathi)
}


def make_scheduler(name: str, config: SchedulerConfig | None = None, cost: CostEstimate | None = None) -> Scheduler:
    try:
        cls = POLICIES[name]
    except KeyError:
        raise ValueError(f"unknown policy {name!r}; choose one of {', '.join(POLICIES)}") from None
    return cls(config, cost)
