"""The reference engine of the conformance check: the `policy.Plan` contract spelled out as code.

Integer-microsecond time, a toy cost model, and the engine order of DESIGN.md ("Engine order per
iteration"): swap-outs start at once, one at a time on the device->host link; swap-ins on the
host->device link once every swap-out in flight has landed; the batch starts when its
`wait_for` transfers have landed and runs `iteration_us(plan)`; an empty batch waits for the
next event. Arrivals and swap landings are events in time order (ties: landings first, then
arrivals, each in the order queued). Requests the scheduler refuses (`reject_reason`) are not
added, as the real engines do.

With `skip=True` a plan runs several iterations at once through `horizon` /
`advance` (a pure-decode plan, or one with whole prefills when the policy allows it), under the limits both real engines add (`skip_count`). It checks, and raises
`Violation` naming the property: KV never over-committed (host within capacity after every
event; device used + releasing within capacity whenever a batch starts; batch jobs' KV on the
device and large enough; batch within `max_batch_size`), and no stall (a decision with nothing
to run and nothing in flight while jobs remain).
"""

from __future__ import annotations

import heapq
import math
from dataclasses import dataclass

from policy.job import Job, KVLocation
from policy.plan import Plan

CONSERVATION, SKIPPING, DETERMINISM, KV, STARVATION = (
    "conservation", "skipping == stepping", "determinism", "no KV over-commit", "no starvation")


class Violation(Exception):
    """A property does not hold; `prop` names it, the message says where."""

    def __init__(self, prop: str, message: str) -> None:
        super().__init__(message)
        self.prop = prop


@dataclass(frozen=True)
class ToyCost:
    """The check's cost estimate (policy.CostEstimate): prefill a + b * tokens, swap c * tokens."""

    a_s: float = 0.002
    b_s: float = 0.0001
    c_s: float = 0.00001

    def prefill_s(self, prompt_tokens: int) -> float:
        return self.a_s + self.b_s * prompt_tokens

    def swap_s(self, tokens: int, direction: str) -> float:
        return self.c_s * tokens

    def min_iteration_s(self) -> float:
        return self.prefill_s(1)


def iteration_us(plan: Plan, extra_decode_tokens: int = 0) -> int:
    """1000 us + 3 per context token attended + 2 more per prefilled token. With
    `extra_decode_tokens` = i > 0: the plan's (i+1)-th iteration when it repeats, where every job
    decodes, a prefill job included (its context then counts the tokens produced since)."""
    if extra_decode_tokens and plan.prefill_ids:
        return 1000 + 3 * sum(j.context_tokens + extra_decode_tokens for j in plan.batch)
    prefill = sum(plan.prefill_tokens)
    decode = sum(c + extra_decode_tokens for c in plan.decode_context_tokens)
    return 1000 + 3 * (prefill + decode) + 2 * prefill


def swap_us(job: Job) -> int:
    return 40 + 2 * job.kv_tokens


def skip_count(sched, plan: Plan, now_us: int, transfers_in_flight: bool, next_arrival_us: float) -> int:
    """Iterations `plan` may run at once, as sim/replica.py decides: no transfer, drop or chunk
    in the plan (`plan.may_repeat`; whole prefills may repeat as decodes if the policy's horizon
    says so) and none in flight, n <= horizon.max_iterations, n <= the smallest remaining output
    of the batch, the first n - 1 iterations end strictly before horizon.deadline_s, and all n
    end strictly before
    the next arrival (an arrival inside a skipped stretch would be queued before demotions the
    stretch applies at its end) unless `horizon.arrivals_wait`. One step is always fine."""
    if not plan.may_repeat or transfers_in_flight:
        return 1
    h = sched.horizon(plan, now_us / 1e6)
    if h.arrivals_wait:  # arrivals during the run join as they come and change none of its decisions
        next_arrival_us = math.inf
    deadline_us = math.inf if math.isinf(h.deadline_s) else round(h.deadline_s * 1e6)
    limit = min(h.max_iterations, min(j.remaining_tokens for j in plan.batch))
    n, end_us = 1, iteration_us(plan, 0)  # end_us: when the n-th iteration ends
    while n < limit:
        nxt_us = end_us + iteration_us(plan, n)
        if end_us >= deadline_us or now_us + nxt_us >= next_arrival_us:
            break
        n, end_us = n + 1, nxt_us
    if n > 1 and now_us + end_us >= next_arrival_us:
        n -= 1
    return n


