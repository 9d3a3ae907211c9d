"""The cost estimates a policy needs, as a protocol that `profiles/` implements.

Skip-join needs the predicted prefill time of a new job (paper section 4.1) and MLFQ the
shortest iteration (q_1, same section); proactive swapping needs the time to move a job's KV
(section 4.2, ENST). Engines need more (`iteration_s`,
`decode_iterations_s`); that wider protocol lives here too so that both engines depend on one
definition.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal, Protocol, runtime_checkable

SwapDirection = Literal["out", "in"]


@runtime_checkable
class CostEstimate(Protocol):
    def prefill_s(self, prompt_tokens: int) -> float:
        """Time of one iteration that prefills a single prompt of this length."""
        ...

    def swap_s(self, tokens: int, direction: SwapDirection) -> float:
        """Time to move `tokens` tokens of KV device->host ("out") or host->device ("in")."""
        ...

    def min_iteration_s(self) -> float:
        """The shortest iteration the engine runs (one job, shortest context): the paper's q_1."""
        ...


@runtime_checkable
class CostModel(CostEstimate, Protocol):
    kv_bytes_per_token: int

    def iteration_s(
        self, prefill_tokens: Sequence[int], decode_context_tokens: Sequence[int]
    ) -> float:
        """One iteration: prefills of these prompt lengths plus decodes at these contexts."""
        ...

    def decode_iterations_s(self, decode_context_tokens: Sequence[int], num_iterations: int):
        """Durations (a float64 array) of `num_iterations` back-to-back pure decode iterations,
        each job's context growing by one token per iteration. Element i must equal
        `iteration_s([], [c + i for c in decode_context_tokens])` bit for bit."""
        ...
