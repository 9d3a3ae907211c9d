"""A cost model that replays a measured run's clock: the simulator's k-th iteration costs what the
wrapped model prices it at, times the k-th of a run's measured slowdowns.

`fastserve validate` simulates the trace twice: once with the profile alone (the fidelity
check), once with this model over the live run's own per-iteration slowdowns (measured over
priced, in the order the live iterations ran; analysis.validation.replay_factors). On a machine
whose speed drifts between the profile step and the live run (a 2-core VM: the calibrated
forward scale of one model ranged 0.62-1.21 over ten runs of one session), the first error
mixes the drift with the simulator's own; the second leaves only the simulator's scheduling,
queueing and batching, since the live run's speed, its slow episodes and their order in time are
given. The factors follow the iteration index, not time, as the profile's clock noise does: the
same index gets the same factor with and without event skipping, so skipping stays exact.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


class ReplayedClock:
    """`cost` with its k-th iteration (`noisy_iteration_s`, as the simulator asks) priced at
    `cost.iteration_s(...)` times `factors[k % len(factors)]`, the whole iteration scaled. Every
    other attribute is the wrapped model's."""

    def __init__(self, cost, factors: Sequence[float]) -> None:
        values = np.asarray(factors, dtype=np.float64)
        if values.ndim != 1 or len(values) == 0 or not np.all(np.isfinite(values)) or np.any(values <= 0):
            raise ValueError("replayed clock: factors must be a non-empty list of finite numbers > 0")
        self._cost = cost
        self._factors = values
        self._factor_list = values.tolist()  # python floats: the scalar path multiplies as numpy does
        # the simulator reads the noise's smallest factor to bound a skip (sim/replica.py)
        self.forward_noise = (float(values.min()), float(values.max()))

    def __getattr__(self, name: str):
        return getattr(self._cost, name)

    def for_policy(self, policy: str) -> ReplayedClock:
        for_policy = getattr(self._cost, "for_policy", None)
        return ReplayedClock(for_policy(policy), self._factors) if for_policy is not None else self

    def noisy_iteration_s(self, prefill_tokens: Sequence[int], decode_context_tokens: Sequence[int],
                          index: int, prefill_context_tokens: Sequence[int] = ()) -> float:
        args = (prefill_tokens, decode_context_tokens) + ((prefill_context_tokens,) if prefill_context_tokens else ())
        return self._cost.iteration_s(*args) * self._factor_list[index % len(self._factor_list)]

    def noisy_decode_iterations_s(self, decode_context_tokens: Sequence[int], num_iterations: int,
                                  first_index: int) -> np.ndarray:
        """Element i equals `noisy_iteration_s([], [c + i for c in ctx], first_index + i)` bit for
        bit: the wrapped model's decode run is (its contract), and one float64 product is one."""
        values = np.asarray(self._cost.decode_iterations_s(decode_context_tokens, num_iterations), dtype=np.float64)
        index = np.arange(first_index, first_index + num_iterations, dtype=np.int64) % len(self._factors)
        return values * self._factors[index]