class ReferenceEngine:
    _SWAP, _ARRIVAL = 0, 1

    def __init__(self, sched, jobs: list[Job], skip: bool = False, max_decisions: int = 20_000) -> None:
        self.sched, self.skip, self.max_decisions = sched, skip, max_decisions
        self.jobs = {j.id: j for j in jobs}
        self.now_us = 0
        self._events: list[tuple[int, int, int, Job]] = []
        self._num_events = 0
        for j in sorted(jobs, key=lambda j: (j.arrival_s, j.id)):
            self._push(round(j.arrival_s * 1_000_000), self._ARRIVAL, j)
        self._swap_done_us: dict[int, int] = {}
        self._swap_start_us: dict[int, int] = {}
        self._out_free_us = self._in_free_us = 0
        self.plans: list[tuple] = []  # every decision as job ids, for determinism
        self.finishes: dict[int, int] = {}  # job id -> times reported finished
        self.rejected: set[int] = set()
        self.num_decisions = 0
        self._ready_us = {j.id: round(j.arrival_s * 1_000_000) for j in jobs}  # arrival or last iteration's end
        self.longest_wait_us = dict.fromkeys(self.jobs, 0)  # per job: longest spell between its iterations

    def _push(self, t_us: int, kind: int, job: Job) -> None:
        self._num_events += 1
        heapq.heappush(self._events, (t_us, kind, self._num_events, job))

    def _run_events_until(self, t_us: int) -> None:
        while self._events and self._events[0][0] <= t_us:
            self.now_us, kind, _, j = heapq.heappop(self._events)
            if kind == self._ARRIVAL:
                if self.sched.reject_reason(j) is not None:
                    self.rejected.add(j.id)
                else:
                    self.sched.add(j, self.now_us / 1e6)
            else:
                del self._swap_done_us[j.id], self._swap_start_us[j.id]
                self.sched.on_swap_done(j, self.now_us / 1e6)
            self._check_host()
        self.now_us = max(self.now_us, t_us)

    def _start_swap(self, j: Job, earliest_us: int, out: bool) -> None:
        start = max(earliest_us, self._out_free_us if out else self._in_free_us)
        done = start + swap_us(j)
        if out:
            self._out_free_us = done
        else:
            self._in_free_us = done
        self._swap_start_us[j.id], self._swap_done_us[j.id] = start, done
        self._push(done, self._SWAP, j)

    def _check_host(self) -> None:
        kv = self.sched.kv
        if kv.host_used_blocks > kv.capacity.host_blocks:
            raise Violation(KV, f"at {self.now_us} us the host holds {kv.host_used_blocks} blocks "
                                f"> capacity {kv.capacity.host_blocks}")

    def _check_batch(self, plan: Plan) -> None:
        kv, cfg = self.sched.kv, self.sched.config
        if len(plan.batch) > cfg.max_batch_size or len({j.id for j in plan.batch}) != len(plan.batch):
            raise Violation(KV, f"at {self.now_us} us a batch of {len(plan.batch)} jobs (max {cfg.max_batch_size})")
        for j in plan.batch:
            if j.kv not in (KVLocation.DEVICE, KVLocation.SWAPPING_IN) or j.device_blocks < kv.blocks_for(j.context_tokens):
                raise Violation(KV, f"at {self.now_us} us job {j.id} runs with {j.device_blocks} device blocks "
                                    f"({j.kv.name}) for {j.context_tokens} tokens")
        pending_in = sum(j.device_blocks for j in self.sched.jobs.values()
                         if j.kv is KVLocation.SWAPPING_IN and self._swap_start_us[j.id] > self.now_us)
        used = kv.device_used_blocks + kv.releasing_blocks - pending_in
        if used > kv.capacity.device_blocks:
            raise Violation(KV, f"at {self.now_us} us a batch starts with {used} device blocks held "
                                f"> capacity {kv.capacity.device_blocks}")

    def run(self) -> None:
        self._run_events_until(0)
        while self._events or not self.sched.idle:
            if self.num_decisions >= self.max_decisions:
                raise Violation(CONSERVATION, f"{len(self.sched.jobs)} jobs unfinished after {self.max_decisions} decisions")
            self.step()
        for jid, j in self.jobs.items():
            if jid in self.rejected:
                continue
            if self.finishes.get(jid) != 1 or j.generated_tokens != j.output_tokens:
                raise Violation(CONSERVATION, f"job {jid} reported finished {self.finishes.get(jid, 0)} times "
                                              f"with {j.generated_tokens} of {j.output_tokens} tokens")

    def step(self) -> None:
        sched = self.sched
        plan = sched.schedule(self.now_us / 1e6)
        self.num_decisions += 1
        self.plans.append((self.now_us, *(tuple(j.id for j in part) for part in
                                          (plan.batch, plan.swap_out, plan.swap_in, plan.recompute)),
                           tuple(sorted(plan.prefill_ids))))
        start_us = self.now_us
        for j in plan.swap_out:
            self._start_swap(j, start_us, out=True)
        outs = [self._swap_done_us[j.id] for j in sched.jobs.values() if j.kv is KVLocation.SWAPPING_OUT]
        for j in plan.swap_in:
            self._start_swap(j, max([start_us, *outs]), out=False)
        if not plan.batch:
            if not self._events:
                stuck = sorted(sched.jobs)[:5]
                raise Violation(CONSERVATION, f"at {self.now_us} us nothing runs and nothing is in flight, "
                                              f"{len(sched.jobs)} jobs left (ids {stuck})")
            self._run_events_until(self._events[0][0])
            return
        self._run_events_until(max([start_us, *(self._swap_done_us[j.id] for j in plan.wait_for)]))
        self._check_batch(plan)
        for j in plan.batch:
            self.longest_wait_us[j.id] = max(self.longest_wait_us[j.id], self.now_us - self._ready_us[j.id])
        n = self.skip_count(plan) if self.skip else 1
        ends_us = []
        for i in range(n):
            ends_us.append((ends_us[-1] if ends_us else 0) + iteration_us(plan, i))
        end_us = self.now_us + ends_us[-1]
        self._run_events_until(end_us)
        if n == 1:
            finished = sched.on_iteration_done(plan, end_us / 1e6, ends_us[-1] / 1e6)
        else:
            finished = sched.advance(plan, end_us / 1e6, n, ends_us[-1] / 1e6, ends_us)
        for j in plan.batch:
            self._ready_us[j.id] = end_us
        for j in finished:
            self.finishes[j.id] = self.finishes.get(j.id, 0) + 1

    def skip_count(self, plan: Plan) -> int:
        next_arrival_us = min((t for t, k, _, _ in self._events if k == self._ARRIVAL), default=math.inf)
        return skip_count(self.sched, plan, self.now_us, bool(self._swap_done_us), next_arrival_us)

    def outcome(self) -> dict[int, tuple]:
        """Per job: what skipping must leave exactly as stepping does."""
        return {jid: (j.first_token_s, j.finish_s, j.num_preemptions, j.num_swaps, j.num_recomputes)
                for jid, j in self.jobs.items()}
