"""Length filters as in the FastServe/vLLM artifacts, with a report of every removed request.

A request is removed for the FIRST reason that applies, in this order: a prompt or output
shorter than `min_tokens`, a prompt longer than `max_prompt_tokens`, a prompt plus output
longer than `max_total_tokens`. So the per-reason counts add up to the number removed, and
`num_kept + num_removed == num_requests` always holds: nothing is dropped silently.
"""

from __future__ import annotations

from dataclasses import dataclass, fields

import numpy as np

from traces.errors import SpecError


@dataclass(frozen=True)
class Filters:
    max_prompt_tokens: int | None = None
    max_total_tokens: int | None = None
    min_tokens: int | None = None

    def __post_init__(self) -> None:
        for field in fields(self):
            value = getattr(self, field.name)
            if value is not None and (
                isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value <= 0
            ):
                raise SpecError(
                    f"filter '{field.name}' must be a positive integer or None, got {value!r}"
                )

    @property
    def active(self) -> bool:
        return any(getattr(self, field.name) is not None for field in fields(self))

    def __str__(self) -> str:
        parts = [
            f"{f.name}={getattr(self, f.name)}"
            for f in fields(self)
            if getattr(self, f.name) is not None
        ]
        return ",".join(parts)


@dataclass(frozen=True)
class FilterReport:
    filters: Filters
    num_requests: int  # before filtering
    num_removed_min_tokens: int = 0
    num_removed_max_prompt_tokens: int = 0
    num_removed_max_total_tokens: int = 0

    @property
    def num_removed(self) -> int:
        return (
            self.num_removed_min_tokens
            + self.num_removed_max_prompt_tokens
            + self.num_removed_max_total_tokens
        )

    @property
    def num_kept(self) -> int:
        return self.num_requests - self.num_removed

    @property
    def removed(self) -> dict[str, int]:
        """Removed counts per reason (the names of the filters)."""
        return {
            "min_tokens": self.num_removed_min_tokens,
            "max_prompt_tokens": self.num_removed_max_prompt_tokens,
            "max_total_tokens": self.num_removed_max_total_tokens,
        }

    def __add__(self, other: FilterReport) -> FilterReport:
        """Combine the reports of two batches filtered with the same filters."""
        if other.filters != self.filters:
            raise ValueError("cannot add filter reports of different filters")
        return FilterReport(
            self.filters,
            self.num_requests + other.num_requests,
            self.num_removed_min_tokens + other.num_removed_min_tokens,
            self.num_removed_max_prompt_tokens + other.num_removed_max_prompt_tokens,
            self.num_removed_max_total_tokens + other.num_removed_max_total_tokens,
        )

    def __str__(self) -> str:
        head = f"kept {self.num_kept:,} of {self.num_requests:,} requests"
        if not self.filters.active:
            return f"{head} (no filters)"
        limits = self.filters
        reasons = []
        if limits.min_tokens is not None:
            reasons.append(
                f"{self.num_removed_min_tokens:,} with prompt or output < {limits.min_tokens} tokens"
            )
        if limits.max_prompt_tokens is not None:
            reasons.append(
                f"{self.num_removed_max_prompt_tokens:,} with prompt > {limits.max_prompt_tokens} tokens"
            )
        if limits.max_total_tokens is not None:
            reasons.append(
                f"{self.num_removed_max_total_tokens:,} with prompt + output > {limits.max_total_tokens} tokens"
            )
        return f"{head}; removed {self.num_removed:,}: {', '.join(reasons)}"


def filter_mask(
    prompt_tokens: np.ndarray, output_tokens: np.ndarray, filters: Filters
) -> tuple[np.ndarray, FilterReport]:
    """Boolean mask of the rows to keep, and the report of the rows removed."""
    keep = np.ones(prompt_tokens.shape, dtype=bool)
    counts = []
    for limit, too_far in (
        (filters.min_tokens, lambda m: (prompt_tokens < m) | (output_tokens < m)),
        (filters.max_prompt_tokens, lambda m: prompt_tokens > m),
        (filters.max_total_tokens, lambda m: prompt_tokens + output_tokens > m),
    ):
        if limit is None:
            counts.append(0)
            continue
        removed = keep & too_far(limit)
        counts.append(int(removed.sum()))
        keep &= ~removed
    return keep, FilterReport(filters, int(prompt_tokens.size), *counts)
