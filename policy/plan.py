"""What one scheduling decision asks the engine to do.

`batch` runs one iteration: a prefill for each job in `prefill_ids` (prompt plus any tokens
generated before a recompute), a decode step for the others. With chunked prefill
(`SchedulerConfig.chunked_prefill_tokens`) `prefill_chunks` maps a prefill job's id to
(start, tokens): this iteration feeds context tokens [start, start + tokens), attending to the
KV of the `start` tokens earlier chunks wrote; only the chunk that reaches the end of the context
produces a token (`produces_token`). A prefill job absent from it (every one when chunking is
off) feeds its whole context from 0. Read these before `on_iteration_done`, which moves the
jobs on. Every batch job's KV is on the
device, or on its way (`wait_for`). `swap_out` and `swap_in` are transfers to start now; they
run concurrently with compute on one link per direction. `recompute` lists jobs whose KV was
dropped. `wait_for` lists jobs whose in-flight transfer must finish before the batch starts:
batch jobs still swapping in, and swap-outs whose room the batch reuses (reactive swapping
puts these on the critical path; proactive swapping tries to keep it empty).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from policy.job import Job


@dataclass(slots=True)
class Plan:
    batch: list[Job] = field(default_factory=list)
    prefill_ids: frozenset[int] = frozenset()
    prefill_chunks: dict[int, tuple[int, int]] = field(default_factory=dict)  # id -> (start, tokens)
    swap_out: list[Job] = field(default_factory=list)
    swap_in: list[Job] = field(default_factory=list)
    recompute: list[Job] = field(default_factory=list)
    wait_for: list[Job] = field(default_factory=list)

    @property
    def is_pure_decode(self) -> bool:
        """True when repeating this plan changes nothing but token counts (skip candidate)."""
        return bool(self.batch) and not (
            self.prefill_ids or self.swap_out or self.swap_in or self.recompute or self.wait_for
        )

    @property
    def may_repeat(self) -> bool:
        """A batch with no transfer, drop or chunk: pure decode, or whole prefills beside decodes,
        which a policy may let repeat as the whole batch decoding (`Scheduler.horizon`)."""
        return bool(self.batch) and not (
            self.swap_out or self.swap_in or self.recompute or self.wait_for or self.prefill_chunks
        )

    def is_prefill(self, job: Job) -> bool:
        return job.id in self.prefill_ids

    def chunk(self, job: Job) -> tuple[int, int]:
        """(start, tokens) this iteration feeds a prefill job."""
        chunk = self.prefill_chunks.get(job.id)
        return chunk if chunk is not None else (0, job.context_tokens)

    def produces_token(self, job: Job) -> bool:
        """False only for a prefill chunk that leaves part of the context for later chunks."""
        chunk = self.prefill_chunks.get(job.id)
        return chunk is None or chunk[0] + chunk[1] == job.context_tokens

    @property
    def prefill_tokens(self) -> list[int]:
        """Tokens each prefill feeds this iteration (its chunk), in batch order."""
        if not self.prefill_chunks:
            return [j.context_tokens for j in self.batch if j.id in self.prefill_ids]
        return [self.chunk(j)[1] for j in self.batch if j.id in self.prefill_ids]

    @property
    def prefill_context_tokens(self) -> list[int]:
        """Tokens of KV each prefill's chunk attends to beyond its own, aligned with
        `prefill_tokens`; empty when every prefill starts at 0."""
        if not self.prefill_chunks:
            return []
        return [self.chunk(j)[0] for j in self.batch if j.id in self.prefill_ids]

    @property
    def decode_context_tokens(self) -> list[int]:
        return [j.context_tokens for j in self.batch if j.id not in self.prefill_ids]

    def token_lists(self) -> tuple[list[int], list[int]]:
        """(`prefill_tokens`, `decode_context_tokens`) in one pass over the batch: an engine
        prices every decision from them, and at batch 256 the two properties' passes cost
        more than the rest of a decision's pricing."""
        prefill_ids = self.prefill_ids
        if not prefill_ids:
            return [], [j.prompt_tokens + j.generated_tokens for j in self.batch]
        if self.prefill_chunks:
            return self.prefill_tokens, self.decode_context_tokens
        prefill: list[int] = []
        decode: list[int] = []
        for job in self.batch:
            (prefill if job.id in prefill_ids else decode).append(job.prompt_tokens + job.generated_tokens)
        return prefill, decode


@dataclass(frozen=True, slots=True)
class Horizon:
    """How long a plan stays the schedule if nothing external happens.

    The engine may run the plan `n` times back to back and report them with one
    `advance(plan, now_s, n, elapsed_s)` call when `n <= max_iterations` and the first `n - 1`
    iterations end within `deadline_s` of the start. Past either bound the policy might decide
    differently (a quantum expires, a job is due for promotion, memory hits a threshold). A plan
    with prefills repeats as its whole batch decoding: its prefill jobs produce their first
    token in the first iteration and decode in the others (only when `max_iterations` > 1).
    `arrivals_wait`: a request that arrives before the horizon ends changes none of its
    decisions, so the engine may run the iterations past it (adding it when it arrives);
    otherwise every one of the n iterations ends strictly before the next arrival.
    """

    max_iterations: int
    deadline_s: float
    arrivals_wait: bool = False
