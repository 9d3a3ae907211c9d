"""The engine on rank 0 of a pipeline (pp > 1): up to pp micro-batches in flight at once.

FastServe keeps every pipeline stage busy by forming one batch per free pipeline slot, and a job
sits in at most one in-flight batch (section 4 of the paper; the simulator's `_run_pipelined`
does the same). The shared scheduler already supports it: `schedule()` leaves out the jobs of
batches whose `on_iteration_done` has not come yet, never evicts or swaps them, and this engine
reports each micro-batch with its own `on_iteration_done` when its tokens come back.

Loop: admit arrivals; if fewer than pp micro-batches are in flight, `schedule()` one more, run
its transfers (the base engine's steps 1-5, `_prepare`), and launch it (`PipelineRunner.launch`:
stage 0 runs it, later stages follow on their own); with pp in flight, or nothing left to
schedule, land the oldest (wait for its tokens). gloo cannot poll a receive for completion, so
a micro-batch lands when the engine needs its slot or its jobs, not the moment its tokens
arrive; either way each slot is refilled as soon as it frees. Landing (`_land`) runs the
base engine's `_iterate`, whose `runner.step` returns the micro-batch's tokens, so every
iteration row, span and token append is made by the same code as in a single process; its
`start_s` is the launch, `end_s` the landing, `forward_s` the wait for the tokens.

Plans are not reused (`skip` off): the horizon contract counts back-to-back iterations of
one batch, which micro-batches in flight are not. Each plan is exactly one micro-batch, so
iteration rows and `on_iteration_done` calls correspond one to one, and each micro-batch gets
its own running span per job (spans are not merged), so spans show which jobs were in flight.
"""

from __future__ import annotations

import dataclasses
from collections import deque
from dataclasses import dataclass

from executor.arrivals import Arrivals
from executor.distributed.driver import PipelineRunner
from executor.engine import Engine, EngineConfig
from executor.runner import Segment
from policy import Plan


@dataclass
class _Launched:
    plan: Plan
    start_s: float
    level_counts: list[int]
    num_queued: int
    swapped: tuple[int, int, int, int]
    served_from_s: float  # after planning and the copies it waited for: service (quanta) counts from here


class PipelineEngine(Engine):
    def __init__(self, runner: PipelineRunner, store, config: EngineConfig | None = None) -> None:
        super().__init__(runner, store, dataclasses.replace(config or EngineConfig(), skip=False))
        self.depth = runner.depth
        self._launched: deque[_Launched] = deque()

    def _loop(self, arrivals: Arrivals) -> None:
        sched, launched = self._scheduler, self._launched
        while arrivals.more() or not sched.idle:
            now = self._now()
            self._take_arrivals(now)  # a cancelled job in flight leaves when its micro-batch lands
            self._poll_transfers()
            if sched.idle:  # nothing in flight either: its jobs would still be the scheduler's
                arrivals.wait()
                continue
            if len(launched) >= self.depth:
                self._land(launched.popleft())
                continue
            plan = sched.schedule(now)
            self._num_plans += 1
            if not (plan.batch or plan.swap_out or plan.swap_in or plan.recompute):
                if launched:  # every schedulable job is in flight: wait for the oldest batch
                    self._land(launched.popleft())
                else:
                    self._wait_for_something(sched)
                continue
            self._launch(plan, now)
            if self.config.check_invariants:
                self.store.audit(sched.jobs.values())

    def _launch(self, plan: Plan, start_s: float) -> None:
        sched = self._scheduler
        level_counts = sched.level_counts() if self._iterations is not None else []
        num_queued = len(sched.jobs) - len(plan.batch)
        swapped = self._prepare(plan)
        if not plan.batch:  # transfers only
            return
        served_from_s = self._now()  # as the single-stage engine (executor/engine.py, _execute)
        store, bs = self.store, self.store.block_size
        segments = []
        for job in plan.batch:  # the blocks and segments `_iterate` will find again at landing
            tokens = self._tokens[job.id]
            blocks = max(job.device_blocks, -(-len(tokens) // bs))
            if store.num_device_blocks(job.id) != blocks:
                store.grow(job.id, blocks)
            if job.id in plan.prefill_ids:  # the whole context, or a chunk of it (chunked prefill)
                start, take = plan.chunk(job)
                segments.append(Segment(job.id, tokens[start:start + take], start))
            else:
                segments.append(Segment(job.id, tokens[-1:], len(tokens) - 1))
        self.runner.launch(segments)
        self._launched.append(_Launched(plan, start_s, level_counts, num_queued, swapped, served_from_s))

    def _land(self, launched: _Launched) -> None:
        # No merging with the previous landing's spans: one running span per job and
        # micro-batch, so the spans record exactly which micro-batches each job was in.
        self._last_batch = set()
        end_s = self._iterate(launched.plan, launched.start_s, launched.level_counts, launched.num_queued,
                              launched.swapped)
        self._advance(launched.plan, end_s, 1, end_s - launched.served_from_s)

    def _reset(self) -> None:
        self.runner.abandon()
        self._launched.clear()
        super()._reset()
