"""The policy registry: built-in names to scheduler classes, and one constructor for any spec.

`make_scheduler` accepts what `policy.loading` resolves: a built-in name, an entry-point name,
`module:Class` or `path/file.py:Class` (with optional `:name=value,...` parameters).
"""

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
    cls = POLICIES.get(name)
    if cls is not None:
        return cls(config, cost)
    from policy.loading import instantiate

    return instantiate(name, config, cost)
