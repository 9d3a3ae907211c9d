"""The scheduler base: event interface, batch formation, KV placement and swap modes.

A policy is a small subclass that decides *order* (which queue a job sits in, what its seq is,
how it moves between levels). This base owns everything else, so that every policy batches,
evicts and swaps by the same rules:

- Events, with time always passed in (a policy never reads a clock): `add`, `schedule`,
  `on_iteration_done` (or `advance` for k identical iterations at once), `on_swap_done`.
- Batch formation walks jobs in priority order and stops when the batch is full. A job that
  needs a prefill joins while the prefill-token budget allows (one prefill may exceed it
  alone); after the first prefill that does not fit, prefill admission closes for this
  decision (head-of-line, as in vLLM and Orca), and only started jobs can still join.
- The batch walk is in `policy.batch_walk`, its chunked variant in `policy.chunked`, KV
  placement, swap modes and swap orders in `policy.placement`, event skipping in
  `policy.horizon` (each mixed in); the location indexes are `policy.locations.JobLocations`,
  and what a walk finds out on its way is `policy.walk_state.WalkState`.
- Non-preemptive policies (Orca) reserve `max_seq_tokens` per job at admission and never evict.

Times are integer microseconds inside; see `policy.job`.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from typing import ClassVar

from policy.batch_walk import BatchWalk
from policy.chunked import ChunkedBatching
from policy.config import SchedulerConfig
from policy.cost import CostEstimate
from policy.dispatch import ReplicaLoad
from policy.hooks import keeps_hooks
from policy.horizon import PlanHorizon
from policy.job import Job, KVLocation, to_us
from policy.kv import KVCapacity, KVSpace
from policy.locations import JobLocations
from policy.placement import KVPlacement
from policy.plan import Plan
from policy.queue import JobQueue
from policy.walk_state import WalkState

_NO_LIMIT_ITERATIONS = 1 << 30
RANK_SEQ_BITS = 64  # a rank is level << RANK_SEQ_BITS | seq
_SWAPPING_IN, _SWAPPING_OUT = KVLocation.SWAPPING_IN, KVLocation.SWAPPING_OUT

class Scheduler(KVPlacement, PlanHorizon, BatchWalk, ChunkedBatching):
    name: ClassVar[str] = ""
    default_chunked_prefill_tokens: ClassVar[int | None] = None  # a policy that always chunks
    default_swap: ClassVar[str] = "proactive"
    preemptive: ClassVar[bool] = True
    reserve_max_seq: ClassVar[bool] = False  # Orca: reserve the whole context at admission
    admission_evicts: ClassVar[bool] = True  # a job that is not running may evict lower-priority ones
    self_preempts: ClassVar[bool] = False  # a running job that cannot grow drops its own KV (vLLM)
    admission_watermark_fraction: ClassVar[float] = 0.0  # device blocks a new prefill leaves free
    # Whether a plan with whole prefills may repeat as its batch decoding (`PlanHorizon.horizon`):
    # only a policy whose walk order a prefill leaves as it was may say so.
    repeats_prefill_plans: bool = False
    # Whether a new job ranks behind every unfinished one (FCFS), so that a run may go past
    # arrivals a full batch or a refused prefill keeps out (`Horizon.arrivals_wait`).
    arrivals_rank_last: bool = False

    def __init__(self, config: SchedulerConfig | None = None, cost: CostEstimate | None = None) -> None:
        self.config = config = config or SchedulerConfig()
        self.cost = cost
        self.swap_mode = config.swap or self.default_swap
        self.kv = KVSpace(KVCapacity.from_tokens(config.device_kv_tokens, config.host_kv_tokens, config.block_size_tokens))
        if self.reserve_max_seq and self.kv.blocks_for(config.max_seq_tokens) > self.kv.capacity.device_blocks:
            raise ValueError(
                f"{self.name}: device KV capacity ({self.kv.capacity.device_tokens} tokens) cannot hold "
                f"one request of max_seq_tokens = {config.max_seq_tokens}"
            )
        proactive = self.swap_mode == "proactive"
        self.reserve_blocks = math.ceil(config.swap_reserve_fraction * self.kv.capacity.device_blocks) if proactive else 0
        # truncated, as vLLM does (a watermark of 1 block on a 1-block device would admit nothing)
        self.watermark_blocks = int(self.admission_watermark_fraction * self.kv.capacity.device_blocks)
        self.jobs: dict[int, Job] = {}  # unfinished
        self.num_iterations = 0
        self.outstanding_prompt_tokens = 0
        self._in_flight: set[int] = set()
        # `advance` charges service itself when neither hook is overridden (one pass, not two)
        self._charges_service_inline = keeps_hooks(type(self), Scheduler, ("_on_served_batch", "on_served"))
        # `_upload_lead_us` knows how this upload order changes while a plan repeats (MLFQ sets
        # its own); a subclass with an order of its own repeats no plan that an upload could join
        self._upload_lead_known = keeps_hooks(type(self), Scheduler, ("_upload_order",))
        self._running: dict[int, Job] = {}  # ran last time they were scheduled
        self.locations = JobLocations()  # jobs by the side their KV is read from (policy.locations)
        self._queue_of: dict[int, JobQueue] = {}
        # Set whenever a job changes queue (or leaves), for state a policy derives from its
        # queues' sizes and caches between changes (MLFQ's quanta ahead of each level).
        self._queues_changed = True
        # Proactive mode keeps compute off blocks that swap-outs still occupy (policy.placement).
        self._defer_compute = proactive
        self.walk_state = WalkState()  # what the last batch walk found out (policy.walk_state)
        self.prefill_closed = False
        self._next_seq = 0
        # Chunked prefill (policy/chunked.py) forms batches its own way; everything else is shared.
        self.chunk_budget_tokens = config.chunked_prefill_tokens or self.default_chunked_prefill_tokens
        if self.chunk_budget_tokens is not None:
            self._form_batch = self._form_chunked_batch

    # -- what a policy subclass provides -----------------------------------------------------
    # The public, documented override points (docs/policies.md): join, queue_for, walk,
    # on_served, before_schedule, on_stopped, on_selected, on_finished, deadline_us,
    # max_iterations; helpers a policy calls: new_seq, place, prefill_closed. The rest
    # (_on_served_batch, _on_relocated, and policy.placement's swap orders and eviction right)
    # are internal: they may change.
    def join(self, job: Job, now_us: int) -> None:
        """Set level and seq of a newly arrived job."""
        job.seq = self.new_seq()

    def queue_for(self, job: Job) -> JobQueue:
        raise NotImplementedError

    def walk(self) -> Iterator[Job]:
        """Unfinished jobs in priority order; may stop early once `prefill_closed`."""
        raise NotImplementedError

    def before_schedule(self, now_us: int) -> None:
        """Time-driven state changes (starvation promotion)."""

    def on_served(self, job: Job, elapsed_us: int) -> None:
        """After an unfinished job ran, its attained service updated (demotion, re-keying)."""

    def _on_served_batch(self, jobs: list[Job], elapsed_us: int, iteration_ends_us: Sequence[int] | None) -> None:
        """After the batch ran one or more iterations (batch order; finished jobs included, and
        they take nothing from their last iteration: a step-by-step run retires them first)."""
        on_served = None if type(self).on_served is Scheduler.on_served else self.on_served
        for job in jobs:
            if job.generated_tokens < job.output_tokens:  # not `job.finished`: a call per job
                job.attained_us += elapsed_us
                if on_served is not None:
                    on_served(job, elapsed_us)

    def on_stopped(self, job: Job, now_us: int) -> None:
        """A running job was left out of a batch (it is waiting from now on)."""

    def on_selected(self, job: Job) -> None:
        """A waiting job joined a batch."""

    def on_finished(self, job: Job) -> None:
        pass

    def deadline_us(self, plan: Plan, now_us: int) -> float:
        return math.inf

    def max_iterations(self) -> int:
        return _NO_LIMIT_ITERATIONS

    def _on_relocated(self, job: Job, old: KVLocation) -> None:
        """`job.kv` changed sides, from `old` (after the location indexes were updated)."""

    # -- shared helpers ------------------------------------------------------------------------
    def new_seq(self) -> int:
        self._next_seq += 1
        return self._next_seq

    @staticmethod
    def _rank(job: Job) -> int:
        """Priority: smaller runs first. (level, seq) packed in one int, which sorts and
        bisects faster than a tuple."""
        return (job.level << RANK_SEQ_BITS) | job.seq

    def place(self, job: Job, new_seq: int | None = None) -> None:
        """(Re)file the job in the queue its state calls for; re-keys it if `new_seq` is given.
        (Called per demotion and per prefill: `_rank` inlined.)"""
        self._queues_changed = True
        old = self._queue_of.pop(job.id, None)
        if old is not None:
            old.remove(job)
        if new_seq is not None:
            job.seq = new_seq
        q = self.queue_for(job)
        q.add(job)
        self._queue_of[job.id] = q
        # its level or seq may have changed: re-key it where it is indexed
        self.locations.rekey(job, (job.level << RANK_SEQ_BITS) | job.seq)

    def place_many(self, jobs: list[Job]) -> None:
        """`place(job, new_seq=self.new_seq())` for each of `jobs` in turn, each queue and
        location index changed once (one pass each when the jobs are many of its entries)."""
        self._queues_changed = True
        leaving: dict[int, tuple[JobQueue, list[Job]]] = {}
        for job in jobs:
            queue = self._queue_of.pop(job.id)
            leaving.setdefault(id(queue), (queue, []))[1].append(job)
        for queue, gone in leaving.values():
            queue.remove_many(gone)
        on_device, on_host = [], []
        for job in jobs:
            job.seq = self.new_seq()
            queue = self.queue_for(job)
            queue.add(job)
            self._queue_of[job.id] = queue
            if job in self.locations.device:
                on_device.append(job)
            elif job in self.locations.host:
                on_host.append(job)
        self.locations.device.rekey_many(on_device, self._rank)
        self.locations.host.rekey_many(on_host, self._rank)

    def _track(self, job: Job, old: KVLocation) -> None:
        """Keep the location indexes in step: the job's KV went from `old` to `job.kv`."""
        if self.locations.move(job, old, self._rank):
            self._on_relocated(job, old)

    def _target_tokens(self, tokens: int) -> int:
        return max(tokens, self.config.max_seq_tokens) if self.reserve_max_seq else tokens

    # -- events ------------------------------------------------------------------------------
    def reject_reason(self, job: Job) -> str | None:
        """Why this request can never be served here, or None. Engines ask before `add`."""
        total = job.prompt_tokens + job.output_tokens
        if total > self.config.max_seq_tokens:
            return f"prompt_tokens + output_tokens = {total} exceeds max_seq_tokens = {self.config.max_seq_tokens}"
        if self.kv.blocks_for(self._target_tokens(total)) > self.kv.capacity.device_blocks:
            return f"needs {total} tokens of KV, more than the device holds ({self.kv.capacity.device_tokens})"
        return None

    def add(self, job: Job, now_s: float) -> None:
        if job.id in self.jobs:
            raise ValueError(f"job {job.id} was added twice")
        reason = self.reject_reason(job)
        if reason is not None:
            raise ValueError(f"job {job.id}: {reason}")
        now_us = to_us(now_s)
        job.waiting_since_us = now_us
        self.jobs[job.id] = job
        self.outstanding_prompt_tokens += job.prompt_tokens
        self.join(job, now_us)
        self.place(job)
        self.on_stopped(job, now_us)

    @property
    def idle(self) -> bool:
        return not self.jobs

    def load(self) -> ReplicaLoad:
        return ReplicaLoad(len(self.jobs), self.outstanding_prompt_tokens)

    def level_counts(self) -> list[int]:
        """Unfinished jobs per priority level (one level for non-MLFQ policies)."""
        return [len(self.jobs)]

    def schedule(self, now_s: float) -> Plan:
        now_us = to_us(now_s)
        self.before_schedule(now_us)
        plan = Plan()
        state = self.walk_state
        state.may_drop_any = False
        batch_ids, prefill_ids = self._form_batch(plan)
        if not (plan.batch or plan.swap_out or plan.swap_in or plan.recompute
                or self.locations.swapping_out or self.locations.swapping_in) and self.jobs:
            # Nothing would run and no transfer would free room: a stall. The first walk
            # changed nothing, so walk again letting any job drop victims' KV, for progress.
            state.may_drop_any = True
            batch_ids, prefill_ids = self._form_batch(plan)
        for job in plan.recompute:
            self.place(job)  # started -> fresh queue, after the walk is done with the queues
        # Last batch's left-out jobs are waiting from now on, before proactive swapping ranks
        # them: their ENST includes T_promote like any other waiting job's.
        running = self._running
        if not running.keys() <= batch_ids:  # a set comparison in C: most decisions stop no one
            for job in list(running.values()):
                if job.id not in batch_ids and job.id not in self._in_flight:
                    del running[job.id]
                    job.num_preemptions += 1
                    self.on_stopped(job, now_us)
        if self.swap_mode == "proactive":
            # jobs waiting for their room keep it: offloading them would undo the room just made
            held = state.held_ids
            self._proactive_swaps(plan, batch_ids | held if held else batch_ids, now_us)
        self.kv.release_promises()
        if not batch_ids <= running.keys():
            for job in plan.batch:
                if job.id not in running:
                    self.on_selected(job)
        # This plan's swap-ins start after the swap-outs in flight land; earlier ones may not.
        if self.kv.overcommitted(sum(j.device_blocks for j in plan.swap_in) if plan.swap_in else 0):
            plan.wait_for.extend(self.locations.swapping_out.values())
        if self.locations.swapping_in:  # a batch job may still be on its way in (reactive mode)
            plan.wait_for.extend(j for j in plan.batch if j.kv is KVLocation.SWAPPING_IN)
        plan.prefill_ids = frozenset(prefill_ids)
        self._in_flight.update(batch_ids)
        return plan

    def on_iteration_done(self, plan: Plan, now_s: float, elapsed_s: float) -> list[Job]:
        """The plan's batch ran one iteration, ending at `now_s`. Returns the jobs that finished."""
        return self.advance(plan, now_s, 1, elapsed_s)

    def advance(self, plan: Plan, now_s: float, num_iterations: int, elapsed_s: float,
                iteration_ends_us: Sequence[int] | None = None) -> list[Job]:
        """`num_iterations` back-to-back runs of `plan`, together `elapsed_s` long, ending at
        `now_s`: the same state as that many (`schedule`, `on_iteration_done`) pairs when the
        engine respects `horizon(plan)` (a plan with prefills runs them in its first iteration
        and decodes in the rest). For more than one iteration the engine also gives
        `iteration_ends_us`, each iteration's end in microseconds since the first began (the
        last equals elapsed), so that quanta used up part-way are charged exactly, and first
        tokens are stamped at the first iteration's end. Returns the jobs that finished."""
        n = num_iterations
        if n > 1 and not (plan.is_pure_decode or (self.repeats_prefill_plans and plan.may_repeat)):
            raise ValueError("advance: this plan cannot be repeated (horizon() allows one iteration)")
        if n > 1 and (iteration_ends_us is None or len(iteration_ends_us) != n):
            raise ValueError(f"advance: {n} iterations need {n} iteration_ends_us")
        elapsed_us = to_us(elapsed_s)
        first_token_s = now_s  # of a prefill job: at the end of the first iteration
        if n > 1 and plan.prefill_ids:
            first_token_s = (to_us(now_s) - iteration_ends_us[-1] + iteration_ends_us[0]) / 1_000_000
        finished: list[Job] = []
        in_flight, running, prefill_ids, kv = self._in_flight, self._running, plan.prefill_ids, self.kv
        chunks = plan.prefill_chunks
        block_tokens, device_blocks = kv.capacity.block_size_tokens, kv.capacity.device_blocks
        reserve_tokens = self.config.max_seq_tokens if self.reserve_max_seq else 0
        batch = plan.batch
        if len(in_flight) == len(batch):  # only this plan is in flight (every engine but pp > 1)
            in_flight.clear()
        else:
            in_flight.difference_update([job.id for job in batch])
        # Policies that keep the default service hooks have their service charged here, in the
        # same pass; the others get `_on_served_batch` after it (see there).
        charge_us = elapsed_us if self._charges_service_inline else None
        for job in batch:  # the hot loop of every decision: Job properties inlined
            job_id = job.id
            if chunks and not plan.produces_token(job):  # a prefill chunk with more to come
                job.kv_tokens += chunks[job_id][1]
                running[job_id] = job
                self.place(job)  # keeps its seq: the split job keeps its place
                if charge_us is not None:
                    job.attained_us += charge_us
                continue
            if n > 1:  # the allocations the skipped schedule() calls would have made (`KVSpace.grow`)
                target = job.prompt_tokens + job.generated_tokens + n - 1
                if target < reserve_tokens:
                    target = reserve_tokens
                extra = -(-target // block_tokens) - job.device_blocks
                if extra > 0:
                    if extra > device_blocks - kv.device_used_blocks:
                        kv.grow(job, target)  # raises: the engine ran past the horizon
                    kv.device_used_blocks += extra
                    job.device_blocks += extra
            generated = job.generated_tokens = job.generated_tokens + n
            job.kv_tokens = job.prompt_tokens + generated - 1
            running[job_id] = job
            if job_id in prefill_ids:
                if generated == n:  # its first token (a recompute has one already)
                    job.first_token_s = first_token_s
                if generated >= job.output_tokens:
                    finished.append(job)
                    continue
                self.place(job)  # fresh -> started queue
            elif generated >= job.output_tokens:
                finished.append(job)
                continue
            if charge_us is not None:  # after `place`, as `_on_served_batch` would
                job.attained_us += charge_us
        # Service is charged before finishing, so that a job finishing on the last of several
        # iterations still goes through the demotions of the earlier ones.
        if charge_us is None:
            self._on_served_batch(batch, elapsed_us, iteration_ends_us if n > 1 else None)
        for job in finished:
            self._finish(job, now_s)
        self.num_iterations += n
        return finished

    def on_swap_done(self, job: Job, now_s: float) -> None:
        old = job.kv
        self.kv.finish_swap(job)
        job.num_swaps += 1
        self._track(job, old)

    def can_abort(self, job: Job) -> bool:
        """An unfinished job may leave now: it is in no batch still running and no copy of its
        KV is in flight (engines wait for those first)."""
        return (job.id in self.jobs and job.id not in self._in_flight
                and job.kv is not _SWAPPING_IN and job.kv is not _SWAPPING_OUT)

    def abort(self, job: Job) -> None:
        """Remove an unfinished job (its client went away) and free its KV, device or host.
        It gets no finish time; the engine records it as unfinished."""
        if not self.can_abort(job):
            raise ValueError(f"job {job.id}: cannot abort now (unknown, in a running batch or in transfer)")
        old = job.kv
        self.kv.release(job)
        self._remove(job, old)

    def _finish(self, job: Job, now_s: float) -> None:
        job.finish_s = now_s
        old = job.kv
        self.kv.drop(job)
        self._remove(job, old)

    def _remove(self, job: Job, old: KVLocation) -> None:
        self._queues_changed = True
        self._track(job, old)
        self._queue_of.pop(job.id).remove(job)
        del self.jobs[job.id]
        self._running.pop(job.id, None)
        self.outstanding_prompt_tokens -= job.prompt_tokens
        self.on_finished(job)
