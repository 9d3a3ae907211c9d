"""Where each unfinished job's KV is read from, in priority order: the scheduler's location
indexes, kept in step with `job.kv` (`JobLocations.move`).

The device index holds resident jobs and those swapping out (the copy's source), the host
index host jobs and those swapping in. Each is in priority order (ranks, `Scheduler._rank`),
so that eviction and proactive swapping pick their jobs without scanning every resident job.
A transfer moves a job between them when it lands (`Scheduler.on_swap_done`), not when
`schedule` starts it, which keeps the index work off the decision path (policy_bench.py);
walks skip jobs in transfer.
"""

from __future__ import annotations

from collections.abc import Callable

from policy.job import Job, KVLocation
from policy.queue import RankIndex

_DEVICE, _HOST = KVLocation.DEVICE, KVLocation.HOST
_SWAPPING_IN, _SWAPPING_OUT = KVLocation.SWAPPING_IN, KVLocation.SWAPPING_OUT
_DEVICE_SIDE, _HOST_SIDE, _NO_SIDE = "device", "host", None


def _side(location: KVLocation) -> str | None:
    # identity tests, not a dict: an Enum member hashes in Python code (~0.25 us a lookup, two
    # per `move`, which runs for every admission and swap a decision makes)
    if location is _DEVICE or location is _SWAPPING_OUT:
        return _DEVICE_SIDE
    return _HOST_SIDE if location is _HOST or location is _SWAPPING_IN else _NO_SIDE


class JobLocations:
    def __init__(self) -> None:
        self.device = RankIndex()
        self.host = RankIndex()
        self.swapping_out: dict[int, Job] = {}
        self.swapping_in: dict[int, Job] = {}

    def move(self, job: Job, old: KVLocation, rank: Callable[[Job], int]) -> bool:
        """The job's KV went from `old` to `job.kv`: file it again. Returns whether it changed
        sides (device, host, or neither)."""
        new = job.kv
        if old is _SWAPPING_OUT:
            del self.swapping_out[job.id]
        elif old is _SWAPPING_IN:
            del self.swapping_in[job.id]
        if new is _SWAPPING_OUT:
            self.swapping_out[job.id] = job
        elif new is _SWAPPING_IN:
            self.swapping_in[job.id] = job
        side, old_side = _side(new), _side(old)
        if side is old_side:
            return False
        if old_side is _DEVICE_SIDE:
            self.device.discard(job)
        elif old_side is _HOST_SIDE:
            self.host.discard(job)
        if side is _DEVICE_SIDE:
            self.device.add(job, rank(job))
        elif side is _HOST_SIDE:
            self.host.add(job, rank(job))
        return True

    def rekey(self, job: Job, rank: int) -> None:
        """The job's rank changed: re-key it where it is indexed (if anywhere)."""
        if not self.device.rekey(job, rank):
            self.host.rekey(job, rank)

    @property
    def num_resident(self) -> int:
        """Jobs whose KV is on the device with no transfer in flight."""
        return self.device.num_jobs - len(self.swapping_out)

    @property
    def num_on_host(self) -> int:
        """Jobs whose KV is on the host with no transfer in flight."""
        return self.host.num_jobs - len(self.swapping_in)
