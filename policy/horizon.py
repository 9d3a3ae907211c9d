"""Event skipping: how long a plan stays the schedule (a Scheduler mixin).

Contract (policy.plan.Horizon): the engine may repeat the plan n times, n <= max_iterations,
the first n-1 iterations ending strictly before now + deadline_s, and report them with one
`advance`. The bounds here cover what the policy decides from: KV growth against free room
and the proactive reserve, uploads that could start, quantum expiry and starvation checks
(the last two in the subclasses' `deadline_us` and `max_iterations`).

A pure-decode plan repeats unchanged. A plan that admits whole prefills repeats as its batch
decoding (`repeats_as_decode`): in a memory-bound FCFS run every finish admits one prefill,
and without this each finish cost two decisions, the admission and the decode plan after it.
"""

from __future__ import annotations

import math

from policy.job import to_us
from policy.plan import Horizon, Plan


class PlanHorizon:
    """Mixed into `Scheduler`."""

    def horizon(self, plan: Plan, now_s: float, at_most: int | None = None) -> Horizon:
        """How many times `plan` can repeat (see `Horizon`). `at_most`: the engine repeats the
        plan no more often than this anyway (its jobs' last tokens; the next arrival, unless it
        waits), so a bound that cannot bind below it is not worked out exactly."""
        if not plan.is_pure_decode and not self.repeats_as_decode(plan):
            return Horizon(1, 0.0)
        kv = self.kv
        threshold = 0
        # Offload candidates are residents outside the batch (batch jobs are in flight now):
        # looked for from the lowest priority up, past the batch's jobs at the top.
        if self.swap_mode == "proactive" and self.locations.num_resident > len(plan.batch) and kv.can_swap_out_any(
                reversed(self.locations.device), self._in_flight):
            threshold = self.reserve_blocks
        room = kv.device_plannable_blocks - threshold
        if room < 0:
            return Horizon(1, 0.0)

        batch = plan.batch
        now_us = to_us(now_s)
        upload_deadline_us = math.inf
        if self.swap_mode == "proactive" and self.locations.num_on_host:
            # Proactive swapping uploads the host jobs in its order while the first fits in the
            # room above the reserve; that room only shrinks while the plan repeats. If some host
            # job could fit after the batch's next growth, the plan repeats only while the order
            # leads with one that does not (tests/policy/test_policy_skipping.py,
            # test_upload_order_change_ends_a_skip: MLFQ's order changes with time).
            slack = kv.device_plannable_blocks - self.reserve_blocks - _next_growth_blocks(self, batch)
            if slack > 0 and kv.min_host_job_blocks <= slack:
                upload_deadline_us = self._upload_lead_us(plan, slack, now_us)
                if upload_deadline_us <= 0:
                    return Horizon(1, 0.0)
        max_i = self.max_iterations() - 1
        if self.reserve_max_seq:
            # Orca reserved max_seq_tokens per job at admission, and no job runs past it (prompt +
            # output <= max_seq_tokens): no growth while the longest context stays within it. A
            # longer run would end at a job's last token first, so this bound repeats the plan
            # exactly as long as the growth search did, without its ~30 steps over the batch.
            lo = min(max_i, self.config.max_seq_tokens - max(j.context_tokens for j in batch))
        elif kv.capacity.block_size_tokens == 1:
            # Every job holds exactly its context and grows one token per iteration.
            lo = min(max_i, room // len(batch))
        elif at_most is not None and growth_fits(kv.capacity.block_size_tokens, len(batch), at_most - 1, room):
            lo = min(max_i, at_most - 1)  # the engine's own limit fits: spare the pass over the batch
        else:
            lo = min(max_i, _most_iterations(kv.capacity.block_size_tokens, batch, room))
        deadline_us = self.deadline_us(plan, now_us)
        if upload_deadline_us < deadline_us:
            deadline_us = upload_deadline_us
        return Horizon(lo + 1, deadline_us / 1_000_000, self._arrivals_wait(plan))

    def _upload_lead_us(self, plan: Plan, slack_blocks: int, now_us: int) -> float:
        """How long (us from now) the upload order's first job stays one that does not fit in
        `slack_blocks`, the room after the plan's next iteration: 0 if it fits. This order is by
        rank, which a host job keeps while it waits (only jobs that run or are promoted are filed
        again), so its first job is the same at every repeat. MLFQ's ENST order changes with
        time (`EnstOrders._upload_lead_us`). 0 for a subclass with an order of its own."""
        if not self._upload_lead_known:
            return 0
        leader = next(self._upload_order(now_us), None)
        return 0 if leader is not None and leader.host_blocks <= slack_blocks else math.inf

    def _arrivals_wait(self, plan: Plan) -> bool:
        """Whether an arrival changes no decision while the plan repeats (`Horizon.arrivals_wait`).
        For FCFS (`arrivals_rank_last`) it joins behind every waiting job, and a walk
        visits no prefill after the first it refuses, nor any job once the batch is full. When
        this walk refused a prefill for room (a plan whose budget refused one repeats only if
        room refuses it too) or filled the batch, the next walks, with no more room and the same
        batch, never reach the new job. Not with chunked prefill, whose walk closes admission
        for a token budget that each walk renews."""
        return (self.arrivals_rank_last and self.repeats_prefill_plans and self.chunk_budget_tokens is None
                and (self.prefill_closed or len(plan.batch) >= self.config.max_batch_size))

    def repeats_as_decode(self, plan: Plan) -> bool:
        """Whether `plan`, with whole prefills beside decodes, is the schedule again after its
        first iteration with every job decoding, until KV growth or the bounds above say
        otherwise. The next walk visits the same jobs in the same order when the policy files
        a job that finished its prefill where it stood (`repeats_prefill_plans`), and leaves out
        the same waiting jobs when this walk left them out for room or a full batch, which only
        shrink while the batch grows: a waiting job that could not evict its way in now (the
        victims it may take, lower-priority device jobs outside the batch ahead of it, stay the
        same) cannot later. A job this walk left out for the prefill-token budget is the next
        walk's first prefill, which the budget lets in: the plan repeats only if free room would
        refuse it now, for policies whose waiting jobs take free room alone (FCFS, less vLLM's
        watermark), since the next walk has no more; where it may evict (MLFQ), never. No drop
        (it closes admission for one decision only), transfer or chunk (a chunked walk's budget
        is renewed too)."""
        if not (self.repeats_prefill_plans and plan.may_repeat and not self.walk_state.may_drop_any
                and self.chunk_budget_tokens is None):
            return False
        refused = self.walk_state.budget_refused
        if refused is None:
            return True
        if self.preemptive and self.admission_evicts:
            return False
        kv = self.kv
        need = kv.blocks_for(self._target_tokens(refused.context_tokens))
        return need + self.watermark_blocks > kv.device_plannable_blocks


def _next_growth_blocks(scheduler, batch: list) -> int:
    """Device blocks the batch's next iteration adds: `kv.extra_blocks` of each job at
    `_target_tokens(context + 1)`, inlined (one pass, no calls per job)."""
    kv = scheduler.kv
    block = kv.capacity.block_size_tokens
    reserve_tokens = scheduler.config.max_seq_tokens if scheduler.reserve_max_seq else 0
    growth = 0
    for j in batch:
        target = j.prompt_tokens + j.generated_tokens + 1
        if target < reserve_tokens:
            target = reserve_tokens
        extra = -(-target // block) - j.device_blocks
        if extra > 0:
            growth += extra
    return growth


def growth_fits(block: int, num_jobs: int, iterations: int, room: int) -> bool:
    """Whether `iterations` more iterations of any batch of `num_jobs` jobs fit in `room` blocks,
    each job holding at least the KV of its context less one token (slack s >= -1, as the walk
    and `advance` leave them): after i iterations none needs more than ceil((i + 1) / block)
    new blocks. Then `_most_iterations` is at least `iterations`, without a pass over the batch."""
    return num_jobs * -(-(iterations + 1) // block) <= room


def _most_iterations(block: int, batch: list, room: int) -> int:
    """The most iterations i for which the batch's KV growth fits in `room` blocks (0 if none
    does): a job holding d blocks at context c has slack s = d * block - c free slots, and needs
    ceil((i - s) / block) new blocks after i more tokens (none while i <= s)."""
    counts: dict[int, int] = {}  # jobs per slack
    for j in batch:
        s = j.device_blocks * block - j.prompt_tokens - j.generated_tokens
        counts[s] = counts.get(s, 0) + 1
    if min(counts) >= -1 and max(counts) < block:
        # Every slack is within one block (as allocation leaves them: s = -1 when the next
        # token needs a block). Then at i = q * block + r (0 <= r < block) each job needs q
        # blocks, plus one if r > s: growth(i) = n * q + below(r), below(r) the jobs with
        # s < r. Closed form: the largest q for which r = 0 fits, then the largest r.
        n, below = len(batch), [0] * block
        for s, count in counts.items():
            if s + 1 < block:
                below[s + 1] += count
        for r in range(1, block):
            below[r] += below[r - 1]
        q = (room - below[0]) // n
        if q < 0:
            return 0
        left = room - n * q
        r = block - 1
        while below[r] > left:
            r -= 1
        return q * block + r
    slacks = sorted(counts.items())

    def growth(i: int) -> int:
        total = 0
        for s, count in slacks:
            if i <= s:
                break
            total += count * -((s - i) // block)
        return total

    # Each job needs a new block at least every block_size iterations, which bounds the search.
    lo, hi = 0, block * (room // len(batch) + 2)
    if growth(hi) <= room:
        return hi
    while lo < hi:  # largest i with growth(i) <= room
        mid = (lo + hi + 1) // 2
        if growth(mid) <= room:
            lo = mid
        else:
            hi = mid - 1
    return lo
