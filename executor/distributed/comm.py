"""Process groups and the messages between ranks: commands, activations, tokens.

Groups (every rank creates all of them, in the same order):
- the default group (`data`): gloo on CPU, NCCL on CUDA, with the short `timeout_s`. It carries
  activations between stages; a per-stage `tp` subgroup carries the row-parallel all-reduces.
  A peer that dies breaks these at once ("connection closed by peer"); one that hangs fails
  them after `timeout_s`.
- `control`: gloo, with the long `idle_timeout_s`. It carries the command stream (JSON) and
  the sampled tokens. Workers block on it while rank 0 waits for requests to arrive, which may
  be a long time, so its timeout is long. Rank 0 never blocks on it without its own deadline:
  it sends with `isend` and waits for tokens with `wait(timeout=timeout_s)`.
Every message between a pair of ranks keeps its order (gloo matches sends to receives in
order per pair), so a command and its payloads never need tags.

Every torch.distributed failure is re-raised as `DistributedError` with one line naming the
peer, plus what `Health.describe()` knows (a spawned worker's exit status).
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta

import torch
import torch.distributed as dist

from executor.distributed.topology import Topology


class DistributedError(RuntimeError):
    """A peer died, hung past the timeout, or broke the protocol; the group is unusable."""


def short_error(exc: BaseException) -> str:
    """The useful first line of a torch.distributed error (no source location, no advice)."""
    lines = str(exc).strip().splitlines()
    text = lines[0] if lines else type(exc).__name__
    text = re.sub(r"^\[[^\]]*\.(?:cc|cpp|h):\d+\]\s*", "", text)
    return text.split(". This is typically caused")[0].rstrip(". ")


@dataclass
class Health:
    """How to explain a failure: `describe` returns e.g. "worker rank 1 (pid 42) was killed by
    signal 9", or None when nothing more is known (torchrun watches its own workers)."""

    describe: Callable[[], str | None] = lambda: None
    failed: str | None = None  # the first failure seen on this rank

    def error(self, what: str, exc: BaseException) -> DistributedError:
        message = f"{what}: {short_error(exc)}"
        extra = self.describe()
        if extra:
            message += f" ({extra})"
        self.failed = self.failed or message
        return DistributedError(message)


@dataclass
class Groups:
    topo: Topology
    control: object
    tp: object | None
    timeout_s: float
    device: torch.device
    health: Health = field(default_factory=Health)


def init_groups(topo: Topology, backend: str, timeout_s: float, idle_timeout_s: float, device: torch.device,
                store=None, health: Health | None = None) -> Groups:
    """Join the default group (from `store`, else from torchrun's environment) and build the others."""
    kwargs = {"store": store} if store is not None else {"init_method": "env://"}
    dist.init_process_group(backend, rank=topo.rank, world_size=topo.world_size,
                            timeout=timedelta(seconds=timeout_s), **kwargs)
    control = dist.new_group(backend="gloo", timeout=timedelta(seconds=idle_timeout_s))
    tp_group = None
    if topo.tp > 1:
        for stage in range(topo.pp):  # every rank creates every subgroup, in the same order
            # a subgroup does not inherit the default group's timeout (it would get 30 min)
            group = dist.new_group(ranks=topo.stage_ranks(stage), timeout=timedelta(seconds=timeout_s))
            if stage == topo.stage:
                tp_group = group
    return Groups(topo, control, tp_group, timeout_s, device, health or Health())


