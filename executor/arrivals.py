"""Where the live engine's requests come from, and where their tokens go.

The engine asks an `Arrivals` source, between plans, for the requests that have arrived by
now (`take`), whether one arrives before a reused plan's next iteration ends (`due_by`), and
for the requests whose clients went away (`cancelled`); when it has nothing to run it lets the
source block (`wait`). It reports each generated token (`on_token`, after the iteration's end
time is taken, so a client never sees a token before the engine's record of it) and each
request's end (`on_done`, exactly once per request: finished, rejected or unfinished).

`TraceArrivals` replays a trace: arrival times are known in advance, nobody listens for tokens.
`executor.online.OnlineArrivals` takes requests from other threads (the HTTP front end).

A source may end a run early by raising `RunStopped` from `take` or `wait` (Ctrl-C or SIGTERM
of a server); the engine then records every request it holds as unfinished with that reason.
"""

from __future__ import annotations

import time
from collections import deque
from dataclasses import dataclass

from policy import Job


class RunStopped(Exception):
    """The source ends the run now; the message is the reason recorded for unfinished requests."""


@dataclass(slots=True)
class Request:
    job: Job  # arrival_s in engine time
    prompt_ids: list[int] | None = None  # None: synthesized from the run's seed (trace replay)


class Arrivals:
    """The interface the engine drives (see the module docstring); `TraceArrivals` is the base case."""

    def start(self) -> float:
        """The engine starts: returns the `time.perf_counter()` value that is engine time 0."""
        raise NotImplementedError

    def more(self) -> bool:
        """Requests may still arrive."""
        raise NotImplementedError

    def take(self, now_s: float) -> list[Request]:
        """The requests that arrived by `now_s`, in arrival order, handed over once."""
        raise NotImplementedError

    def due_by(self, time_s: float) -> bool:
        """A request arrives (or a cancellation comes) by `time_s`: a reused plan stops there."""
        raise NotImplementedError

    def wait(self) -> None:
        """Block until the next arrival, or a bounded while when it is unknown."""
        raise NotImplementedError

    def cancelled(self) -> list[int]:
        """Ids of requests whose clients went away since the last call."""
        return []

    def on_token(self, job_id: int, token: int) -> None:
        """A token was generated for the request."""

    def on_done(self, job: Job, status: str, reason: str = "") -> None:
        """The request ended with `status` (policy.records.STATUSES)."""

    def left(self) -> list[Job]:
        """Requests not taken yet, when the run stops early."""
        return []


class TraceArrivals(Arrivals):
    """A trace's jobs (copied; arrivals scaled by `time_scale`), replayed in wall-clock time."""

    def __init__(self, jobs: list[Job], time_scale: float = 1.0) -> None:
        self._pending = deque(sorted(
            (Job(id=j.id, arrival_s=j.arrival_s * time_scale, prompt_tokens=j.prompt_tokens,
                 output_tokens=j.output_tokens) for j in jobs),
            key=lambda j: j.arrival_s,
        ))
        self.num_requests = len(self._pending)
        self._t0 = 0.0

    def start(self) -> float:
        self._t0 = time.perf_counter()
        return self._t0

    def more(self) -> bool:
        return bool(self._pending)

    def take(self, now_s: float) -> list[Request]:
        pending, taken = self._pending, []
        while pending and pending[0].arrival_s <= now_s:
            taken.append(Request(pending.popleft()))
        return taken

    def due_by(self, time_s: float) -> bool:
        return bool(self._pending) and self._pending[0].arrival_s <= time_s

    def wait(self) -> None:
        if self._pending:
            time.sleep(max(0.0, self._pending[0].arrival_s - (time.perf_counter() - self._t0)))

    def left(self) -> list[Job]:
        return list(self._pending)
