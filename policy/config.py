"""Scheduler configuration: one validated dataclass, paper defaults, no I/O.

Where the FastServe paper and its official code disagree, each can be selected:
- base quantum q_1: `"auto"` (default) is the paper's rule, the minimum iteration time, taken
  from the cost estimate when the policy is built (`CostEstimate.min_iteration_s`); the code
  uses a constant 10 ms (`base_quantum_s=0.01`), shorter than any iteration of the bundled A100
  profiles, so no job could join level 0 there and a promoted job lost level 0 after one token.
- quantum growth: 2 (both).
- starvation: alpha = 3 s (code; the paper uses 300 ms, tied to the SLO). Checks run on the
  policy's clock, every `starvation_check_s` (0: at every decision), so alpha means the same in
  both engines; the code's "every 1000 iterations" is `starvation_check_iterations=1000`.
- promotion: `"paper"` puts a starved job back at the top with a fresh quantum, as the paper
  says; `"quantum"` (default) keeps it there until it has received the quantum of the level it
  was promoted from, then returns it to that level (see policy/mlfq.py for why).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

SWAP_MODES = ("proactive", "reactive", "recompute")
PROMOTIONS = ("quantum", "paper")
AUTO = "auto"  # base_quantum_s: the paper's q_1, the cost model's shortest iteration


@dataclass(frozen=True, slots=True)
class SchedulerConfig:
    device_kv_tokens: int = 65_536
    host_kv_tokens: int = 262_144
    block_size_tokens: int = 1
    max_batch_size: int = 16
    max_prefill_tokens: int = 2048  # per-iteration prefill budget (the artifact's 2048 tokens/batch)
    # Chunked prefill (Sarathi-Serve, vLLM V1): every iteration feeds at most this many tokens,
    # one per decode plus prefill chunks; None: off (a prompt is prefilled in one iteration,
    # under max_prefill_tokens). When on, max_prefill_tokens is not used.
    chunked_prefill_tokens: int | None = None
    max_seq_tokens: int = 2048  # model context limit; longer requests are rejected by engines
    swap: str | None = None  # None: the policy's own default mode
    swap_reserve_fraction: float = 0.05  # device KV kept free for bursts (proactive only)
    base_quantum_s: float | str = AUTO  # q_1 in seconds, or "auto" (see the module docstring)
    quantum_growth: float = 2.0
    num_levels: int = 10
    demotion_levels: int = 1
    alpha_s: float = 3.0
    starvation_check_s: float = 0.0  # period of starvation checks on the policy's clock; 0: every decision
    starvation_check_iterations: int | None = None  # the artifact's period in iterations, instead
    promotion: str = "quantum"

    def __post_init__(self) -> None:
        positive = {
            "device_kv_tokens": self.device_kv_tokens,
            "block_size_tokens": self.block_size_tokens,
            "max_batch_size": self.max_batch_size,
            "max_prefill_tokens": self.max_prefill_tokens,
            "max_seq_tokens": self.max_seq_tokens,
            "num_levels": self.num_levels,
            "demotion_levels": self.demotion_levels,
        }
        if self.starvation_check_iterations is not None:
            positive["starvation_check_iterations"] = self.starvation_check_iterations
        for name, value in positive.items():
            if not _is_int(value) or value <= 0:
                raise ValueError(f"{name} must be a positive integer, got {value!r}")
        if self.chunked_prefill_tokens is not None and (
                not _is_int(self.chunked_prefill_tokens) or self.chunked_prefill_tokens <= 0):
            raise ValueError(
                f"chunked_prefill_tokens must be a positive integer or None (off), got {self.chunked_prefill_tokens!r}")
        if not _is_int(self.host_kv_tokens) or self.host_kv_tokens < 0:
            raise ValueError(f"host_kv_tokens must be an integer >= 0, got {self.host_kv_tokens!r}")
        if self.base_quantum_s != AUTO and (not _is_real(self.base_quantum_s) or not self.base_quantum_s > 0
                                            or not math.isfinite(self.base_quantum_s)):
            raise ValueError(f"base_quantum_s must be a positive number of seconds or 'auto', got {self.base_quantum_s!r}")
        for name in ("swap_reserve_fraction", "quantum_growth", "alpha_s", "starvation_check_s"):
            value = getattr(self, name)
            if not _is_real(value) or not math.isfinite(value):
                raise ValueError(f"{name} must be a finite number, got {value!r}")
        if self.device_kv_tokens < self.block_size_tokens:
            raise ValueError(
                f"device_kv_tokens ({self.device_kv_tokens}) is smaller than one block "
                f"({self.block_size_tokens} tokens)"
            )
        if self.swap is not None and self.swap not in SWAP_MODES:
            raise ValueError(f"swap must be one of {', '.join(SWAP_MODES)}, got {self.swap!r}")
        if not 0.0 <= self.swap_reserve_fraction < 1.0:
            raise ValueError(f"swap_reserve_fraction must be in [0, 1), got {self.swap_reserve_fraction}")
        if not self.quantum_growth >= 1.0:
            raise ValueError(f"quantum_growth must be >= 1, got {self.quantum_growth}")
        if not self.alpha_s > 0:
            raise ValueError(f"alpha_s must be > 0, got {self.alpha_s}")
        if not self.starvation_check_s >= 0:
            raise ValueError(f"starvation_check_s must be >= 0, got {self.starvation_check_s}")
        if self.promotion not in PROMOTIONS:
            raise ValueError(f"promotion must be one of {', '.join(PROMOTIONS)}, got {self.promotion!r}")


def _is_int(value: object) -> bool:
    """An integer, not a bool (True would silently mean 1) nor a float (2.0 tokens)."""
    return isinstance(value, int) and not isinstance(value, bool)


def _is_real(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)
