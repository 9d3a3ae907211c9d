"""The live engine: replays a trace in wall-clock time through one policy and a real model.

One iteration, in the order `policy.plan` prescribes:
  1. `plan = scheduler.schedule(now)`; free the device KV of `plan.recompute` jobs;
  2. start every `plan.swap_out` copy;
  3. wait for the swap-outs the plan waits for (their room is reused);
  4. start every `plan.swap_in` copy, after every swap-out in flight has landed;
  5. wait for batch jobs still swapping in;
  6. give batch jobs the device blocks the policy counted, run the forward pass (prefill for
     `plan.is_prefill(job)`, prompt plus tokens generated so far, or the chunk `plan.chunk(job)`
     of it over the KV of the earlier chunks; decode otherwise);
  7. append the sampled tokens; 8. `on_iteration_done`, and free the KV of finished jobs.
Plan reuse (`EngineConfig.skip`, on by default): a pure-decode plan runs again, without a new
`schedule`, while `scheduler.horizon(plan)` says the policy would decide the same (its iteration
and time bounds), no job reaches its last token early, no request arrives and no copy lands;
then one `advance(plan, now, n, elapsed)` reports the n iterations. The policy contract makes
that identical to n (`schedule`, `on_iteration_done`) pairs; it only saves the scheduling cost
(the simulator skips the same way). Each iteration still gets its own row and forward pass, and
the store grows the jobs' blocks as they fill, ahead of the policy's count until `advance`.
Transfers report `on_swap_done` when they land: at once on CPU (synchronous copies), when their
CUDA event fires otherwise (polled every iteration, or waited for in steps 3 and 5).

Requests come from an `executor.arrivals.Arrivals` source: a trace (`run(jobs, ...)`), or an
online source that other threads feed (`executor.online`, the HTTP front end), which also
listens for the tokens and may cancel a request between plans (`Scheduler.abort` frees its KV;
a job in a copy waits for the copy to land). The engine reports each token after its
iteration's end time is taken, and each request's end exactly once.

Time: engine time is wall seconds since the run started; a trace request arrives at
`arrival_s * time_scale` (so 0.1 replays a trace ten times faster). Requests are recorded in
engine time. Prompt token ids come with an online request, or are synthesized per request
from a seeded generator (`traces.prompts.prompt_token_ids`), since traces carry lengths only.

Garbage collection: a run freezes the objects that exist when it starts (`gc.freeze()`: the
model, torch, transformers and the imports, ~400k objects) and unfreezes them when it ends.
CPython's occasional full collection otherwise walks all of them from inside an iteration,
~0.2 s on a 2-core CPU, which stalls every running request (a simulator cannot predict it, and
no serving engine should pay it mid-batch); objects made during the run are still collected
as usual, and the young-generation collections (~0.1 ms, rare) remain.

Stopping: Ctrl-C, the source's `RunStopped`, or an error (a failing request, a KV mismatch, a
stalled policy) ends the run cleanly: finished requests keep their rows, every other request
is recorded "unfinished" with the reason, and the KV store is emptied for the next policy. `RunResult.error` says what happened.
Distributed (executor/distributed): the policy and the plan -> segments/swaps translation stay
on rank 0; every call on `self.store`, `self.swapper` and `self.runner` is a per-rank operation
that the other ranks replay (each rank's store holds its shard); pp > 1 uses `PipelineEngine`.
"""

from __future__ import annotations

import gc
import time
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from tqdm import tqdm

from executor.arrivals import Arrivals, Request, RunStopped, TraceArrivals
from executor.kv_store import KVStore
from executor.records import SpanLog, frame, live_iteration_log
from executor.runner import ModelRunner, Segment
from executor.transfer import Swapper, Transfer
from policy import Job, KVLocation, Plan, RequestLog, Scheduler, to_us
from traces.prompts import prompt_token_ids


