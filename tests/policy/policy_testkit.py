"""Shared pieces of the policy tests: a toy cost estimate, a tiny hand-driving API, and a
deterministic reference engine loop.

The engine is the contract of `policy.Plan` spelled out as code, with integer-microsecond time:
- arrivals and swap completions are events, processed in time order (ties: swap completions
  first, then arrivals, each in the order they were queued) with `add` / `on_swap_done`;
- a plan's `swap_out` transfers start at once on the device->host link, one at a time;
- its `swap_in` transfers start on the host->device link once every swap-out in flight has
  landed (the kv module's rule: a swap-in may be planned into blocks that swap-outs still
  occupy), one at a time;
- the batch starts once every `wait_for` transfer has landed and runs `iteration_us(plan)`;
- when the batch is empty, time jumps to the next event; no event left while jobs remain is
  a deadlock and fails the test.
With `skip=True` it runs pure-decode plans several iterations at once through
`Scheduler.horizon` / `Scheduler.advance` (see `_skip_count` for the exact rule).

It records every plan (as job ids), per-job level changes, and checks the memory invariants
after every event: host usage within capacity always; whenever a batch starts, the device
blocks physically held (`used + releasing`, less the blocks of swap-ins that have not started
yet) within capacity.
"""

from __future__ import annotations

import heapq
import math
from dataclasses import dataclass, field

from policy import Job, KVLocation, Plan, Scheduler, SchedulerConfig, make_scheduler

# the tests' toy costs and skip rule are the conformance check's reference engine's
from policy.conformance.engine import ToyCost, iteration_us, skip_count, swap_us


def ids(jobs) -> list[int]:
    return [j.id for j in jobs]


def plan_ids(plan: Plan) -> dict[str, list[int]]:
    """Every field of a plan as job ids (prefill ids sorted), for exact comparisons."""
    return {
        "batch": ids(plan.batch),
        "prefill": sorted(plan.prefill_ids),
        "swap_out": ids(plan.swap_out),
        "swap_in": ids(plan.swap_in),
        "recompute": ids(plan.recompute),
        "wait_for": ids(plan.wait_for),
    }


def expect(batch=(), prefill=(), swap_out=(), swap_in=(), recompute=(), wait_for=()) -> dict:
    return {
        "batch": list(batch), "prefill": sorted(prefill), "swap_out": list(swap_out),
        "swap_in": list(swap_in), "recompute": list(recompute), "wait_for": list(wait_for),
    }


def job(job_id: int, prompt: int, output: int, arrival_s: float = 0.0) -> Job:
    return Job(id=job_id, arrival_s=arrival_s, prompt_tokens=prompt, output_tokens=output)


def mlfq(name: str = "mlfq", cost=None, **kw) -> Scheduler:
    """An MLFQ-family scheduler with quanta 10, 20, 40 ms and batches of one, unless overridden."""
    base = dict(num_levels=3, base_quantum_s=0.010, quantum_growth=2.0, max_batch_size=1)
    base.update(kw)
    return make_scheduler(name, SchedulerConfig(**base), cost)


@dataclass
class JobResult:
    first_token_s: float
    finish_s: float
    num_preemptions: int
    num_swaps: int
    num_recomputes: int
    levels: list = field(default_factory=list)  # every level the job took, in order


class DeadlockError(AssertionError):
    pass


