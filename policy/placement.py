"""KV placement: making room on the device, evictions and proactive swaps (a Scheduler mixin).

Rules (DESIGN.md, "As built"), the same in every swap mode; the modes differ only in how a
victim's KV leaves the device (to the host, or dropped for recompute) and how it comes back:
- Room comes from free blocks, else from evicting strictly lower-priority jobs outside the
  batch, lowest first.
- Work is destroyed only to keep a running job going: a job that ran in the last iteration and
  must grow may evict by dropping a victim's KV when the host cannot take it, as vLLM does. Any
  other job (new, on the host, dropped earlier) may only evict victims whose KV can leave
  without being lost: to the host when it has room, or, in recompute mode, by dropping it
  (that is how recompute mode moves KV). When the replica would otherwise stall (nothing
  running, nothing in the batch, no transfer in flight), any job may drop, so that something
  always runs. Without this rule MLFQ under overload reorders its started jobs by dropping each
  other's KV and spends its time re-prefilling: saturated throughput fell from 1.5 to 0.26
  req/s (OPT-13B / A100-80GB, 1,000 requests at once).
- After a victim's KV is dropped, prefill admission closes for this decision, as in vLLM: a new
  prefill does not take the room a preemption just made.
- Proactive mode never makes compute wait for a copy: a batch job whose room is still being
  vacated by swap-outs in flight sits this iteration out, keeping its batch slot, and joins
  when the room is free (`SECURED`, `WAITING`, `REFUSED`). Waiting for those swap-outs instead
  idled the GPU 15 % of a memory-bound run (183 s of 1,195, OPT-13B / A100-40GB at 1.1 req/s),
  and a preemptive policy must not spend capacity that FCFS keeps.
- Proactive mode (paper section 4.2) offloads the resident jobs with the largest ENST while
  fewer than `swap_reserve_fraction` of device blocks are free, and uploads host jobs with the
  smallest ENST while the reserve stays free.
"""

from __future__ import annotations

import math
from collections.abc import Iterator

from policy.job import Job, KVLocation
from policy.plan import Plan

_DEVICE, _HOST = KVLocation.DEVICE, KVLocation.HOST

# What `_secure_device_kv` achieved for a job.
REFUSED = 0  # no room can be made now: the job waits without a slot
SECURED = 1  # its room is claimed: it runs (or, from the host, uploads)
WAITING = 2  # its room is being vacated by swap-outs in flight: it keeps a slot, runs later

# What a batch walk does with a job whose KV is off the device (`_take_off_device`).
RUNS = 0  # it runs in this batch
HOLDS = 1  # it holds a batch slot without running (uploading, or its room is being vacated)
OUT = 2  # it waits without a slot


