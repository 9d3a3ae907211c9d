"""The arrivals a replica's skipped runs stop at (sim/skip_run.py), and where it finds them.

An arrival changes only the scheduler of the replica it is dispatched to. With round-robin
dispatch that replica is known from the trace alone (the i-th request goes to replica i mod N),
so each replica gets a stream of its own requests, and a run on one replica goes on past
requests that arrive at the others: with 16 replicas a run is cut by a sixteenth of the
arrivals. The dispatchers that read the replicas' loads couple them (where a request goes
depends on every replica's state when it arrives), so there every replica stops at every
arrival, one stream shared by all.
"""

from __future__ import annotations

import math

import numpy as np


class ArrivalStream:
    """Arrival instants in integer microseconds, in trace order, and how many have come."""

    def __init__(self, arrival_us: np.ndarray) -> None:
        self._us = arrival_us
        self._num_arrived = 0
        # the next one after the last that came (none before the first: no job, no run)
        self.next_us: int | float = math.inf
        # a run may go past arrivals only if it can find them (`arrives_at`)
        self.sorted = bool(np.all(arrival_us[1:] >= arrival_us[:-1]))

    def took_one(self) -> None:
        """The cluster handled this stream's next arrival."""
        self._num_arrived += 1
        i = self._num_arrived
        self.next_us = int(self._us[i]) if i < len(self._us) else math.inf

    def arrives_at(self, t_us: int) -> bool:
        """Whether one of the stream's requests arrives at exactly `t_us` (needs `sorted`)."""
        i = int(np.searchsorted(self._us, t_us))
        return i < len(self._us) and int(self._us[i]) == t_us


def arrival_streams(arrival_us: np.ndarray, num_replicas: int, round_robin: bool) -> list[ArrivalStream]:
    """One stream per replica: its own requests under round-robin dispatch, else all of them."""
    if round_robin and num_replicas > 1:
        return [ArrivalStream(arrival_us[r::num_replicas]) for r in range(num_replicas)]
    shared = ArrivalStream(arrival_us)
    return [shared] * num_replicas
