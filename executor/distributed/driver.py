"""Rank 0's end of the command stream, and the runners the engine calls on rank 0.

`Driver.send` ships a command to rank 0's downstream ranks (`Topology.downstream`); a `step`
command carries the KV store ops recorded since the last one (`RecordingStore`) and the
iteration's segments, so every rank applies the ops, then runs its part of the same forward.

- `ReplicatedRunner` (pp = 1, tp > 1): `step` sends the command, then runs rank 0's shard;
  the row-parallel all-reduces inside keep the tp ranks in lock step, and rank 0's logits are
  complete after them, so it samples the tokens itself. The unchanged `Engine` drives it.
- `PipelineRunner` (pp > 1): `launch` sends the command, runs stage 0 and sends the hidden state
  on without waiting, so the engine can form the next micro-batch while later stages work;
  the last stage returns the tokens. Micro-batches leave the pipeline in launch order; the
  receive of each one's tokens is posted at launch (receives from one rank match in posting
  order). `step`, called by the engine when it lands the oldest micro-batch, waits for its
  tokens (at most `timeout_s`) and checks that it is the micro-batch launched first.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass

import torch

from executor.distributed.comm import DistributedError, Link
from executor.distributed.rank import StageRunner, segments_to_wire
from executor.distributed.replay import RecordingStore, digest
from executor.runner import ModelRunner, Segment


class Driver:
    def __init__(self, link: Link) -> None:
        self.link = link
        self.topo = link.topo
        self._deferred: list[dict] = []

    def defer(self, message: dict) -> None:
        """Send `message` just before the next one (a run's start goes out with its first step,
        so that a failure to send it stops the run inside the engine, with every row kept)."""
        self._deferred.append(message)

    def send(self, message: dict) -> None:
        self.link.reap()
        messages, self._deferred = [*self._deferred, message], []
        for m in messages:
            self.link.send_message(m, self.topo.downstream)

    def step_message(self, store: RecordingStore, segments: Sequence[Segment], check: bool) -> dict:
        return {"kind": "step", "ops": store.take_ops(), "segments": segments_to_wire(segments),
                "digest": digest(store.inner) if check else None}


class ReplicatedRunner:
    """What the engine calls `runner` on rank 0 when tp > 1 and pp = 1."""

    def __init__(self, driver: Driver, runner: ModelRunner, store: RecordingStore, check: bool = False) -> None:
        self.driver, self.runner, self.store, self.check = driver, runner, store, check
        self.model = runner.model

    def step(self, segments: Sequence[Segment]) -> list[int]:
        if not segments:
            return []
        self.driver.send(self.driver.step_message(self.store, segments, self.check))
        return self.runner.step(segments)


@dataclass
class _InFlight:
    key: list[tuple[int, int, int]]  # (job, start position, tokens) of each segment
    tokens: torch.Tensor
    work: object  # the posted receive of the tokens


def _key(segments: Sequence[Segment]) -> list[tuple[int, int, int]]:
    return [(s.job_id, s.start_pos, len(s.token_ids)) for s in segments]


class PipelineRunner:
    """What the engine calls `runner` on rank 0 when pp > 1."""

    def __init__(self, driver: Driver, runner: StageRunner, store: RecordingStore, check: bool = False) -> None:
        self.driver, self.runner, self.store, self.check = driver, runner, store, check
        self.model = runner.model
        self.link = driver.link
        self.depth = driver.topo.pp
        self._flights: deque[_InFlight] = deque()

    @property
    def num_in_flight(self) -> int:
        return len(self._flights)

    def launch(self, segments: Sequence[Segment]) -> None:
        self.driver.send(self.driver.step_message(self.store, segments, self.check))
        hidden = self.runner.forward(segments, None)
        self.link.send_tensor(hidden, self.driver.topo.next_stage_rank)
        tokens = torch.empty(len(segments), dtype=torch.int64)
        work = self.link.post_recv(tokens, self.driver.topo.token_sender)
        self._flights.append(_InFlight(_key(segments), tokens, work))

    def step(self, segments: Sequence[Segment]) -> list[int]:
        """The tokens of the oldest micro-batch in flight, which must be `segments`."""
        if not self._flights:
            raise DistributedError("the engine landed a micro-batch that was never launched")
        head = self._flights.popleft()
        self.link.wait(head.work, self.driver.topo.token_sender)  # first: keep the token stream aligned
        if head.key != _key(segments):
            raise DistributedError("the engine landed micro-batches out of launch order")
        return head.tokens.tolist()

    def abandon(self) -> None:
        """After a stopped run: take in the tokens still on their way (so that the next run's
        receives do not get them), unless the group is broken."""
        while self._flights and self.link.health.failed is None:
            head = self._flights.popleft()
            try:
                self.link.wait(head.work, self.driver.topo.token_sender)
            except DistributedError:
                break
        self._flights.clear()
