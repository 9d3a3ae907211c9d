"""Requests from other threads: the live engine's online `Arrivals` source.

Any thread (the HTTP front end's event loop) may `submit` a request with its prompt ids and a
`Sink`, `cancel` one, or `stop` the run; the engine thread takes them between plans. A request
arrives (`Job.arrival_s`, engine time) when `submit` is called, so the queueing before the
engine takes it counts in its TTFT, as a client sees it. Ids count up from 0 in submit order.

Invariants: every submitted request ends exactly once at its sink (`Sink.done`): finished,
rejected, or unfinished (cancelled, or the run stopped). After `stop`, `submit` raises
`RunStopped`, and the engine's next `take` or `wait` does, so a request is either refused or
recorded: none is lost. The sink's methods run on the engine thread and must not block.
`wait` blocks at most `wait_s`, so the engine loop re-checks its state at least that often.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from typing import Protocol

from executor.arrivals import Arrivals, Request, RunStopped
from policy import Job


class Sink(Protocol):
    def token(self, token: int) -> None: ...

    def done(self, status: str, reason: str) -> None: ...


class OnlineArrivals(Arrivals):
    def __init__(self, wait_s: float = 0.5) -> None:
        if not wait_s > 0:
            raise ValueError(f"wait_s must be > 0, got {wait_s}")
        self.wait_s = wait_s
        self._t0 = time.perf_counter()
        self._cond = threading.Condition()
        self._queue: deque[Request] = deque()
        self._cancelled: list[int] = []
        self._sinks: dict[int, Sink] = {}
        self._next_id = 0
        self._stopped: str | None = None

    def now(self) -> float:
        """Engine time."""
        return time.perf_counter() - self._t0

    @property
    def stopped(self) -> str | None:
        return self._stopped

    @property
    def num_open(self) -> int:
        """Requests submitted that have not ended yet."""
        return len(self._sinks)

    # -- other threads -------------------------------------------------------------------------
    def submit(self, prompt_ids: list[int], max_tokens: int, sink: Sink) -> int:
        """Queue a request; returns its id. Raises `RunStopped` once the run is stopping."""
        with self._cond:
            if self._stopped is not None:
                raise RunStopped(self._stopped)
            job = Job(id=self._next_id, arrival_s=self.now(), prompt_tokens=len(prompt_ids), output_tokens=max_tokens)
            self._next_id += 1
            self._sinks[job.id] = sink
            self._queue.append(Request(job, list(prompt_ids)))
            self._cond.notify()
            return job.id

    def cancel(self, job_id: int) -> None:
        """The client went away: the engine aborts the request (no-op once it ended)."""
        with self._cond:
            self._cancelled.append(job_id)
            self._cond.notify()

    def stop(self, reason: str) -> None:
        """End the run: refuse new requests; the engine records the rest as unfinished."""
        with self._cond:
            if self._stopped is None:
                self._stopped = reason
            self._cond.notify_all()

    # -- the engine thread ---------------------------------------------------------------------
    def start(self) -> float:
        return self._t0

    def more(self) -> bool:
        return True  # until `stop`, which `take` and `wait` raise

    def take(self, now_s: float) -> list[Request]:
        with self._cond:
            if self._stopped is not None:
                raise RunStopped(self._stopped)
            taken = []
            while self._queue and self._queue[0].job.arrival_s <= now_s:
                taken.append(self._queue.popleft())
            return taken

    def due_by(self, time_s: float) -> bool:
        with self._cond:
            return (self._stopped is not None or bool(self._cancelled)
                    or (bool(self._queue) and self._queue[0].job.arrival_s <= time_s))

    def wait(self) -> None:
        with self._cond:
            self._cond.wait_for(lambda: self._queue or self._cancelled or self._stopped is not None, self.wait_s)
            if self._stopped is not None:
                raise RunStopped(self._stopped)

    def cancelled(self) -> list[int]:
        with self._cond:
            ids, self._cancelled = self._cancelled, []
            return ids

    def on_token(self, job_id: int, token: int) -> None:
        sink = self._sinks.get(job_id)
        if sink is not None:
            sink.token(token)

    def on_done(self, job: Job, status: str, reason: str = "") -> None:
        sink = self._sinks.pop(job.id, None)
        if sink is not None:
            sink.done(status, reason)

    def left(self) -> list[Job]:
        """The run ended (stopped, or the engine failed): refuse requests from now on."""
        with self._cond:
            if self._stopped is None:
                self._stopped = "the engine stopped"
            jobs = [r.job for r in self._queue]
            self._queue.clear()
            return jobs
