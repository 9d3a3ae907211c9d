"""One model replica (TP x PP GPUs) as a SimPy process driving one policy scheduler.

Per iteration (paper section 4): `schedule(now)`; start the plan's swap-outs and swap-ins;
wait for the transfers in `plan.wait_for`; run the iteration for `cost.iteration_s(batch)`
(with chunked prefill, each chunk priced with the KV of its earlier chunks it attends to);
`on_iteration_done`. Swaps run on one link per direction (a SimPy resource each), concurrently
with compute: that overlap is what proactive swapping buys. A swap-in first waits for the
swap-outs in flight when it was issued, since it may write into the room they vacate.
Reactive swaps land in `wait_for` and so sit on the critical path. A cost model whose engine
copies synchronously (`sync_transfers`: the live executor on CPU) runs every swap on the
critical path, one after another before the batch, as that engine does. A measured engine's own
work per swap (`swap_overhead_s`) is charged on the critical path too: with each synchronous
copy, or before compute for asynchronous ones.

A cost model that measured its engine's planning cost (`plan_overhead_s`, the live executor's
profiles) is charged it once per plan with a batch, before the iteration, plus its admissions;
and its wrap-up of a plan (`plan_end_overhead_s`: reporting the iterations to the policy,
retiring the finished requests) once after the plan's last iteration, after the finishes are
recorded (a finish time is the iteration's end, as in the live engine).

Event skipping (pp == 1): when the plan is pure decode and no transfer is in flight, the
scheduler's `horizon` says how many iterations the plan stays the schedule; the replica also
stops before the first finish and strictly before the next arrival anywhere in the cluster.
A plan with whole prefills may repeat too, as its batch decoding after the first iteration,
when the policy allows it (`Scheduler.repeats_as_decode`: FCFS and vLLM-FCFS), and a run may
go past arrivals the policy says wait (`Horizon.arrivals_wait`), provided the cost model prices
no planning (a measured engine plans again after a prefill plan and at each arrival).
It then sleeps once for the exact sum of those iterations' durations (integer microseconds,
from `cost.decode_iterations_s`, bit-identical to stepping) and reports them with one
`advance` call. Results equal step-by-step simulation request by request.

A cost model with clock noise (`forward_noise`, measured profiles) prices the replica's k-th
iteration with `noisy_iteration_s(..., k)` (and skips with `noisy_decode_iterations_s`), a
deterministic function of k: the same run with and without skipping sees the same noise.

Pipeline parallelism (pp > 1): each stage is a SimPy resource; a micro-batch holds each stage
for iteration_s / pp, then pays the send/recv to the next. A new micro-batch is scheduled as
soon as stage 0 frees and fewer than pp are in flight; the scheduler keeps a job in at most one
in-flight batch. Event skipping is off with pp > 1.
"""

from __future__ import annotations

import math

import numpy as np
import simpy

from policy import CostModel, Job, Plan, RequestLog, Scheduler
from policy.timeline import IterationLog, SpanLog
from sim.clock import US_PER_S, duration_us, durations_us, to_s
from sim.config import SimConfig

# Skips of at most this many iterations are priced one iteration at a time in Python
# (`decode_iterations_lazy`), which stops at the first bound; longer ones with numpy, whose
# fixed cost (17-45 us a call, against ~0.8 us an iteration here) is then spread over enough
# iterations to win.
LAZY_MAX_ITERATIONS = 40


