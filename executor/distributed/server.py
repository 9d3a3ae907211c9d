"""Rank 0's serving setup for a tp x pp replica: `LiveServer`'s interface over a `Session`.

For each policy: build rank 0's `KVStore` (its shard) wrapped in a `RecordingStore`, tell
every rank to build theirs with the same capacity (a `run` command, sent with the first step,
so that a dead worker stops the run inside the engine), run the unchanged `Engine`
(pp = 1) or the `PipelineEngine` (pp > 1) over rank 0's runner, then send the run's last ops
(`end`). The policy and the plan -> segments/swaps translation run here only.

A run that stops because a peer died or hung leaves the group broken (`failed` says why): the
run's result keeps every finished request and marks the rest "unfinished" with that reason, as
any stopped run does, and further runs are refused.
"""

from __future__ import annotations

from executor.arrivals import Arrivals
from executor.distributed.comm import DistributedError
from executor.distributed.driver import Driver, PipelineRunner, ReplicatedRunner
from executor.distributed.launch import Session
from executor.distributed.pipeline import PipelineEngine
from executor.distributed.rank import StageRunner, store_for
from executor.distributed.replay import RecordingStore
from executor.engine import Engine, EngineConfig, RunResult
from executor.runner import ModelRunner
from executor.serve import LiveServer
from policy import Job, Scheduler, make_scheduler


class DistributedServer(LiveServer):
    def __init__(self, session: Session, engine_config: EngineConfig | None = None) -> None:
        super().__init__(session.rank_model.model, engine_config)  # layout: the whole replica's KV
        self.session = session
        self.driver = Driver(session.link)

    @property
    def tp(self) -> int:
        return self.session.topo.tp

    @property
    def pp(self) -> int:
        return self.session.topo.pp

    @property
    def failed(self) -> str | None:
        return self.session.link.health.failed

    def run(self, jobs, policy: str, config, cost=None) -> tuple[RunResult, str]:
        scheduler = make_scheduler(policy, config, cost)
        return self.serve(jobs if isinstance(jobs, Arrivals) else list(jobs), scheduler, policy), scheduler.swap_mode

    def serve(self, jobs: list[Job] | Arrivals, scheduler: Scheduler, policy: str) -> RunResult:
        """One run with a ready scheduler (tests pass their own)."""
        if self.failed is not None:
            raise DistributedError(f"the distributed replica is broken: {self.failed}")
        rank_model, check = self.session.rank_model, self.engine_config.check_invariants
        capacity = scheduler.kv.capacity
        store = store_for(rank_model, capacity, scheduler.config.max_seq_tokens)
        recording = RecordingStore(store)
        self.driver.defer({"kind": "run", "max_seq_tokens": scheduler.config.max_seq_tokens,
                           "capacity": [capacity.device_blocks, capacity.host_blocks, capacity.block_size_tokens]})
        if self.pp == 1:
            runner = ReplicatedRunner(self.driver, ModelRunner(rank_model.model, store), recording, check)
            engine = Engine(runner, recording, self.engine_config)
        else:
            runner = PipelineRunner(self.driver, StageRunner(rank_model, store), recording, check)
            engine = PipelineEngine(runner, recording, self.engine_config)
        result = engine.run(jobs, scheduler, policy, scheduler.swap_mode)
        if self.failed is None:
            try:
                self.driver.send({"kind": "end", "ops": recording.take_ops()})
            except DistributedError as exc:
                result.error = result.error or str(exc)
        return result

    def close(self) -> None:
        self.session.close()