class KVPlacement:
    """Mixed into `Scheduler`; uses its kv, indexes, swap mode and ranks."""

    # -- the defaults a policy may refine (MLFQ: policy.enst, `_may_evict_for`) ----------------
    def _enst_key(self, job: Job, now_us: int) -> float | tuple:
        """Order for proactive swapping: offload the largest first, upload the smallest; ties
        go by rank (the lower-priority job is offloaded first, the higher one uploaded first).
        This is the definition; `_offload_order` and `_upload_order` find the same jobs fast."""
        return self._rank(job)

    def _offload_order(self, batch_ids: set[int], now_us: int) -> Iterator[Job]:
        """Device jobs outside the batch, largest (ENST, rank) first. Lazy: the caller takes a
        few and swaps each out as it goes (a swap-out changes no other job's ENST)."""
        in_flight = self._in_flight
        # The caller's swap-outs leave the index as it is until they land.
        return (j for j in reversed(self.locations.device)
                if j.kv is _DEVICE and j.id not in batch_ids and j.id not in in_flight)

    def _upload_order(self, now_us: int) -> Iterator[Job]:
        """Host jobs, smallest (ENST, rank) first; lazy like `_offload_order`."""
        return (j for j in self.locations.host if j.kv is _HOST)

    def _may_evict_for(self, job: Job) -> bool:
        """Whether `job` may take room from lower-priority jobs (MLFQ: not a promoted job that is
        off the device)."""
        return True

    # -- room and evictions --------------------------------------------------------------------
    def _begin_walk(self) -> None:
        """Reset what one batch walk builds up (both walks call it first)."""
        self.prefill_closed = False
        self.walk_state.begin()

    def _secure_device_kv(self, job: Job, plan: Plan, batch_ids: set[int], evicted: set[int]) -> int:
        """Make room for `job`'s next iteration on the device and claim it (see the module
        docstring): SECURED, WAITING or REFUSED."""
        kv = self.kv
        target = self._target_tokens(job.context_tokens)
        location = job.kv
        if location is KVLocation.DEVICE or location is KVLocation.SWAPPING_IN:
            need = kv.extra_blocks(job, target)
        else:  # NONE (prefill) or HOST (swap in, then grow)
            need = kv.blocks_for(target)
        # Compute may not reuse blocks that swap-outs still occupy (proactive mode); an upload
        # may, since the engine starts it after those swap-outs land.
        compute_now = self._defer_compute and location is not KVLocation.HOST
        state = self.walk_state
        if state.room_closed and (location is KVLocation.NONE or location is KVLocation.HOST):
            return REFUSED
        if location is KVLocation.NONE and self.watermark_blocks and not state.may_drop_any:
            # vLLM admits a request only if a watermark of free blocks stays free after it
            if need + self.watermark_blocks > kv.device_plannable_blocks:
                return REFUSED
        elif not state.may_drop_any and not self._may_evict_for(job):
            # Promoted and off the device (policy.mlfq): free room only, leaving the reserve
            # (unless the job alone needs more). Until it fits, the room that frees is its
            # first: no later job of this walk takes new room, or a stream of smaller ones
            # could keep it out for ever.
            if need + min(self.reserve_blocks, kv.capacity.device_blocks - need) > kv.device_plannable_blocks:
                state.close_room(self._rank(job))
                self.prefill_closed = True
                return REFUSED
        elif need > kv.device_plannable_blocks and not self._make_room(job, need, plan, batch_ids, evicted):
            return REFUSED
        if compute_now and need > 0 and need > kv.compute_room_blocks(state.swap_in_blocks):
            kv.promise(need)
            return WAITING
        self._claim(job, target, location, plan)
        return SECURED

    def _take_off_device(self, job: Job, location: KVLocation, fresh: bool, plan: Plan, batch_ids: set[int],
                         evicted: set[int]) -> int:
        """A job whose KV is not on the device (new, on the host, or on its way in), shared by
        both batch walks: RUNS in this batch, HOLDS a slot without running, or is OUT."""
        # A failed eviction scan bounds the room of every later job that must push its victims
        # out (`_make_room`), as all of these must. A job needing more than that is refused, as
        # `_secure_device_kv` would refuse it (its need exceeds every room that checks), but
        # without its calls: under memory pressure a walk passes hundreds of host jobs a
        # decision, each refused (0.4-0.6 ms a skip-join decision with ~200 jobs on the host, in
        # the simulator and the live engine alike).
        bound = self.walk_state.room_bound[True]
        if (bound < math.inf and (fresh or location is KVLocation.HOST) and not self.walk_state.may_drop_any
                and self.kv.blocks_for(self._target_tokens(job.context_tokens)) > bound
                and self._may_evict_for(job)):
            self.prefill_closed = self.prefill_closed or fresh
            return OUT
        if self._defer_compute and not fresh:
            # Proactive: never make compute wait for an upload. A job on the host starts its
            # swap-in now and joins a later batch; one already on its way is skipped. Both
            # keep their batch slot, so lower-priority jobs do not fill it only to be evicted
            # when the upload lands.
            if location is KVLocation.SWAPPING_IN or self._secure_device_kv(job, plan, batch_ids, evicted) is not REFUSED:
                return HOLDS
            return OUT
        outcome = self._secure_device_kv(job, plan, batch_ids, evicted)
        if outcome is SECURED:
            return RUNS
        self.prefill_closed = self.prefill_closed or fresh
        return HOLDS if outcome is WAITING else OUT

    def _claim(self, job: Job, target: int, location: KVLocation, plan: Plan) -> None:
        """Take the room for `job` (its upload first, if it is on the host)."""
        kv = self.kv
        if location is KVLocation.HOST:
            kv.start_swap_in(job)
            plan.swap_in.append(job)
            self.walk_state.swap_in_blocks += job.device_blocks
        kv.grow(job, target)
        if job.kv is not location:
            self._track(job, location)

    def _make_room(self, job: Job, need: int, plan: Plan, batch_ids: set[int], evicted: set[int]) -> bool:
        """Evict strictly lower-priority device jobs outside the batch, lowest first, until
        `need` blocks are plannable; none is evicted unless enough can be."""
        kv = self.kv
        if not self.preemptive or not self._may_evict_for(job):
            return False
        # Only a running job that must grow may destroy work it could keep (drop a victim's KV
        # when the host is full), as in vLLM.
        state = self.walk_state
        push_only = not state.may_drop_any and not (job.kv is KVLocation.DEVICE and job.id in self._running)
        if push_only and not self.admission_evicts:  # vLLM: a waiting job waits for free room
            return False
        # The walk goes down in priority, so a later job's victims are a subset of an earlier
        # one's, scanned in the same order: the room a failed scan found bounds every later
        # job's, until an eviction frees room (saturated runs: one failure a decision instead
        # of a scan per host job; tests/policy/test_policy_room_bound.py).
        if need > state.room_bound[push_only]:
            return False
        if push_only and self.swap_mode == "recompute" and self.chunk_budget_tokens is not None:
            # With chunked prefill a new job's first chunk may produce no token, so a drop made
            # for it buys no progress, and two jobs could drop each other's work for ever
            # (tests/policy/test_policy_chunked.py found it); it waits for free room instead.
            return False
        checks_host = push_only and self.swap_mode != "recompute"
        rank, room, victims, host_room = self._rank(job), kv.device_plannable_blocks, [], kv.host_free_blocks
        for victim in reversed(self.locations.device):
            if room >= need or self._rank(victim) <= rank:
                break
            if victim.kv is not KVLocation.DEVICE or victim.id in batch_ids or victim.id in self._in_flight:
                continue
            if checks_host:
                host_blocks = kv.blocks_for(victim.kv_tokens)
                if host_blocks > host_room:
                    continue
                host_room -= host_blocks
            victims.append(victim)
            room += victim.device_blocks
        if room < need:
            state.room_bound[push_only] = room
            return False
        for victim in victims:
            self._evict(victim, plan)
            evicted.add(victim.id)
        state.reset_room_bound()
        return True

    def _evict(self, job: Job, plan: Plan) -> None:
        if self.swap_mode != "recompute" and self.kv.can_swap_out(job):
            self.kv.start_swap_out(job)
            plan.swap_out.append(job)
        else:  # recompute mode, or the host is full too
            self.kv.drop(job)
            job.num_recomputes += 1
            plan.recompute.append(job)
            self.prefill_closed = True  # no prefill takes the room a preemption just made
        self._track(job, KVLocation.DEVICE)

    def _proactive_swaps(self, plan: Plan, batch_ids: set[int], now_us: int) -> None:
        kv = self.kv
        # The first victim in ENST order stops the offloads if it cannot go to the host; when no
        # candidate could (the host is full), finding it is skipped: the same outcome, and under
        # overload the order's walk was a third of every decision.
        if kv.device_plannable_blocks < self.reserve_blocks and kv.can_swap_out_any(
                reversed(self.locations.device), batch_ids, self._in_flight):
            for victim in self._offload_order(batch_ids, now_us):
                if not kv.can_swap_out(victim):
                    break
                kv.start_swap_out(victim)
                plan.swap_out.append(victim)
                self._track(victim, KVLocation.DEVICE)
                if kv.device_plannable_blocks >= self.reserve_blocks:
                    break
        # Every host job holds at least one block: below that much room none can come back.
        if self.locations.num_on_host and not self.walk_state.room_closed and kv.device_plannable_blocks - self.reserve_blocks >= 1:
            for job in self._upload_order(now_us):
                if kv.device_plannable_blocks - job.host_blocks < self.reserve_blocks:
                    break
                kv.start_swap_in(job)
                plan.swap_in.append(job)
                self._track(job, KVLocation.HOST)
                if kv.device_plannable_blocks - self.reserve_blocks < 1:
                    break
