"""Which noise group prices a replica's k-th iteration (`TableCostModel.noisy_iteration_s`).

Group floor(K * frac(k * phi)), phi the golden ratio's fraction: that low-discrepancy sequence
visits the K equal-probability groups evenly in any stretch of iterations, with no random state,
so the same index gets the same time with and without event skipping. The scalar and the
vector function use the same float64 operations, so they agree bit for bit.
"""

from __future__ import annotations

import numpy as np

_PHI = 0.6180339887498949  # the golden ratio's fraction: frac(k * _PHI) is equidistributed


def noise_group(index: int, num_groups: int) -> int:
    return min(int((index * _PHI) % 1.0 * num_groups), num_groups - 1)


def noise_groups(index: np.ndarray, num_groups: int) -> np.ndarray:
    """`noise_group` of every element."""
    return np.minimum(((index * _PHI) % 1.0 * num_groups).astype(np.int64), num_groups - 1)
