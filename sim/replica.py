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
stops before the first finish and strictly before the next arrival it must see: its own
requests under round-robin dispatch, every request otherwise (sim/arrival_stream.py;
sim/skip_run.py works the run out).
A plan with whole prefills may repeat too, as its batch decoding after the first iteration,
when the policy allows it (`Scheduler.repeats_as_decode`: the FCFSs and MLFQs), and a run may
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

import simpy

from policy import CostModel, Job, Plan, RequestLog, Scheduler
from policy.timeline import IterationLog, SpanLog
from sim.arrival_stream import ArrivalStream
from sim.clock import duration_us, to_s
from sim.config import SimConfig
from sim.run_rows import Row, run_rows
from sim.skip_run import SkipRuns


class Replica:
    def __init__(
        self, env: simpy.Environment, index: int, scheduler: Scheduler, cost: CostModel,
        config: SimConfig, cluster, log: RequestLog, arrivals: ArrivalStream,
        iterations: IterationLog | None = None, spans: SpanLog | None = None,
    ) -> None:
        self.env = env
        self.index = index
        self.scheduler = scheduler
        self.cost = cost
        self.config = config
        self.cluster = cluster  # gives on_finish
        self.log = log
        self.iterations = iterations
        self.spans = spans
        self.links = {"out": simpy.Resource(env, capacity=1), "in": simpy.Resource(env, capacity=1)}
        self.transfers: dict[int, simpy.Event] = {}
        self._swapping_out: dict[int, simpy.Event] = {}
        self.num_decisions = 0
        self.num_admitted = 0  # requests added since the last plan with a batch (`on_arrival` counts)
        self.num_skipped_iterations = 0
        self.num_iterations = 0  # iterations run so far (pp == 1): the index of a cost model's clock noise
        # a measured profile's clock noise (profiles/cost.py): the index-th iteration's own time
        self._noisy = getattr(cost, "noisy_iteration_s", None) if getattr(cost, "forward_noise", ()) else None
        self._plan_end_s = getattr(cost, "plan_end_overhead_s", None)  # a measured engine's wrap-up of a plan
        self._sync_transfers = bool(getattr(cost, "sync_transfers", False))  # swaps block compute (CPU)
        swap_overhead_s = getattr(cost, "swap_overhead_s", None)  # a measured engine's own time per swap
        self._swap_overhead_s = swap_overhead_s if swap_overhead_s is not None else (lambda: 0.0)
        # Skips the live engine does not make (a plan with prefills repeated, arrivals crossed),
        # when the policy allows them, unless the cost model prices an engine's planning: the
        # live engine plans again at each (executor/engine.py reuses pure-decode plans, up to the
        # next arrival), and pays for it.
        prices_planning = getattr(cost, "prices_planning", None)  # profiles.CostModel says; others by their methods
        if prices_planning is None:
            prices_planning = self._plan_end_s is not None or hasattr(cost, "plan_overhead_s")
        self._beyond_live_reuse = scheduler.repeats_prefill_plans and not prices_planning
        self._runs = SkipRuns(cost, scheduler, arrivals, config.max_skip_iterations, self._beyond_live_reuse,
                              self._noisy is not None)
        # arrivals since the last decision, for the iteration rows of a run past them (run_rows.py)
        self._arrived_us: list[int] | None = [] if iterations is not None else None
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

    def on_arrival(self, arrival_us: int) -> None:
        """The cluster added a request that arrived at `arrival_us` (now) to the scheduler."""
        self.num_admitted += 1
        if self._arrived_us is not None:
            self._arrived_us.append(arrival_us)
        self.notify()

    def _decide(self) -> Plan:
        self._changed = False
        if self._arrived_us:
            self._arrived_us.clear()
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
                n, total_us, ends_us = self._runs.length(plan, step_us, decode_context, start_us, self.num_iterations)
            self.num_iterations += n
            yield env.timeout(total_us)
            now_s = to_s(env.now)
            if self.spans is not None:
                self._record_spans(plan, start_us)
            if self.iterations is not None:
                for row in run_rows(start_us, env.now, ends_us, len(plan.batch), sum(prefill_tokens),
                                    sum(decode_context), len(prefill_tokens), len(sched.jobs) - len(plan.batch),
                                    self._arrived_us):
                    self._record(plan, row, level_counts, row[0] == start_us)
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
            self._record(plan, (start_us, env.now, 1, sum(prefill_tokens), sum(decode_context), len(prefill_tokens),
                                len(self.scheduler.jobs) - len(plan.batch)), level_counts, True)
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

    def _record(self, plan: Plan, row: Row, level_counts: list[int] | None, first: bool) -> None:
        """One row of the iterations table (sim/run_rows.py), with the policy's view of the KV
        (read once per decision); the plan's swaps go in the run's `first` row."""
        kv = self.scheduler.kv
        start_us, end_us, num_iterations, prefill_tokens, decode_context_tokens, num_prefills, num_queued = row
        self.iterations.add({
            "replica": self.index, "start_s": to_s(start_us), "end_s": to_s(end_us),
            "num_iterations": num_iterations, "batch_size": len(plan.batch), "num_prefills": num_prefills,
            "prefill_tokens": prefill_tokens, "decode_context_tokens": decode_context_tokens,
            # blocks physically held: a swap-in still queued behind swap-outs writes nothing yet
            "device_kv_blocks_used": kv.device_used_blocks + kv.releasing_blocks - self._queued_in_blocks,
            "host_kv_blocks_used": kv.host_used_blocks,
            "swap_out_tokens": sum(j.kv_tokens for j in plan.swap_out) if first else 0,
            "swap_in_tokens": sum(j.kv_tokens for j in plan.swap_in) if first else 0,
            "num_queued": num_queued,
        }, level_counts)
