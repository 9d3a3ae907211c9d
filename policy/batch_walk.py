"""The batch walk: `Scheduler._form_batch`, one decision's batch in priority order (a Scheduler
mixin; with chunked prefill `policy.chunked` forms batches instead).

The policy's `walk` yields jobs in priority order; the walk stops when the batch is full. A
job that needs a prefill joins while the prefill-token budget allows (one prefill may exceed it
alone); after the first prefill that does not fit, prefill admission closes for this decision
(head-of-line, as in vLLM and Orca), and only started jobs can still join. A resident job that
grows in place is the hot path (inlined below); every other job goes through
`policy.placement`'s rules. Slots held by jobs waiting for room are lent to resident jobs
further down (`_lend_held_slots`).
"""

from __future__ import annotations

from collections.abc import Iterable

from policy.job import Job, KVLocation
from policy.placement import HOLDS, RUNS, SECURED, WAITING
from policy.plan import Plan

_NONE, _DEVICE = KVLocation.NONE, KVLocation.DEVICE
_SWAPPING_OUT = KVLocation.SWAPPING_OUT


class BatchWalk:
    """Mixed into `Scheduler`; uses its kv, indexes, placement rules and ranks."""

    def _form_batch(self, plan: Plan) -> tuple[set[int], set[int]]:
        """Walk jobs in priority order into `plan` (see the module docstring). The hot path (a
        resident job that grows in place) is inlined: policy_bench.py times this loop."""
        cfg, kv = self.config, self.kv
        max_batch, max_prefill_tokens = cfg.max_batch_size, cfg.max_prefill_tokens
        reserve_tokens = cfg.max_seq_tokens if self.reserve_max_seq else 0
        block_tokens, device_blocks = kv.capacity.block_size_tokens, kv.capacity.device_blocks
        defer_compute = self._defer_compute
        in_flight, batch = self._in_flight, plan.batch
        batch_ids: set[int] = set()
        prefill_ids: set[int] = set()
        evicted: set[int] = set()
        prefill_tokens = 0
        num_taken = 0  # batch jobs plus uploads holding a slot
        self._begin_walk()
        state = self.walk_state
        last = None  # the last job the walk visited: lending starts after it
        jobs: Iterable[Job] = self.walk()
        residents_only = False
        # Only `policy.placement`'s calls below close the room or evict, so the walk re-reads
        # these two after each of them, not per job (the hot path visits every batch job).
        stopped, watched = False, bool(in_flight)
        while True:
            for job in jobs:
                if num_taken >= max_batch or stopped:
                    break
                last = job
                location = job.kv
                if location is _DEVICE:
                    if watched and (job.id in in_flight or job.id in evicted):
                        continue
                    target = job.prompt_tokens + job.generated_tokens
                    if target < reserve_tokens:  # not max(): a call per job costs more
                        target = reserve_tokens
                    # the hot path, inlined (`KVSpace.try_grow` included): its KV already holds the
                    # next token, or it grows in place from free blocks (with swap-outs in flight,
                    # proactive mode checks that compute does not need their blocks)
                    held = job.device_blocks
                    if held * block_tokens < target:
                        extra = -(-target // block_tokens) - held
                        if (defer_compute and kv.releasing_blocks) or extra > device_blocks - kv.device_used_blocks:
                            num_taken += self._take_resident(job, plan, batch_ids, evicted)
                            stopped, watched = state.room_closed and not residents_only, bool(in_flight or evicted)
                            continue
                        kv.device_used_blocks += extra
                        job.device_blocks = held + extra
                    batch.append(job)
                    batch_ids.add(job.id)
                    num_taken += 1
                    continue
                if location is _SWAPPING_OUT or job.id in in_flight or job.id in evicted:
                    continue
                fresh = location is _NONE
                if fresh and prefill_tokens and prefill_tokens + job.context_tokens > max_prefill_tokens:
                    self.prefill_closed = True
                    if state.budget_refused is None:
                        state.budget_refused = job
                    continue
                taken = self._take_off_device(job, location, fresh, plan, batch_ids, evicted)
                stopped, watched = state.room_closed and not residents_only, bool(in_flight or evicted)
                if taken is not RUNS:
                    num_taken += taken is HOLDS
                    continue
                batch.append(job)
                batch_ids.add(job.id)
                num_taken += 1
                if fresh:
                    prefill_ids.add(job.id)
                    prefill_tokens += job.context_tokens
            if state.room_closed and not residents_only and num_taken < max_batch:
                # Once the room is closed only resident jobs can still join: the walk goes on
                # over the device index from where it stopped (rank order is the walk's order)
                # instead of visiting every queued job, each refused at once (thousands on the
                # host: ~50 ms a decision in policy_bench.py). A list: a drop changes the index.
                jobs, residents_only = list(self.locations.device.after(state.room_closed_rank)), True
                stopped = False
                continue
            break
        if num_taken > len(batch) and len(batch) < max_batch:
            # A resident job the walks visited and left out cannot grow now, unless a drop
            # freed blocks after it was refused: lending then starts from the first job.
            start = None if plan.recompute or last is None else self._rank(last)
            self._lend_held_slots(plan, batch_ids, evicted, start)
        return batch_ids, prefill_ids

    def _take_resident(self, job: Job, plan: Plan, batch_ids: set[int], evicted: set[int]) -> int:
        """A resident job that must grow beyond free room: secure it (policy.placement) and file
        the outcome; returns the batch slots it takes (1 in the batch or WAITING, else 0)."""
        outcome = self._secure_device_kv(job, plan, batch_ids, evicted)
        if outcome is SECURED:
            plan.batch.append(job)
            batch_ids.add(job.id)
            return 1
        if outcome is WAITING:
            self.walk_state.held_ids.add(job.id)
            return 1
        if self.self_preempts and job.id in self._running:
            # vLLM: nobody behind it to preempt, so it preempts itself
            self._evict(job, plan)
            evicted.add(job.id)
        return 0

    def _lend_held_slots(self, plan: Plan, batch_ids: set[int], evicted: set[int], after_rank: int | None) -> None:
        """Slots held by jobs whose room or KV is still in transit go, for this iteration only,
        to the next resident jobs in priority order that can grow from free room: the GPU keeps
        a full batch while the link works (an empty batch behind 16 uploads idled a
        memory-bound skip-join run a fifth of the time). Lending takes no room from anyone:
        these jobs hold their KV already, and none is evicted for them. Candidates are the
        resident jobs ranked after `after_rank` (all of them for None)."""
        kv, batch, in_flight = self.kv, plan.batch, self._in_flight
        reserve_tokens = self.config.max_seq_tokens if self.reserve_max_seq else 0
        block_tokens, max_batch = kv.capacity.block_size_tokens, self.config.max_batch_size
        # The room a lent job may grow into: free blocks, and in proactive mode no more than
        # compute may take now (`compute_room_blocks`); each growth takes from both alike, so
        # one count, kept here, stands for the two checks per job (the scan visits hundreds).
        room = kv.capacity.device_blocks - kv.device_used_blocks
        if self._defer_compute:
            room = min(room, kv.compute_room_blocks(self.walk_state.swap_in_blocks))
        for job in self.locations.device if after_rank is None else self.locations.device.after(after_rank):
            if len(batch) >= max_batch:
                return
            if job.kv is not _DEVICE or job.id in batch_ids or job.id in in_flight or job.id in evicted:
                continue
            target = job.prompt_tokens + job.generated_tokens
            if target < reserve_tokens:
                target = reserve_tokens
            need = -(-target // block_tokens) - job.device_blocks
            if need > room:
                continue
            if need > 0:
                kv.grow(job, target)
                room -= need
            batch.append(job)
            batch_ids.add(job.id)