class Engine:
    _SWAP, _ARRIVAL = 0, 1

    def __init__(self, sched: Scheduler, jobs: list[Job], skip: bool = False,
                 max_decisions: int = 50_000, stop_at_first_finish: bool = False) -> None:
        self.sched = sched
        self.skip = skip
        self.max_decisions = max_decisions
        self.stop_at_first_finish = stop_at_first_finish
        self.jobs = {j.id: j for j in jobs}
        self.now_us = 0
        self._events: list[tuple[int, int, int, Job]] = []
        self._event_seq = 0
        for j in sorted(jobs, key=lambda j: (j.arrival_s, j.id)):
            self._push(round(j.arrival_s * 1_000_000), self._ARRIVAL, j)
        self._swap_done_us: dict[int, int] = {}
        self._swap_start_us: dict[int, int] = {}
        self._out_free_us = 0
        self._in_free_us = 0
        self.plans: list[dict[str, list[int]]] = []  # one per schedule() call
        self.plan_times_us: list[int] = []
        self.num_schedule_calls = 0
        self.num_iterations = 0
        self.num_finished = 0
        self.levels: dict[int, list] = {j.id: [] for j in jobs}  # [(time_us, level)] as observed
        # Every level each job took, in order, times left out: a skipped stretch applies its
        # demotions at its end, so only their order is comparable with stepping.
        self.level_seq: dict[int, list[int]] = {j.id: [] for j in jobs}
        demote = getattr(sched, "_demote", None)
        if demote is not None:
            def traced_demote(job: Job, level: int) -> None:
                demote(job, level)
                self._note_level(job.id, level)
            sched._demote = traced_demote
        self.max_device_blocks_seen = 0
        self.max_host_blocks_seen = 0
        self.last_ran_us: dict[int, int] = {}  # end of the last iteration each job was in

    # -- events ----------------------------------------------------------------------------
    def _push(self, t_us: int, kind: int, job: Job) -> None:
        self._event_seq += 1
        heapq.heappush(self._events, (t_us, kind, self._event_seq, job))

    def _next_arrival_us(self) -> float:
        return min((t for t, k, _, _ in self._events if k == self._ARRIVAL), default=math.inf)

    def _run_events_until(self, t_us: int) -> None:
        """Process every event at or before t_us, in time order; time only moves forward."""
        while self._events and self._events[0][0] <= t_us:
            ev_us, kind, _, j = heapq.heappop(self._events)
            assert ev_us >= self.now_us, "time went backwards"
            self.now_us = ev_us
            if kind == self._ARRIVAL:
                self.sched.add(j, ev_us / 1e6)
            else:
                del self._swap_done_us[j.id]
                del self._swap_start_us[j.id]
                self.sched.on_swap_done(j, ev_us / 1e6)
            self._observe()
        assert t_us >= self.now_us
        self.now_us = t_us

    def _start_swap(self, j: Job, earliest_us: int, direction: str) -> None:
        free = self._out_free_us if direction == "out" else self._in_free_us
        start = max(earliest_us, free)
        done = start + swap_us(j)
        self._swap_start_us[j.id] = start
        if direction == "out":
            self._out_free_us = done
        else:
            self._in_free_us = done
        self._swap_done_us[j.id] = done
        self._push(done, self._SWAP, j)

    # -- checks ----------------------------------------------------------------------------
    def _observe(self) -> None:
        kv = self.sched.kv
        assert 0 <= kv.host_used_blocks <= kv.capacity.host_blocks, "host over capacity"
        assert kv.device_used_blocks >= 0 and kv.releasing_blocks >= 0
        resting = [j.host_blocks for j in self.jobs.values() if j.kv is KVLocation.HOST]
        assert kv.min_host_job_blocks == min(resting, default=math.inf), "min_host_job_blocks is stale"
        self.max_host_blocks_seen = max(self.max_host_blocks_seen, kv.host_used_blocks)
        for jid, j in self.jobs.items():
            hist = self.levels[jid]
            if not hist or hist[-1][1] != j.level:
                hist.append((self.now_us, j.level))
            self._note_level(jid, j.level)

    def _note_level(self, job_id: int, level: int) -> None:
        seq = self.level_seq[job_id]
        if not seq or seq[-1] != level:
            seq.append(level)

    def _check_device_before_batch(self) -> None:
        kv = self.sched.kv
        pending_in = 0
        for j in self.sched.jobs.values():
            if j.kv is KVLocation.SWAPPING_IN:
                assert j.id in self._swap_done_us
                pending_in += j.device_blocks if self._swap_start_us[j.id] > self.now_us else 0
        used = kv.device_used_blocks + kv.releasing_blocks - pending_in
        assert used <= kv.capacity.device_blocks, (
            f"device over capacity when the batch starts: {kv.device_used_blocks} used + "
            f"{kv.releasing_blocks} releasing - {pending_in} not yet swapping in > "
            f"{kv.capacity.device_blocks}"
        )
        self.max_device_blocks_seen = max(self.max_device_blocks_seen, used)

    # -- the loop ----------------------------------------------------------------------------
    def run(self) -> dict[int, JobResult]:
        self._run_events_until(0)
        while self._events or not self.sched.idle:
            if self.num_schedule_calls >= self.max_decisions:
                raise DeadlockError(f"no progress after {self.max_decisions} decisions")
            if self.step() and self.stop_at_first_finish:
                break
        return self.results()

    def step(self) -> int:
        """One schedule() call and what follows it; returns how many jobs finished."""
        sched = self.sched
        plan = sched.schedule(self.now_us / 1e6)
        self.num_schedule_calls += 1
        self.plans.append(plan_ids(plan))
        self.plan_times_us.append(self.now_us)
        self._observe()
        self.on_plan(plan)
        start_us = self.now_us
        for j in plan.swap_out:
            self._start_swap(j, start_us, "out")
        outs = [self._swap_done_us[j.id] for j in sched.jobs.values() if j.kv is KVLocation.SWAPPING_OUT]
        ins_earliest = max([start_us, *outs])
        for j in plan.swap_in:
            self._start_swap(j, ins_earliest, "in")
        if not plan.batch:
            if not self._events:
                raise DeadlockError(f"empty batch, nothing in flight, {len(sched.jobs)} jobs left")
            self._run_events_until(self._events[0][0])
            return 0
        waits = [self._swap_done_us[j.id] for j in plan.wait_for]
        self._run_events_until(max([start_us, *waits]))
        self._check_device_before_batch()
        n = self._skip_count(plan) if self.skip else 1
        steps_us = [iteration_us(plan, i) for i in range(n)]
        ends_us = [sum(steps_us[: i + 1]) for i in range(n)]
        elapsed = ends_us[-1]
        end_us = self.now_us + elapsed
        self._run_events_until(end_us)
        if n == 1:
            finished = sched.on_iteration_done(plan, end_us / 1e6, elapsed / 1e6)
        else:
            finished = sched.advance(plan, end_us / 1e6, n, elapsed / 1e6, ends_us)
        self.num_iterations += n
        self.num_finished += len(finished)
        for j in plan.batch:
            self.last_ran_us[j.id] = end_us
        self._observe()
        return len(finished)

    def on_plan(self, plan: Plan) -> None:
        """Hook for tests that check something after every decision."""

    def _skip_count(self, plan: Plan) -> int:
        return skip_count(self.sched, plan, self.now_us, bool(self._swap_done_us), self._next_arrival_us())

    def results(self) -> dict[int, JobResult]:
        return {
            jid: JobResult(j.first_token_s, j.finish_s, j.num_preemptions, j.num_swaps,
                           j.num_recomputes, list(self.level_seq[jid]))
            for jid, j in self.jobs.items()
        }


# -- random workloads for the property tests ------------------------------------------------
MAX_SEQ_TOKENS = 64


@dataclass(frozen=True)
class Scenario:
    """A policy, its configuration and a trace; `jobs()` hands out fresh Job objects."""

    policy: str
    config: SchedulerConfig
    trace: tuple  # ((id, arrival_us, prompt_tokens, output_tokens), ...)

    def jobs(self, outputs=None) -> list[Job]:
        return [
            Job(id=i, arrival_s=a_us / 1e6, prompt_tokens=p,
                output_tokens=o if outputs is None else outputs[k])
            for k, (i, a_us, p, o) in enumerate(self.trace)
        ]

    def scheduler(self) -> Scheduler:
        return make_scheduler(self.policy, self.config, ToyCost())

    def run(self, skip: bool = False, outputs=None, engine_cls=None, **kw) -> Engine:
        engine = (engine_cls or Engine)(self.scheduler(), self.jobs(outputs), skip=skip, **kw)
        engine.run()
        return engine
