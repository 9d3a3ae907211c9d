"""The simulated clock: integer microseconds.

SimPy time is an integer count of microseconds, so that a run of k iterations advanced in one
step (event skipping) lands on exactly the same instant as k single steps. Cost models return
float seconds; every duration is rounded once, here, half to even, to at least 1 us.
"""

from __future__ import annotations

import numpy as np

US_PER_S = 1_000_000


def duration_us(seconds: float) -> int:
    return max(1, round(seconds * US_PER_S))


def durations_us(seconds: np.ndarray) -> np.ndarray:
    """Vector form of `duration_us`, element for element identical (both round half to even)."""
    return np.maximum(1, np.rint(np.asarray(seconds, dtype=np.float64) * US_PER_S)).astype(np.int64)


def to_s(us: int) -> float:
    return us / US_PER_S
