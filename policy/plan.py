"""What one scheduling decision asks the engine to do.

`batch` runs one iteration: a prefill for each job in `prefill_ids` (prompt plus any tokens
generated before a recompute), a decode step for the others. Every batch job's KV is on the
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

    def is_prefill(self, job: Job) -> bool:
        return job.id in self.prefill_ids

    @property
    def prefill_tokens(self) -> list[int]:
        return [j.context_tokens for j in self.batch if j.id in self.prefill_ids]

    @property
    def decode_context_tokens(self) -> list[int]:
        return [j.context_tokens for j in self.batch if j.id not in self.prefill_ids]


@dataclass(frozen=True, slots=True)
class Horizon:
    """How long a pure-decode plan stays the schedule if nothing external happens.

    The engine may run the plan `n` times back to back and report them with one
    `advance(plan, now_s, n, elapsed_s)` call when `n <= max_iterations` and the first `n - 1`
    iterations end within `deadline_s` of the start. Past either bound the policy might decide
    differently (a quantum expires, a job is due for promotion, memory hits a threshold).
    """

    max_iterations: int
    deadline_s: float
