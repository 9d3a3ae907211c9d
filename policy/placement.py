"""KV placement: making room on the device, evictions and proactive swaps (a Scheduler mixin).

Rules (DESIGN.md, "As built"):
- Room comes from free blocks, else from evicting strictly lower-priority jobs outside the
  batch, lowest first: swap out (proactive, reactive) or drop the KV (recompute). When device
  and host are both full, a victim's KV is dropped and it recomputes later (`num_recomputes`).
- Work is destroyed only to keep a running job going: a job that ran in the last iteration and
  must grow may evict by dropping (recompute), as vLLM does. Any other job (new, on the host,
  dropped earlier) may only evict jobs the host can take (swap-outs), and in recompute mode
  waits for free room, unless the replica would otherwise stall (nothing running, nothing in
  the batch, no transfer in flight: then it may drop, so that something always runs). Without this rule MLFQ under overload reorders its started jobs by
  dropping each other's KV and spends its time re-prefilling: saturated throughput fell from
  1.5 to 0.26 req/s (OPT-13B / A100-80GB, 1,000 requests at once).
- After a victim's KV is dropped, prefill admission closes for this decision, as in vLLM: a new
  prefill does not take the room a preemption just made.
- Proactive mode (paper section 4.2) offloads the resident jobs with the largest ENST while
  fewer than `swap_reserve_fraction` of device blocks are free, and uploads host jobs with the
  smallest ENST while the reserve stays free.
"""

from __future__ import annotations

import math

from policy.job import Job, KVLocation
from policy.plan import Plan


class KVPlacement:
    """Mixed into `Scheduler`; uses its kv, indexes, swap mode and ranks."""

    def _secure_device_kv(self, job: Job, plan: Plan, batch_ids: set[int], evicted: set[int]) -> bool:
        """Make room for `job`'s next iteration on the device and claim it; False if impossible."""
        kv = self.kv
        target = self._target_tokens(job.context_tokens)
        location = job.kv
        if location is KVLocation.DEVICE or location is KVLocation.SWAPPING_IN:
            need = kv.extra_blocks(job, target)
            if need <= kv.device_plannable_blocks:  # the common case: grow in place
                kv.grow(job, target)
                return True
        else:  # NONE (prefill) or HOST (swap in, then grow)
            need = kv.blocks_for(target)
        if need > kv.device_plannable_blocks:
            if not self.preemptive:
                return False
            # Only a running job that must grow may destroy work (drop a victim's KV), as in
            # vLLM. Any other job (new, on the host, dropped earlier) may only push victims to
            # the host, and waits when the host cannot take them.
            push_only = not self._may_drop_any and not (location is KVLocation.DEVICE and job.id in self._running)
            if push_only and self.swap_mode == "recompute":
                return False
            # The walk goes down in priority, so a later job's victims are a subset of an
            # earlier one's, scanned in the same order: the room a failed scan found bounds
            # every later job's, until an eviction frees room (saturated runs: one failure a
            # decision instead of a scan per host job; tests/policy/test_policy_room_bound.py).
            if need > self._room_bound[push_only]:
                return False
            # Strictly lower-priority device jobs outside the batch, lowest first, until the
            # room suffices; none is evicted unless enough can be.
            rank, room, victims, host_room = self._rank(job), kv.device_plannable_blocks, [], kv.host_free_blocks
            for v in reversed(self._device):
                if room >= need or self._rank(v) <= rank:
                    break
                if v.kv is not KVLocation.DEVICE or v.id in batch_ids or v.id in self._in_flight:
                    continue
                if push_only:
                    host_blocks = kv.blocks_for(v.kv_tokens)
                    if host_blocks > host_room:
                        continue
                    host_room -= host_blocks
                victims.append(v)
                room += v.device_blocks
            if room < need:
                self._room_bound[push_only] = room
                return False
            for victim in victims:
                self._evict(victim, plan)
                evicted.add(victim.id)
            self._reset_room_bound()
        if location is KVLocation.HOST:
            kv.start_swap_in(job)
            plan.swap_in.append(job)
        kv.grow(job, target)
        if job.kv is not location:
            self._track(job, location)
        return True

    def _reset_room_bound(self) -> None:
        """No job's room is bounded yet (a new walk, or an eviction freed room)."""
        self._room_bound = {True: math.inf, False: math.inf}  # keyed by push-only

    def _evict(self, job: Job, plan: Plan) -> None:
        if self.swap_mode != "recompute" and self.kv.can_swap_out(job):
            self.kv.start_swap_out(job)
            plan.swap_out.append(job)
        else:  # recompute mode, or the host is full too
            self.kv.drop(job)
            job.num_recomputes += 1
            plan.recompute.append(job)
            self._prefill_closed = True  # no prefill takes the room a preemption just made
        self._track(job, KVLocation.DEVICE)

    def _proactive_swaps(self, plan: Plan, batch_ids: set[int], now_us: int) -> None:
        kv = self.kv
        if kv.device_plannable_blocks < self.reserve_blocks:
            for victim in self._offload_order(batch_ids, now_us):
                if not kv.can_swap_out(victim):
                    break
                kv.start_swap_out(victim)
                plan.swap_out.append(victim)
                self._track(victim, KVLocation.DEVICE)
                if kv.device_plannable_blocks >= self.reserve_blocks:
                    break
        # Every host job holds at least one block: below that much room none can come back.
        if self._num_on_host and kv.device_plannable_blocks - self.reserve_blocks >= 1:
            for job in self._upload_order(now_us):
                if kv.device_plannable_blocks - job.host_blocks < self.reserve_blocks:
                    break
                kv.start_swap_in(job)
                plan.swap_in.append(job)
                self._track(job, KVLocation.HOST)
                if kv.device_plannable_blocks - self.reserve_blocks < 1:
                    break
