"""Seeded random streams: one seed gives independent generators for arrivals and for lengths.

Separate streams mean that changing the length distribution does not move the arrival times
of the same seed (and vice versa), which keeps sweeps comparable. No global RNG is used.
"""

from __future__ import annotations

import numpy as np

from traces.errors import SpecError


def seeded_generators(seed: int) -> tuple[np.random.Generator, np.random.Generator]:
    """(arrivals_rng, lengths_rng) spawned from `numpy.random.SeedSequence(seed)`."""
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise SpecError(f"seed must be a non-negative integer, got {seed!r}")
    arrivals_seq, lengths_seq = np.random.SeedSequence(int(seed)).spawn(2)
    return np.random.default_rng(arrivals_seq), np.random.default_rng(lengths_seq)