class Replica:
    def __init__(
        self, env: simpy.Environment, index: int, scheduler: Scheduler, cost: CostModel,
        config: SimConfig, cluster, log: RequestLog,
        iterations: IterationLog | None = None, spans: SpanLog | None = None,
    ) -> None:
        self.env = env
        self.index = index
        self.scheduler = scheduler
        self.cost = cost
        self.config = config
        self.cluster = cluster  # gives next_arrival_us and on_finish
        self.log = log
        self.iterations = iterations
        self.spans = spans
        self.links = {"out": simpy.Resource(env, capacity=1), "in": simpy.Resource(env, capacity=1)}
        self.transfers: dict[int, simpy.Event] = {}
        self._swapping_out: dict[int, simpy.Event] = {}
        self.num_decisions = 0
        self.num_admitted = 0  # requests added since the last plan with a batch (the cluster counts)
        self.num_skipped_iterations = 0
        self.num_iterations = 0  # iterations run so far (pp == 1): the index of a cost model's clock noise
        # a measured profile's clock noise (profiles/cost.py): the index-th iteration's own time
        self._noisy = getattr(cost, "noisy_iteration_s", None) if getattr(cost, "forward_noise", ()) else None
        self._plan_end_s = getattr(cost, "plan_end_overhead_s", None)  # a measured engine's wrap-up of a plan
        self._sync_transfers = bool(getattr(cost, "sync_transfers", False))  # swaps block compute (CPU)
        swap_overhead_s = getattr(cost, "swap_overhead_s", None)  # a measured engine's own time per swap
        self._swap_overhead_s = swap_overhead_s if swap_overhead_s is not None else (lambda: 0.0)
        self._lazy_decode = getattr(cost, "decode_iterations_lazy", None) if self._noisy is None else None
        # Skips the live engine does not make (a plan with prefills repeated, arrivals crossed),
        # when the policy allows them, unless the cost model prices an engine's planning: the
        # live engine plans again at each (executor/engine.py reuses pure-decode plans, up to the
        # next arrival), and pays for it.
        prices_planning = getattr(cost, "prices_planning", None)  # profiles.CostModel says; others by their methods
        if prices_planning is None:
            prices_planning = self._plan_end_s is not None or hasattr(cost, "plan_overhead_s")
        self._beyond_live_reuse = scheduler.repeats_prefill_plans and not prices_planning
        self._wake: simpy.Event | None = None
        self._changed = False  # something changed since the last decision
        self._queued_in_blocks = 0  # device blocks of swap-ins still waiting for swap-outs to land
        self._stage0_busy = False
        self._batches_in_flight = 0
        self.process = env.process(self._run() if config.pp == 1 else self._run_pipelined())

    # -- wake-ups ------------------------------------------------------------------------------
    def notify(self) -> None:
        """Something changed (arrival, transfer landed, stage freed): re-run the scheduler."""
        self._changed = True
        if self._wake is not None and not self._wake.triggered:
            self._wake.succeed()

    def _sleep(self) -> simpy.Event:
        """Wait for the next change, or none if one came since the last decision (a transfer
        can land while the engine issues a plan's swaps, before it goes to sleep)."""
        self._wake = self.env.event()
        if self._changed:  # consumed here, so that a loop that cannot decide yet does not spin
            self._changed = False
            self._wake.succeed()
        return self._wake

    def _decide(self) -> Plan:
        self._changed = False
        self.num_decisions += 1
        return self.scheduler.schedule(to_s(self.env.now))

    # -- swaps ---------------------------------------------------------------------------------
    def _transfer(self, job: Job, direction: str, done: simpy.Event, after: list[simpy.Event]):
        if after:  # a swap-in writes into room that these swap-outs are still vacating
            self._queued_in_blocks += job.device_blocks
            yield self.env.all_of(after)
            self._queued_in_blocks -= job.device_blocks
        with self.links[direction].request() as req:
            yield req
            start_us = self.env.now
            yield self.env.timeout(duration_us(self.cost.swap_s(job.kv_tokens, direction)))
        self.scheduler.on_swap_done(job, to_s(self.env.now))
        del self.transfers[job.id]
        self._swapping_out.pop(job.id, None)
        if self.spans is not None:
            self.spans.transfer(self.index, job.id, f"swap_{direction}", to_s(start_us), to_s(self.env.now))
        done.succeed()
        self.notify()

    def _start_transfer(self, job: Job, direction: str) -> None:
        done = self.env.event()
        after = list(self._swapping_out.values()) if direction == "in" else []
        self.transfers[job.id] = done
        if direction == "out":
            self._swapping_out[job.id] = done
        self.env.process(self._transfer(job, direction, done, after))

    def _apply_swaps(self, plan: Plan):
        """Start the plan's transfers; block compute only for `plan.wait_for`. With synchronous
        transfers (`cost.sync_transfers`: a CPU engine copies in its own thread) run them one
        after another, swap-outs first, each landing as it ends, before the batch."""
        per_swap_s = self._swap_overhead_s()
        if self._sync_transfers:
            for job, direction in [(j, "out") for j in plan.swap_out] + [(j, "in") for j in plan.swap_in]:
                start_us = self.env.now
                yield self.env.timeout(duration_us(self.cost.swap_s(job.kv_tokens, direction) + per_swap_s))
                self.scheduler.on_swap_done(job, to_s(self.env.now))
                if self.spans is not None:
                    self.spans.transfer(self.index, job.id, f"swap_{direction}", to_s(start_us), to_s(self.env.now))
            return
        num_swaps = len(plan.swap_out) + len(plan.swap_in)
        if per_swap_s > 0 and num_swaps:  # the engine's own work to issue them, before compute
            yield self.env.timeout(duration_us(per_swap_s * num_swaps))
        for job in plan.swap_out:
            self._start_transfer(job, "out")
        for job in plan.swap_in:
            self._start_transfer(job, "in")
        waits = [self.transfers[j.id] for j in plan.wait_for if j.id in self.transfers]
        if waits:
            yield self.env.all_of(waits)

    # -- the loop, pp == 1 -----------------------------------------------------------------------
    def _run(self):
        env, sched = self.env, self.scheduler
        while True:
            plan = self._decide()
            if plan.swap_out or plan.swap_in or plan.wait_for:
                yield from self._apply_swaps(plan)
            if not plan.batch:
                if not (self._sync_transfers and (plan.swap_out or plan.swap_in)):
                    yield self._sleep()  # synchronous transfers landed already: plan again at once
                continue
            plan_us = self._plan_overhead_us(plan.is_pure_decode, len(plan.batch))
            if plan_us:  # the engine's own planning and admissions, before the pass
                yield env.timeout(plan_us)
            start_us = env.now
            level_counts = sched.level_counts() if self.iterations is not None else None
            prefill_tokens, decode_context = plan.token_lists()  # once per decision
            step_us = duration_us(self._iteration_s(plan, prefill_tokens, decode_context))
            n, total_us, ends_us = 1, step_us, None
            if self.config.skip and not self.transfers and (plan.is_pure_decode or (
                    prefill_tokens and self._beyond_live_reuse and plan.may_repeat)):
                n, total_us, ends_us = self._skippable(plan, step_us, decode_context)
            self.num_iterations += n
            yield env.timeout(total_us)
            now_s = to_s(env.now)
            if self.spans is not None:
                self._record_spans(plan, start_us)
            if self.iterations is not None:
                if n > 1 and prefill_tokens:  # the prefills' iteration, then every job decoding
                    prefill_context = sum(prefill_tokens)
                    first_end_us = start_us + ends_us[0]
                    self._record(plan, start_us, 1, level_counts, prefill_context, sum(decode_context),
                                 first_end_us, len(prefill_tokens))
                    self._record(plan, first_end_us, n - 1, level_counts, 0,
                                 prefill_context + sum(decode_context) + len(plan.batch), env.now, 0)
                else:
                    self._record(plan, start_us, n, level_counts, sum(prefill_tokens), sum(decode_context),
                                 env.now, len(prefill_tokens))
            if n == 1:
                finished = sched.on_iteration_done(plan, now_s, to_s(total_us))
            else:
                finished = sched.advance(plan, now_s, n, to_s(total_us), ends_us)
                self.num_skipped_iterations += n - 1
            for job in finished:
                self._finish(job)
            if self._plan_end_s is not None:  # the engine's wrap-up of the plan, before it plans again
                end_s = self._plan_end_s(len(finished), len(plan.batch))
                if end_s > 0:  # once per plan, like `_plan_overhead_us`
                    yield env.timeout(duration_us(end_s))

    def _iteration_s(self, plan: Plan, prefill_tokens: list[int], decode_context: list[int]) -> float:
        """The plan's next iteration (noisy with a measured profile's clock noise). Prefill
        chunks that attend to earlier chunks' KV are priced with their context (chunked prefill);
        only then is it passed, so cost models that predate chunking still serve the rest."""
        chunk_context = plan.prefill_context_tokens
        args = (prefill_tokens, decode_context)
        if self._noisy is not None:
            if chunk_context:
                return self._noisy(*args, self.num_iterations, chunk_context)
            return self._noisy(*args, self.num_iterations)
        return self.cost.iteration_s(*args, chunk_context) if chunk_context else self.cost.iteration_s(*args)

    def _plan_overhead_us(self, pure_decode: bool, num_jobs: int) -> int:
        """A measured engine's time to admit the requests that arrived since the last plan and to
        make this one (`cost.plan_overhead_s`, profiles/cost.py); 0 for cost models without it.
        Charged once per plan: with event skipping, once per run of reused iterations, as the
        live executor does; stepping (`skip=False`) plans, and so pays, every iteration."""
        admitted, self.num_admitted = self.num_admitted, 0
        plan_overhead_s = getattr(self.cost, "plan_overhead_s", None)
        seconds = plan_overhead_s(admitted, pure_decode, num_jobs) if plan_overhead_s is not None else 0.0
        return duration_us(seconds) if seconds > 0 else 0  # duration_us rounds up to 1 us

    def _skippable(self, plan: Plan, step_us: int, decode_context: list[int]):
        """How many iterations of `plan` can run back to back, their total duration, and each
        one's end relative to the first's start (microseconds). A plan with prefills runs them
        in its first iteration (`step_us`); in the others every job decodes, one token longer."""
        now_us = self.env.now
        limit = min(min([j.output_tokens - j.generated_tokens for j in plan.batch]), self.config.max_skip_iterations)
        priced = 1 if plan.prefill_ids else 0  # iterations `step_us` prices: the decodes follow
        if priced:
            decode_context = [j.prompt_tokens + j.generated_tokens + 1 for j in plan.batch]
        next_arrival_us = self.cluster.next_arrival_us
        may_cross = self._beyond_live_reuse and self.cluster.arrivals_sorted  # see `_cross_arrivals`
        if next_arrival_us < math.inf and not may_cross:
            limit = min(limit, self._arrival_limit(plan, step_us, decode_context, priced, next_arrival_us - now_us))
        if limit < 2:  # settled before asking the policy, which costs more
            return 1, step_us, None
        horizon = self.scheduler.horizon(plan, to_s(now_us), limit)
        crossing = may_cross and horizon.arrivals_wait
        if next_arrival_us < math.inf and may_cross and not crossing:
            limit = min(limit, self._arrival_limit(plan, step_us, decode_context, priced, next_arrival_us - now_us))
        limit = min(limit, horizon.max_iterations)
        if limit < 2:
            return 1, step_us, None
        gap_us = math.inf if crossing else next_arrival_us - now_us
        deadline_us = round(horizon.deadline_s * 1_000_000) if horizon.deadline_s < math.inf else math.inf
        run = None
        if self._lazy_decode is not None and limit <= LAZY_MAX_ITERATIONS:
            values = self._lazy_decode(decode_context, limit - priced)
            if values is not None:
                run = self._cut_run(values, step_us, gap_us, deadline_us, bool(priced))
        if run is None:
            run = self._priced_run(step_us, decode_context, priced, limit, gap_us, deadline_us)
        return self._cross_arrivals(run, now_us) if crossing and next_arrival_us < math.inf else run

    def _arrival_limit(self, plan: Plan, step_us: int, decode_context: list[int], priced: int, gap_us: int) -> int:
        """At most this many iterations end strictly before an arrival `gap_us` from now. Iterations
        only lengthen as contexts grow: this bounds the work, not the result. With clock noise a
        later iteration may be shorter than this one: bound with the shortest it can be (the
        smallest noise group, which is at most 1)."""
        shortest_us = step_us if not priced else duration_us(self.cost.iteration_s([], decode_context))
        if self._noisy is not None:
            shortest_us = max(1, int(self.cost.iteration_s([] if priced else plan.prefill_tokens, decode_context)
                                     * min(1.0, self.cost.forward_noise[0]) * 1_000_000))
        gap_left_us = gap_us - priced * step_us
        return gap_left_us // shortest_us + 1 + priced if gap_left_us > 0 else 1

    def _priced_run(self, step_us: int, decode_context: list[int], priced: int, limit: int, gap_us: float,
                    deadline_us: float):
        """`_skippable`'s result with numpy: every iteration up to `limit` priced at once."""
        if self._noisy is not None:
            steps = durations_us(self.cost.noisy_decode_iterations_s(decode_context, limit - priced,
                                                                     self.num_iterations + priced))
        else:
            steps = durations_us(self.cost.decode_iterations_s(decode_context, limit - priced))
        if priced:
            steps = np.concatenate(([step_us], steps))
        elif steps[0] != step_us:
            raise RuntimeError(
                f"cost model: decode_iterations_s()[0] = {steps[0]} us differs from iteration_s() = "
                f"{step_us} us; event skipping needs them bit-identical"
            )
        ends_rel = np.cumsum(steps)
        n = int(np.searchsorted(ends_rel, gap_us, side="left")) if gap_us < math.inf else limit
        if deadline_us < math.inf:
            n = min(n, int(np.searchsorted(ends_rel, deadline_us, side="left")) + 1)
        n = min(n, limit)
        if n < 2:
            return 1, step_us, None
        return n, int(ends_rel[n - 1]), ends_rel[:n].tolist()  # a list: policies bisect it

    def _cross_arrivals(self, run, now_us: int):
        """A run past arrivals the policy says wait (`Horizon.arrivals_wait`), ending where none
        arrives: the decision after it must see the same arrivals as a stepped run's, and at an
        instant an arrival shares, which of the two SimPy takes first depends on when each was
        scheduled, which differs between the two runs."""
        n, total_us, ends = run
        while n > 1 and self.cluster.arrives_at_us(now_us + ends[n - 1]):
            n -= 1
        if n < 2:
            return 1, ends[0], None
        return (n, ends[n - 1], ends[:n]) if n < len(ends) else run

    @staticmethod
    def _cut_run(values, step_us: int, gap_us: float, deadline_us: float, first_priced: bool = False):
        """`_skippable`'s result from iteration durations in seconds, taken one at a time: the
        iterations that end strictly before the next arrival, up to the first that ends at or
        after the policy's deadline (the numpy path's searchsorted bounds, without pricing the
        iterations past them). `first_priced`: the first iteration is `step_us` (a prefill's),
        and `values` price the ones after it."""
        ends: list[int] = []
        total_us = 0
        if first_priced:
            if step_us >= gap_us or step_us >= deadline_us:
                return 1, step_us, None
            ends.append(step_us)
            total_us = step_us
        for seconds in values:
            us = round(seconds * US_PER_S)  # duration_us
            total_us += us if us > 0 else 1
            if not ends and total_us != step_us:
                raise RuntimeError(
                    f"cost model: decode_iterations_lazy() first value = {total_us} us differs from "
                    f"iteration_s() = {step_us} us; event skipping needs them bit-identical"
                )
            if total_us >= gap_us:
                break
            ends.append(total_us)
            if total_us >= deadline_us:
                break
        if len(ends) < 2:
            return 1, step_us, None
        return len(ends), ends[-1], ends

    # -- the loop, pp > 1 ------------------------------------------------------------------------
    def _run_pipelined(self):
        env = self.env
        stages = [simpy.Resource(env, capacity=1) for _ in range(self.config.pp)]
        while True:
            if self._batches_in_flight < self.config.pp and not self._stage0_busy:
                plan = self._decide()
                if plan.swap_out or plan.swap_in or plan.wait_for:
                    yield from self._apply_swaps(plan)
                if plan.batch:
                    self._batches_in_flight += 1
                    self._stage0_busy = True
                    env.process(self._micro_batch(plan, stages))
                    continue
                if self._sync_transfers and (plan.swap_out or plan.swap_in):
                    continue  # they landed already: plan again at once
            yield self._sleep()

    def _micro_batch(self, plan: Plan, stages: list[simpy.Resource]):
        env, cost = self.env, self.cost
        start_us = env.now
        level_counts = self.scheduler.level_counts() if self.iterations is not None else None
        chunk_context = plan.prefill_context_tokens
        prefill_tokens, decode_context = plan.token_lists()
        args = (prefill_tokens, decode_context) + ((chunk_context,) if chunk_context else ())
        stage_us = duration_us(cost.iteration_s(*args) / self.config.pp)
        num_tokens = sum(prefill_tokens) + len(decode_context)
        send_us = duration_us(cost.pp_send_recv_s(num_tokens))
        for k, stage in enumerate(stages):
            with stage.request() as req:
                yield req
                yield env.timeout(stage_us)
            if k == 0:
                self._stage0_busy = False
                self.notify()
            if k < len(stages) - 1:
                yield env.timeout(send_us)
        self._batches_in_flight -= 1
        if self.spans is not None:
            self._record_spans(plan, start_us)
        if self.iterations is not None:
            self._record(plan, start_us, 1, level_counts, sum(prefill_tokens), sum(decode_context), env.now,
                         len(prefill_tokens))
        for job in self.scheduler.on_iteration_done(plan, to_s(env.now), to_s(env.now - start_us)):
            self._finish(job)
        self.notify()

    # -- bookkeeping ---------------------------------------------------------------------------
    def _finish(self, job: Job) -> None:
        self.log.record(job, job.id, self.index)
        self.cluster.on_finish(job)

    def _record_spans(self, plan: Plan, start_us: int) -> None:
        start_s, end_s = to_s(start_us), to_s(self.env.now)
        for job in plan.batch:
            self.spans.running(self.index, job.id, start_s, end_s)

    def _record(self, plan: Plan, start_us: int, n: int, level_counts: list[int] | None,
                prefill_tokens: int, decode_context_tokens: int, end_us: int, num_prefills: int) -> None:
        """One row of the iterations table: `n` iterations alike from `start_us` to `end_us`,
        each with `num_prefills` prefills of `prefill_tokens` and decodes over
        `decode_context_tokens` (the first's)."""
        kv = self.scheduler.kv
        self.iterations.add({
            "replica": self.index, "start_s": to_s(start_us), "end_s": to_s(end_us), "num_iterations": n,
            "batch_size": len(plan.batch), "num_prefills": num_prefills,
            "prefill_tokens": prefill_tokens,
            "decode_context_tokens": decode_context_tokens,
            # blocks physically held: a swap-in still queued behind swap-outs writes nothing yet
            "device_kv_blocks_used": kv.device_used_blocks + kv.releasing_blocks - self._queued_in_blocks,
            "host_kv_blocks_used": kv.host_used_blocks,
            "swap_out_tokens": sum(j.kv_tokens for j in plan.swap_out),
            "swap_in_tokens": sum(j.kv_tokens for j in plan.swap_in),
            "num_queued": len(self.scheduler.jobs) - len(plan.batch),
        }, level_counts)
