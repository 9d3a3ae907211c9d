"""Starting a tp x pp replica: under torchrun, or by spawning local workers on loopback.

- torchrun (`torchrun --nproc-per-node N -m fastserve serve --tp T --pp P ...`): every process
  runs the CLI; `start` joins the group from torchrun's environment (RANK, WORLD_SIZE,
  LOCAL_RANK, MASTER_ADDR/PORT). Rank 0 gets a `Session` and serves; every other rank serves
  the command stream (`worker.serve_commands`) until rank 0 shuts it down, then gets None.
- spawned (`fastserve serve --tp T --pp P ...` alone): this process is rank 0. It opens a
  TCPStore on 127.0.0.1 with a free port chosen by the OS (no race), and starts ranks 1..N-1 as
  `python -m executor.distributed.worker SPEC` in their own session (Ctrl-C stops rank 0
  only, which then shuts them down). Gloo (and NCCL's bootstrap) are bound to the loopback
  interface unless the environment already names one. Each worker exits when rank 0's process
  is gone (a watchdog thread polls its parent), so nothing outlives a crashed rank 0.
Starting (imports, joining the groups, building the model shard) may take `start_timeout_s`;
a barrier after every rank has built its shard keeps that out of the run's first collective.
During a run, a worker that dies is seen at once (its connections close); one that hangs fails
the next collective or receive after `timeout_s`. Either way rank 0's run stops with a one-line
`DistributedError`, to which `LocalWorkers.describe` adds the worker's exit status.
"""

from __future__ import annotations

import dataclasses
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from datetime import timedelta

import torch
import torch.distributed as dist

from executor.distributed.comm import DistributedError, Groups, Health, Link, init_groups
from executor.distributed.parts import family_parts
from executor.distributed.rank import RankModel, build_rank_model
from executor.distributed.topology import Topology, layer_range
from executor.distributed.tp import check_divisible, tp_plan
from executor.models import ModelLoadError, config_from_spec
from executor.serve import ModelConfig

DEFAULT_TIMEOUT_S = 60.0
DEFAULT_IDLE_TIMEOUT_S = 7 * 24 * 3600.0  # workers wait this long for rank 0's next command
DEFAULT_START_TIMEOUT_S = 300.0  # a worker's start: imports, joining, building its model shard


@dataclass(frozen=True)
class DistConfig:
    tp: int = 1
    pp: int = 1
    timeout_s: float = DEFAULT_TIMEOUT_S  # collectives, activations, tokens, during a run
    idle_timeout_s: float = DEFAULT_IDLE_TIMEOUT_S
    threads: int = 1  # torch threads per process on CPU
    start_timeout_s: float = DEFAULT_START_TIMEOUT_S

    def __post_init__(self) -> None:
        if self.tp < 1 or self.pp < 1:
            raise ValueError(f"tp and pp must be >= 1, got tp = {self.tp}, pp = {self.pp}")
        if not self.timeout_s > 0 or not self.idle_timeout_s >= self.timeout_s or not self.start_timeout_s > 0:
            raise ValueError(f"timeout_s and start_timeout_s must be > 0 and idle_timeout_s >= timeout_s, got "
                             f"{self.timeout_s}, {self.start_timeout_s}, {self.idle_timeout_s}")
        if self.threads < 1:
            raise ValueError(f"threads must be >= 1, got {self.threads}")

    @property
    def world_size(self) -> int:
        return self.tp * self.pp


@dataclass(frozen=True)
class WorkerSpec:
    rank: int
    port: int
    parent_pid: int
    model: ModelConfig
    dist: DistConfig

    def to_json(self) -> str:
        return json.dumps({"rank": self.rank, "port": self.port, "parent_pid": self.parent_pid,
                           "model": dataclasses.asdict(self.model), "dist": dataclasses.asdict(self.dist)})

    @classmethod
    def from_json(cls, data: dict) -> WorkerSpec:
        return cls(data["rank"], data["port"], data["parent_pid"], ModelConfig(**data["model"]),
                   DistConfig(**data["dist"]))


@dataclass
class Session:
    """Rank 0's handle on a started replica."""

    topo: Topology
    groups: Groups
    link: Link
    rank_model: RankModel
    workers: LocalWorkers | None

    def close(self) -> None:
        """Shut the workers down and leave the group. A broken group gets no shutdown command:
        its spawned workers are stopped after a second's grace (they would wait for rank 0)."""
        try:
            if self.link.health.failed is None:
                self.link.send_message({"kind": "shutdown"}, self.topo.downstream)
                self.link.drain()
        except DistributedError:
            pass
        finally:
            if self.workers is not None:
                self.workers.stop(self.groups.timeout_s if self.link.health.failed is None else 1.0)
            if dist.is_initialized():
                dist.destroy_process_group()