class Link:
    """One rank's end of the wire: sends never block (buffers live until the send completes);
    receives of commands block without a deadline (workers), everything else has one."""

    def __init__(self, groups: Groups) -> None:
        self.groups = groups
        self.topo = groups.topo
        self.health = groups.health
        self._sends: list[tuple[object, int, tuple[torch.Tensor, ...]]] = []  # work, peer, buffers

    def _fail(self, what: str, exc: BaseException) -> DistributedError:
        return self.health.error(what, exc)

    # -- commands (JSON on the control group) --------------------------------------------------
    def send_message(self, message: dict, dsts: list[int]) -> None:
        payload = json.dumps(message, separators=(",", ":")).encode()
        self._send_body(torch.frombuffer(bytearray(payload), dtype=torch.uint8), dsts)

    def _send_body(self, body: torch.Tensor, dsts: list[int]) -> None:
        header = torch.tensor([body.numel()], dtype=torch.int64)
        for dst in dsts:
            try:
                works = (dist.isend(header, dst, group=self.groups.control),
                         dist.isend(body, dst, group=self.groups.control))
            except (RuntimeError, ValueError) as exc:
                raise self._fail(f"sending a command to rank {dst}", exc) from None
            self._sends.extend((w, dst, (header, body)) for w in works)

    def recv_message(self, src: int, forward_to: list[int] = ()) -> dict:
        """Block (no deadline: rank 0 may be idle) for the next command from `src`, and pass the
        same bytes on to `forward_to` before decoding them."""
        header = torch.empty(1, dtype=torch.int64)
        try:
            dist.recv(header, src, group=self.groups.control)
            body = torch.empty(int(header[0]), dtype=torch.uint8)
            dist.recv(body, src, group=self.groups.control)
        except (RuntimeError, ValueError) as exc:
            raise self._fail(f"waiting for a command from rank {src}", exc) from None
        if forward_to:
            self._send_body(body, list(forward_to))
        return json.loads(body.numpy().tobytes())

    # -- activations (default group) -------------------------------------------------------------
    def send_tensor(self, tensor: torch.Tensor, dst: int, control: bool = False) -> None:
        tensor = tensor.contiguous()
        try:
            work = dist.isend(tensor, dst, group=self.groups.control if control else None)
        except (RuntimeError, ValueError) as exc:
            raise self._fail(f"sending to rank {dst}", exc) from None
        self._sends.append((work, dst, (tensor,)))

    def recv_tensor(self, shape: tuple[int, ...], dtype: torch.dtype, src: int) -> torch.Tensor:
        out = torch.empty(shape, dtype=dtype, device=self.groups.device)
        try:
            dist.recv(out, src)
        except (RuntimeError, ValueError) as exc:
            raise self._fail(f"receiving activations from rank {src}", exc) from None
        return out

    def post_recv(self, tensor: torch.Tensor, src: int):
        """A receive on the control group, to finish with `wait` (receives from one rank are
        matched in the order they were posted)."""
        try:
            return dist.irecv(tensor, src, group=self.groups.control)
        except (RuntimeError, ValueError) as exc:
            raise self._fail(f"receiving from rank {src}", exc) from None

    def recv_reply(self, src: int) -> dict:
        """A worker's JSON answer to rank 0 (a measurement), within the deadline."""
        header = torch.empty(1, dtype=torch.int64)
        self.wait(self.post_recv(header, src), src)
        body = torch.empty(int(header[0]), dtype=torch.uint8)
        self.wait(self.post_recv(body, src), src)
        return json.loads(body.numpy().tobytes())

    def wait(self, work, src: int) -> None:
        try:
            work.wait(timeout=timedelta(seconds=self.groups.timeout_s))
        except (RuntimeError, ValueError) as exc:
            raise self._fail(f"waiting for rank {src}", exc) from None

    # -- bookkeeping -------------------------------------------------------------------------------
    def reap(self) -> None:
        """Wait (at most `timeout_s`) for the earlier sends to complete and free their buffers.

        A gloo send completes when the receiver has posted the matching receive, and its
        `is_completed()` stays False until `wait()` (nor does a receive's), so sends cannot be
        polled: each rank waits for its earlier sends before its next command. That is the
        pipeline's back-pressure: a stage runs at most one micro-batch ahead of the next one.
        Rank 0 posts the receive of a micro-batch's tokens when it launches it, so the last
        stage never waits for rank 0."""
        self.drain()

    def drain(self) -> None:
        """Wait (with the deadline) for every send to complete."""
        sends, self._sends = self._sends, []
        for work, dst, _ in sends:
            try:
                work.wait(timeout=timedelta(seconds=self.groups.timeout_s))
            except (RuntimeError, ValueError) as exc:
                raise self._fail(f"rank {dst} taking what rank {self.topo.rank} sent", exc) from None
