"""Chunked prefill: batch formation under a per-iteration token budget (a Scheduler mixin).

Sarathi-Serve (Agrawal et al., OSDI'24) and vLLM V1 split prefills into chunks so that a long
prompt never stalls the decodes batched with it for a whole prefill. With
`SchedulerConfig.chunked_prefill_tokens` set (or a policy's `default_chunked_prefill_tokens`),
`Scheduler` forms batches here instead of in `Scheduler._form_batch`. The walk is the same
(the policy's priority order, `max_batch_size`, the same KV placement and eviction rules,
proactive uploads keeping their slot); what differs:

- Every iteration feeds at most `budget` tokens: one per decode, and for a job in prefill
  (`Job.in_prefill`) a chunk of min(its pending tokens, budget left). The walk stops when the
  budget is spent. `max_prefill_tokens` is not used. Which jobs come first is the policy's
  order: `sarathi` walks decodes first; an MLFQ walks by level, so a top-level prefill chunk
  can take the budget ahead of lower-level decodes.
- A prefill's first chunk claims KV for its whole context (prompt plus tokens generated
  before a recompute), not just for the chunk (vLLM allocates chunk by chunk). The reason is
  progress: KV is dropped only to keep a running job going, and with per-chunk growth a job
  part-way through a prefill counts as running. Under MLFQ, whose priorities change mid-prefill,
  two such jobs dropped each other's KV in turn and neither produced a token again (a livelock
  found by tests/policy/test_policy_chunked.py). With the room claimed up front, a partly
  prefilled job never needs room to finish its prefill, so every drop is made by a job that
  produces a token in that iteration, or by the stall walk's job, which then holds all the room
  its prefill needs. (`Job.kv_tokens` is the next chunk's start.)
- Head-of-line: after a job without KV fails to get room, or after a victim's KV is dropped,
  no further job without KV joins this decision; a partly prefilled job (it has KV) goes on
  like a running one, and if it ran last iteration it may evict to grow, as a decode may.
- The plan records each prefill's chunk in `plan.prefill_chunks` (start, tokens); `advance`
  adds a chunk's tokens to `kv_tokens` and produces a token only with the last chunk.
"""

from __future__ import annotations

from policy.job import KVLocation
from policy.placement import HOLDS, RUNS, SECURED, WAITING
from policy.plan import Plan

_NONE, _DEVICE = KVLocation.NONE, KVLocation.DEVICE
_SWAPPING_OUT = KVLocation.SWAPPING_OUT


class ChunkedBatching:
    """Mixed into `Scheduler`; uses its walk, kv and placement."""

    def _form_chunked_batch(self, plan: Plan) -> tuple[set[int], set[int]]:
        cfg, kv = self.config, self.kv
        max_batch, budget = cfg.max_batch_size, self.chunk_budget_tokens
        reserve_tokens = cfg.max_seq_tokens if self.reserve_max_seq else 0
        in_flight, batch, chunks = self._in_flight, plan.batch, plan.prefill_chunks
        batch_ids: set[int] = set()
        prefill_ids: set[int] = set()
        evicted: set[int] = set()
        num_tokens = 0
        num_taken = 0  # batch jobs plus uploads holding a slot
        self._begin_walk()
        for job in self.walk():
            if num_taken >= max_batch or num_tokens >= budget:
                break
            location = job.kv
            if location is _SWAPPING_OUT or job.id in in_flight or job.id in evicted:
                continue
            fresh = location is _NONE
            if fresh and self.prefill_closed:
                continue
            prefill = job.in_prefill
            take = min(job.pending_tokens, budget - num_tokens) if prefill else 1
            if location is _DEVICE:
                # as in `_form_batch`: compute never reuses blocks swap-outs still occupy
                if not (self._defer_compute and kv.releasing_blocks) and kv.try_grow(
                        job, max(job.context_tokens, reserve_tokens)):
                    outcome = SECURED
                else:
                    outcome = self._secure_device_kv(job, plan, batch_ids, evicted)
                if outcome is WAITING:
                    num_taken += 1
                    self.walk_state.held_ids.add(job.id)
                if outcome is not SECURED:
                    continue
            else:
                taken = self._take_off_device(job, location, fresh, plan, batch_ids, evicted)
                if taken is not RUNS:
                    num_taken += taken is HOLDS
                    continue
            batch.append(job)
            batch_ids.add(job.id)
            num_taken += 1
            num_tokens += take
            if prefill:
                prefill_ids.add(job.id)
                chunks[job.id] = (job.kv_tokens, take)
        return batch_ids, prefill_ids