def torchrun_env() -> tuple[int, int, int] | None:
    """(rank, world size, local rank) when launched by torchrun, else None."""
    env = os.environ
    if "TORCHELASTIC_RUN_ID" not in env and not all(k in env for k in ("RANK", "WORLD_SIZE", "MASTER_ADDR")):
        return None
    return int(env["RANK"]), int(env["WORLD_SIZE"]), int(env.get("LOCAL_RANK", env["RANK"]))


def backend_for(device: str) -> str:
    return "nccl" if device.startswith("cuda") else "gloo"


def _loopback_interface() -> str | None:
    names = {name for _, name in socket.if_nameindex()}
    return next((n for n in ("lo", "lo0") if n in names), None)


def _set_threads(device: str, threads: int) -> None:
    if not device.startswith("cuda"):
        torch.set_num_threads(threads)


def transformers_config(model: ModelConfig):
    """The transformers config of `model`, without building it."""
    if model.checkpoint is None:
        from profiles.models import get_model

        return config_from_spec(get_model(model.name))
    import transformers

    try:
        return transformers.AutoConfig.from_pretrained(model.checkpoint, local_files_only=True)
    except (OSError, ValueError) as e:
        raise ModelLoadError(f"checkpoint {model.checkpoint}: {e}") from None


def check_parallelism(model: ModelConfig, cfg: DistConfig) -> None:
    """Refuse, in one line and before any process starts, a tp x pp the model cannot take."""
    config = transformers_config(model)
    family_parts(config)
    if cfg.tp > 1:
        tp_plan(config)
        check_divisible(config, cfg.tp)
    layer_range(config.num_hidden_layers, cfg.pp, 0)


def start(model: ModelConfig, cfg: DistConfig) -> Session | None:
    """Join or spawn the replica. Rank 0 gets its `Session`; a torchrun worker serves until
    shutdown and gets None. A shape the model cannot take raises `ValueError` first."""
    check_parallelism(model, cfg)
    launched = torchrun_env()
    if launched is None:
        return _spawn(model, cfg)
    rank, world_size, local_rank = launched
    if world_size != cfg.world_size:
        raise ValueError(f"torchrun started {world_size} processes but tp x pp = {cfg.tp} x {cfg.pp} = {cfg.world_size}")
    topo = Topology(cfg.tp, cfg.pp, rank)
    _set_threads(model.device, cfg.threads)
    groups = _join(topo, model, cfg, None, Health(), local_rank)
    rank_model = build_rank_model(model, groups, local_rank)
    _all_built(groups, cfg)
    link = Link(groups)
    if rank == 0:
        return Session(topo, groups, link, rank_model, None)
    from executor.distributed.worker import serve_commands

    try:
        serve_commands(link, rank_model)
    finally:
        dist.destroy_process_group()
    return None


def _join(topo: Topology, model: ModelConfig, cfg: DistConfig, store, health: Health, local_rank: int) -> Groups:
    device = torch.device(f"cuda:{local_rank}" if model.device.startswith("cuda") else "cpu")
    if device.type == "cuda":
        torch.cuda.set_device(device)
    return init_groups(topo, backend_for(model.device), cfg.timeout_s, cfg.idle_timeout_s, device, store, health)


def _all_built(groups: Groups, cfg: DistConfig) -> None:
    """Every rank has built its shard (so the run's first collective waits for no model build,
    which can take longer than `timeout_s`)."""
    try:
        dist.monitored_barrier(group=groups.control, timeout=timedelta(seconds=cfg.start_timeout_s),
                               wait_all_ranks=True)
    except (RuntimeError, ValueError) as exc:
        raise groups.health.error("waiting for every rank to build its model", exc) from None