class EngineError(RuntimeError):
    """The run cannot go on (stalled policy, inconsistent state)."""


@dataclass(frozen=True, slots=True)
class EngineConfig:
    time_scale: float = 1.0  # wall seconds per trace second
    seed: int = 0  # prompt token ids
    replica: int = 0
    record_iterations: bool = True
    record_spans: bool = False
    check_invariants: bool = False  # audit the KV store against the policy after every plan
    skip: bool = True  # reuse a pure-decode plan as long as `policy.horizon` allows (same decisions)
    progress: bool = False  # a tqdm bar of requests done, on stderr

    def __post_init__(self) -> None:
        if not (np.isfinite(self.time_scale) and self.time_scale >= 0):
            raise ValueError(f"time_scale must be finite and >= 0, got {self.time_scale}")


@dataclass
class RunResult:
    log: RequestLog
    iterations: pd.DataFrame | None
    spans: pd.DataFrame | None
    outputs: dict[int, list[int]] = field(default_factory=dict)  # request id -> generated tokens
    error: str | None = None  # why the run stopped early, None if it completed
    interrupted: bool = False  # stopped by Ctrl-C
    num_plans: int = 0  # schedule() calls; fewer than iterations when plans were reused


class Engine:
    def __init__(self, runner: ModelRunner, store: KVStore, config: EngineConfig | None = None) -> None:
        self.runner = runner
        self.store = store
        self.swapper = Swapper(store)
        self.config = config or EngineConfig()
        self.vocab_size = runner.model.config.vocab_size

    def run(self, jobs: list[Job] | Arrivals, scheduler: Scheduler, policy: str, swap: str) -> RunResult:
        """Serve `jobs` (trace times; copied, so the caller's stay fresh), or the requests of an
        `Arrivals` source, with `scheduler` to the end."""
        cfg = self.config
        self.store.check_capacity(scheduler.kv.capacity)
        if scheduler.config.max_seq_tokens > self.store.max_blocks_per_seq * self.store.block_size:
            raise EngineError(
                f"policy max_seq_tokens = {scheduler.config.max_seq_tokens} exceeds what the KV store's "
                f"block tables hold ({self.store.max_blocks_per_seq * self.store.block_size})"
            )
        if not self.store.is_empty:
            raise EngineError("the KV store is not empty at the start of a run")
        self._scheduler, self._log = scheduler, RequestLog()
        self._iterations = live_iteration_log(len(scheduler.level_counts())) if cfg.record_iterations else None
        self._spans = SpanLog() if cfg.record_spans else None
        self._tokens: dict[int, list[int]] = {}  # prompt ids, then generated ids
        self._prompt_tokens: dict[int, int] = {}
        self._transfers: dict[int, Transfer] = {}
        self._last_batch: set[int] = set()
        self._num_plans = 0
        self._admit_s = 0.0  # time spent admitting requests since the last recorded iteration
        self._cancelling: set[int] = set()  # cancelled while in a running batch or a copy
        arrivals = jobs if isinstance(jobs, Arrivals) else TraceArrivals(jobs, cfg.time_scale)
        self._arrivals = arrivals
        total = arrivals.num_requests if isinstance(arrivals, TraceArrivals) else None
        self._bar = tqdm(total=total, desc=f"serve {policy}", unit="req", disable=not cfg.progress)
        gc.freeze()  # no full collection over the model and imports mid-run (module docstring)
        self._t0 = arrivals.start()
        error, interrupted = None, False
        try:
            self._loop(arrivals)
        except KeyboardInterrupt:
            error, interrupted = "interrupted (Ctrl-C)", True
        except RunStopped as exc:
            error, interrupted = str(exc), True
        except Exception as exc:  # noqa: BLE001 - any failure stops the run cleanly, with its reason
            error = f"{type(exc).__name__}: {exc}"
        finally:
            gc.unfreeze()
            self._bar.close()
        if error is not None:
            self._record_unfinished(arrivals, error)
        self._reset()
        outputs = {jid: toks[self._prompt_tokens[jid]:] for jid, toks in self._tokens.items()}
        return RunResult(
            self._log,
            frame(self._iterations, policy, swap) if self._iterations is not None else None,
            frame(self._spans, policy, swap) if self._spans is not None else None,
            outputs, error, interrupted, self._num_plans,
        )

    # -- the loop ------------------------------------------------------------------------------
    def _now(self) -> float:
        return time.perf_counter() - self._t0

    def _loop(self, arrivals: Arrivals) -> None:
        sched = self._scheduler
        while arrivals.more() or not sched.idle:
            now = self._now()
            self._take_arrivals(now)
            self._poll_transfers()
            if sched.idle:
                arrivals.wait()
                continue
            plan = sched.schedule(now)
            self._num_plans += 1
            if not (plan.batch or plan.swap_out or plan.swap_in or plan.recompute):
                self._wait_for_something(sched)
                continue
            self._execute(plan, now)
            if self.config.check_invariants:
                self.store.audit(sched.jobs.values())

    def _take_arrivals(self, now: float) -> None:
        """Admit what arrived by `now`, then let go of the requests whose clients left."""
        for request in self._arrivals.take(now):
            self._admit(request, now)
        self._cancelling.update(self._arrivals.cancelled())
        for job_id in list(self._cancelling):
            self._cancel(job_id)

    def _admit(self, request: Request, now: float) -> None:
        began_s = time.perf_counter()
        job = request.job
        reason = self._scheduler.reject_reason(job)
        if reason is not None:
            self._log.record(job, job.id, self.config.replica, "rejected", reason)
            self._arrivals.on_done(job, "rejected", reason)
            self._bar.update(1)
        else:
            prompt = request.prompt_ids
            self._tokens[job.id] = list(prompt) if prompt is not None else prompt_token_ids(
                job.id, job.prompt_tokens, self.vocab_size, self.config.seed)
            self._prompt_tokens[job.id] = job.prompt_tokens
            self._scheduler.add(job, now)
        self._admit_s += time.perf_counter() - began_s

    def _cancel(self, job_id: int) -> None:
        """Abort a request whose client left, freeing its KV; one in a copy waits for the copy
        to land, one in a running micro-batch (pipeline) until it lands."""
        sched = self._scheduler
        job = sched.jobs.get(job_id)
        if job is None:  # finished, rejected or never admitted here
            self._cancelling.discard(job_id)
            return
        if job.id in self._transfers:
            self._complete(self._transfers[job.id], wait=True)
        if not sched.can_abort(job):
            return
        had_kv = job.kv is not KVLocation.NONE
        sched.abort(job)
        if had_kv:
            self.store.drop(job.id)
        self._cancelling.discard(job_id)
        reason = "client disconnected"
        self._log.record(job, job.id, self.config.replica, "unfinished", reason)
        self._arrivals.on_done(job, "unfinished", reason)
        self._bar.update(1)

    def _wait_for_something(self, sched: Scheduler) -> None:
        if self._transfers:
            self._complete(next(iter(self._transfers.values())), wait=True)
        elif self._arrivals.more():
            self._arrivals.wait()
        else:
            raise EngineError(
                f"policy {sched.name} scheduled nothing while {len(sched.jobs)} requests wait and no "
                "transfer is in flight"
            )

    # -- one plan ------------------------------------------------------------------------------
    def _execute(self, plan: Plan, start_s: float) -> None:
        sched = self._scheduler
        horizon = sched.horizon(plan, start_s) if self.config.skip and plan.is_pure_decode else None
        level_counts = sched.level_counts() if self._iterations is not None else []
        num_queued = len(sched.jobs) - len(plan.batch)
        swapped = self._prepare(plan)
        if not plan.batch:  # transfers only
            return
        # The batch's service (what MLFQ quanta count) starts once planning and the copies it
        # waits for are done, as in the simulator: the iterations, not the engine's work before.
        served_from_s = self._now()
        end_s = self._iterate(plan, start_s, level_counts, num_queued, swapped)
        num_iterations = 1
        ends_us = [to_us(end_s - served_from_s)]  # each iteration's end since the first began
        if horizon is not None:
            # Reuse the plan while the policy would decide the same (policy.Plan.Horizon): within
            # its iteration and time bounds, before any job's last token, arrival or landed copy.
            limit = min(horizon.max_iterations, min(j.remaining_tokens for j in plan.batch))
            while (num_iterations < limit and end_s - served_from_s < horizon.deadline_s
                   and not self._arrivals.due_by(end_s) and not self._landed()):
                end_s = self._iterate(plan, end_s, level_counts, num_queued, (0, 0, 0, 0))
                num_iterations += 1
                ends_us.append(to_us(end_s - served_from_s))
        self._advance(plan, end_s, num_iterations, end_s - served_from_s, ends_us)

    # Steps 1-5 and 8 are methods of their own so that the pipelined engine
    # (executor.distributed.pipeline) shares them; it launches a micro-batch between the two.
    def _prepare(self, plan: Plan) -> tuple[int, int, int, int]:
        """Steps 1-5: drop recomputed KV, start and wait for transfers; returns the swapped
        (out, in) tokens and the number of (out, in) transfers. On return every batch job's KV
        is on the device."""
        store = self.store
        for job in plan.recompute:
            store.drop(job.id)
        swapped = (sum(j.kv_tokens for j in plan.swap_out), sum(j.kv_tokens for j in plan.swap_in),
                   len(plan.swap_out), len(plan.swap_in))
        for job in plan.swap_out:
            self._start(self.swapper.swap_out(job.id, job.host_blocks))
        for job in plan.wait_for:
            if job.kv is KVLocation.SWAPPING_OUT:
                self._complete(self._transfers[job.id], wait=True)
        if plan.swap_in:
            # A swap-in may write into room a swap-out is still vacating (the policy plans with
            # it): let every swap-out in flight land first, as the simulator does. CPU: no-op.
            for transfer in [t for t in self._transfers.values() if t.direction == "out"]:
                self._complete(transfer, wait=True)
        for job in plan.swap_in:
            self._start(self.swapper.swap_in(job.id, job.device_blocks))
        for job in plan.batch:
            if job.kv is KVLocation.SWAPPING_IN:
                self._complete(self._transfers[job.id], wait=True)
        return swapped

    def _advance(self, plan: Plan, end_s: float, num_iterations: int, elapsed_s: float,
                 ends_us: list[int] | None = None) -> None:
        """Step 8: report the iterations to the policy; free and record the finished jobs."""
        ends_us = ends_us if num_iterations > 1 else None
        for job in self._scheduler.advance(plan, end_s, num_iterations, elapsed_s, ends_us):
            self.store.drop(job.id)
            self._log.record(job, job.id, self.config.replica)
            self._arrivals.on_done(job, "finished")
            self._bar.update(1)

    def _iterate(self, plan: Plan, start_s: float, level_counts: list[int], num_queued: int,
                 swapped: tuple[int, int, int, int]) -> float:
        """One forward pass of the plan's batch; returns when it ended (engine time)."""
        store, bs = self.store, self.store.block_size
        segments = []
        prefill_tokens = decode_context_tokens = decode_max_context_tokens = prefill_context_tokens = 0
        for job in plan.batch:
            tokens = self._tokens[job.id]
            # the policy's count, or (in a reused plan) the blocks this step writes into
            blocks = max(job.device_blocks, -(-len(tokens) // bs))
            if store.num_device_blocks(job.id) != blocks:  # grows once per block
                store.grow(job.id, blocks)
            if job.id in plan.prefill_ids:  # the whole context, or a chunk of it (chunked prefill)
                start, take = plan.chunk(job)
                segments.append(Segment(job.id, tokens[start:start + take], start))
                prefill_tokens += take
                prefill_context_tokens += start
            else:
                segments.append(Segment(job.id, tokens[-1:], len(tokens) - 1))
                decode_context_tokens += len(tokens)
                decode_max_context_tokens = max(decode_max_context_tokens, len(tokens))  # decode pads to it
        forward_start = time.perf_counter()
        next_tokens = self.runner.step(segments)
        forward_s = time.perf_counter() - forward_start
        for job, token in zip(plan.batch, next_tokens, strict=True):
            if plan.produces_token(job):  # a chunk with more to come samples nothing
                self._tokens[job.id].append(token)
        end_s = self._now()
        for job, token in zip(plan.batch, next_tokens, strict=True):  # after end_s: see the docstring
            self._arrivals.on_token(job.id, token)
        if self._spans is not None:  # a job that ran the iteration before keeps its span going
            for job in plan.batch:
                self._spans.running(self.config.replica, job.id, start_s, end_s, job.id in self._last_batch)
            self._last_batch = {job.id for job in plan.batch}
        if self._iterations is not None:
            self._iterations.add({
                "replica": self.config.replica, "start_s": start_s, "end_s": end_s, "num_iterations": 1,
                "batch_size": len(plan.batch), "num_prefills": len(plan.prefill_ids),
                "prefill_tokens": prefill_tokens, "decode_context_tokens": decode_context_tokens,
                "decode_max_context_tokens": decode_max_context_tokens,
                "device_kv_blocks_used": store.device_alloc.num_used, "host_kv_blocks_used": store.host_alloc.num_used,
                "swap_out_tokens": swapped[0], "swap_in_tokens": swapped[1], "num_queued": num_queued,
                "forward_s": forward_s, "admit_s": self._admit_s,
                "num_swaps_out": swapped[2], "num_swaps_in": swapped[3],
                "prefill_context_tokens": prefill_context_tokens,
            }, level_counts)
            self._admit_s = 0.0
        return end_s

    # -- transfers -----------------------------------------------------------------------------
    def _start(self, transfer: Transfer) -> None:
        self._transfers[transfer.job_id] = transfer
        if transfer.event is None:  # CPU: the copy is done already
            self._complete(transfer, wait=False)

    def _poll_transfers(self) -> None:
        for transfer in [t for t in self._transfers.values() if t.done()]:
            self._complete(transfer, wait=False)

    def _landed(self) -> bool:
        return any(t.done() for t in self._transfers.values())

    def _complete(self, transfer: Transfer, wait: bool) -> None:
        if wait:
            transfer.wait()
        job = self._scheduler.jobs[transfer.job_id]
        if transfer.direction == "out":
            self.store.end_swap_out(job.id)
        else:
            self.store.end_swap_in(job.id)
        del self._transfers[job.id]
        now = self._now()
        self._scheduler.on_swap_done(job, now)
        if self._spans is not None:
            start = transfer.start_s - self._t0
            self._spans.transfer(self.config.replica, job.id, f"swap_{transfer.direction}", start, now)

    # -- stopping ------------------------------------------------------------------------------
    def _record_unfinished(self, arrivals: Arrivals, reason: str) -> None:
        for job in list(self._scheduler.jobs.values()):
            self._log.record(job, job.id, self.config.replica, "unfinished", f"run stopped: {reason}")
            arrivals.on_done(job, "unfinished", f"run stopped: {reason}")
        for job in arrivals.left():
            self._log.record(job, job.id, self.config.replica, "unfinished", f"not yet arrived; run stopped: {reason}")
            arrivals.on_done(job, "unfinished", f"not yet arrived; run stopped: {reason}")

    def _reset(self) -> None:
        for transfer in self._transfers.values():
            transfer.wait()
        self._transfers.clear()
        self.store.reset()