def _spawn(model: ModelConfig, cfg: DistConfig) -> Session:
    loopback = _loopback_interface()
    if loopback is not None:
        os.environ.setdefault("GLOO_SOCKET_IFNAME", loopback)
        os.environ.setdefault("NCCL_SOCKET_IFNAME", loopback)
    _set_threads(model.device, cfg.threads)
    store = dist.TCPStore("127.0.0.1", 0, cfg.world_size, is_master=True,
                          timeout=timedelta(seconds=cfg.start_timeout_s), wait_for_workers=False)
    workers = LocalWorkers.spawn(model, cfg, store.port)
    health = Health(workers.describe)
    try:
        workers.wait_until_alive(store, cfg.start_timeout_s)
        topo = Topology(cfg.tp, cfg.pp, 0)
        groups = _join(topo, model, cfg, store, health, 0)
        rank_model = build_rank_model(model, groups, 0)
        _all_built(groups, cfg)
    except BaseException:
        workers.stop(0.0)
        if dist.is_initialized():
            dist.destroy_process_group()
        raise
    return Session(topo, groups, Link(groups), rank_model, workers)


def run_spawned_worker(spec: WorkerSpec) -> None:
    """The body of `python -m executor.distributed.worker` (ranks 1..N-1 of a spawned replica)."""
    from executor.distributed.worker import serve_commands

    _watch_parent(spec.parent_pid)
    cfg = spec.dist
    _set_threads(spec.model.device, cfg.threads)
    store = dist.TCPStore("127.0.0.1", spec.port, cfg.world_size, is_master=False,
                          timeout=timedelta(seconds=cfg.start_timeout_s))
    store.set(f"alive/{spec.rank}", str(os.getpid()))
    topo = Topology(cfg.tp, cfg.pp, spec.rank)
    groups = _join(topo, spec.model, cfg, store, Health(), spec.rank)
    rank_model = build_rank_model(spec.model, groups, spec.rank)
    _all_built(groups, cfg)
    try:
        serve_commands(Link(groups), rank_model)
    finally:
        dist.destroy_process_group()


def _watch_parent(parent_pid: int) -> None:
    def watch() -> None:
        while os.getppid() == parent_pid:
            time.sleep(1.0)
        os._exit(1)  # rank 0 is gone: nobody will send the shutdown

    threading.Thread(target=watch, name="fastserve-parent-watch", daemon=True).start()


class LocalWorkers:
    """The worker processes this process spawned: rank -> Popen."""

    def __init__(self, procs: dict[int, subprocess.Popen]) -> None:
        self.procs = procs

    @classmethod
    def spawn(cls, model: ModelConfig, cfg: DistConfig, port: int) -> LocalWorkers:
        procs = {}
        for rank in range(1, cfg.world_size):
            spec = WorkerSpec(rank, port, os.getpid(), model, cfg)
            procs[rank] = subprocess.Popen(
                [sys.executable, "-m", "executor.distributed.worker", spec.to_json()],
                stdin=subprocess.DEVNULL, start_new_session=True,
            )
        return cls(procs)

    @property
    def pids(self) -> dict[int, int]:
        return {rank: p.pid for rank, p in self.procs.items()}

    def wait_until_alive(self, store, timeout_s: float) -> None:
        """Until every worker has reached the store; a worker that exits first fails at once."""
        deadline = time.monotonic() + timeout_s
        keys = [f"alive/{rank}" for rank in self.procs]
        while not store.check(keys):
            dead = self.describe(grace_s=0.0)
            if dead:
                raise DistributedError(f"a worker failed to start: {dead}")
            if time.monotonic() > deadline:
                raise DistributedError(f"workers did not start within {timeout_s:g} s")
            time.sleep(0.05)

    def describe(self, grace_s: float = 1.0) -> str | None:
        """How the workers that exited did so; waits up to `grace_s` for one to be reaped (a
        peer's closed connection is often seen just before its exit status)."""
        deadline = time.monotonic() + grace_s
        while True:
            gone = [(rank, p) for rank, p in self.procs.items() if p.poll() is not None]
            if gone or time.monotonic() >= deadline:
                break
            time.sleep(0.02)
        parts = []
        for rank, p in gone:
            code = p.returncode
            if code < 0:
                name = signal.Signals(-code).name if -code in signal.valid_signals() else "?"
                parts.append(f"worker rank {rank} (pid {p.pid}) was killed by signal {-code} ({name})")
            else:
                parts.append(f"worker rank {rank} (pid {p.pid}) exited with status {code}")
        return "; ".join(parts) or None

    def stop(self, timeout_s: float) -> None:
        """Wait up to `timeout_s` for the workers to exit, then terminate, then kill them."""
        deadline = time.monotonic() + timeout_s
        for p in self.procs.values():
            try:
                p.wait(max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                p.terminate()
        for p in self.procs.values():
            try:
                p.wait(2.0)
            except subprocess.TimeoutExpired:  # e.g. a stopped (SIGSTOP) process ignores SIGTERM
                p.kill()
                p.wait()
