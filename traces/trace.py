"""`Trace`: a validated, immutable table of requests, the input to both engines.

Invariants (checked on construction, vectorised): equal-length columns; `arrival_s` float64,
finite, >= 0 and non-decreasing; `prompt_tokens` and `output_tokens` int64 > 0; `request_id`
int64 and unique (0..N-1 when not given). The arrays are read-only; every transformation
returns a new `Trace`. An empty trace is allowed in memory (a filter may remove everything);
`traces.load` rejects empty files.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import pandas as pd

from policy import Job
from traces.errors import TraceError
from traces.filters import FilterReport, Filters, filter_mask
from traces.schema import (
    ARRIVAL_S,
    OUTPUT_TOKENS,
    PROMPT_TOKENS,
    REQUEST_ID,
    as_arrivals,
    as_int,
    as_tokens,
    check_unique,
    first_unsorted,
    unsorted_message,
)
from traces.stats import trace_stats


def _frozen(array: np.ndarray) -> np.ndarray:
    array.setflags(write=False)
    return array


class Trace:
    __slots__ = ("_arrival_s", "_prompt_tokens", "_output_tokens", "_request_id", "source")

    def __init__(
        self,
        arrival_s: np.ndarray,
        prompt_tokens: np.ndarray,
        output_tokens: np.ndarray,
        request_id: np.ndarray | None = None,
        source: str = "<memory>",
    ) -> None:
        sizes = {len(arrival_s), len(prompt_tokens), len(output_tokens)}
        if request_id is not None:
            sizes.add(len(request_id))
        if len(sizes) != 1:
            raise TraceError(f"{source}: columns have different lengths {sorted(sizes)}")
        arrival_s = as_arrivals(arrival_s, source, ARRIVAL_S)
        bad = first_unsorted(arrival_s)
        if bad is not None:
            raise TraceError(unsorted_message(arrival_s, bad, source, ARRIVAL_S))
        if request_id is None:
            request_id = np.arange(len(arrival_s), dtype=np.int64)
        else:
            request_id = as_int(request_id, source, REQUEST_ID)
            check_unique(request_id, source, REQUEST_ID)
        self._set(
            arrival_s,
            as_tokens(prompt_tokens, source, PROMPT_TOKENS),
            as_tokens(output_tokens, source, OUTPUT_TOKENS),
            request_id,
            source,
        )

    def _set(self, arrival_s, prompt_tokens, output_tokens, request_id, source) -> None:
        # np.array copies, so a caller's array can never change a Trace behind its back.
        self._arrival_s = _frozen(np.array(arrival_s, dtype=np.float64))
        self._prompt_tokens = _frozen(np.array(prompt_tokens, dtype=np.int64))
        self._output_tokens = _frozen(np.array(output_tokens, dtype=np.int64))
        self._request_id = _frozen(np.array(request_id, dtype=np.int64))
        self.source = source

    @classmethod
    def _trusted(cls, arrival_s, prompt_tokens, output_tokens, request_id, source: str) -> Trace:
        """Build from columns that are already valid (a slice or rescaling of a Trace)."""
        trace = cls.__new__(cls)
        trace._set(arrival_s, prompt_tokens, output_tokens, request_id, source)
        return trace

    @classmethod
    def from_frame(cls, frame: pd.DataFrame, source: str = "<frame>") -> Trace:
        """From a DataFrame in our schema (`request_id` optional)."""
        missing = [c for c in (ARRIVAL_S, PROMPT_TOKENS, OUTPUT_TOKENS) if c not in frame.columns]
        if missing:
            raise TraceError(f"{source}: missing column '{missing[0]}'")
        request_id = frame[REQUEST_ID] if REQUEST_ID in frame.columns else None
        return cls(frame[ARRIVAL_S], frame[PROMPT_TOKENS], frame[OUTPUT_TOKENS], request_id, source)

    arrival_s = property(lambda self: self._arrival_s, doc="float64 seconds, non-decreasing")
    prompt_tokens = property(lambda self: self._prompt_tokens, doc="int64 > 0")
    output_tokens = property(lambda self: self._output_tokens, doc="int64 > 0")
    request_id = property(lambda self: self._request_id, doc="int64, unique")

    @property
    def frame(self) -> pd.DataFrame:
        """A new DataFrame in our schema: arrival_s, prompt_tokens, output_tokens, request_id."""
        return pd.DataFrame(
            {
                ARRIVAL_S: self._arrival_s,
                PROMPT_TOKENS: self._prompt_tokens,
                OUTPUT_TOKENS: self._output_tokens,
                REQUEST_ID: self._request_id,
            }
        )

    def __len__(self) -> int:
        return len(self._arrival_s)

    def __repr__(self) -> str:
        return f"Trace({len(self):,} requests from {self.source!r})"

    def __eq__(self, other: object) -> bool:
        """Same requests (the source is not compared)."""
        if not isinstance(other, Trace):
            return NotImplemented
        return all(
            np.array_equal(a, b) for a, b in zip(self._columns(), other._columns(), strict=True)
        )

    __hash__ = None  # mutable-looking numpy contents; equality is by value

    def _columns(self) -> tuple[np.ndarray, ...]:
        return self._arrival_s, self._prompt_tokens, self._output_tokens, self._request_id

    def _select(self, index: np.ndarray | slice, source: str) -> Trace:
        return Trace._trusted(*(column[index] for column in self._columns()), source)

    def jobs(self) -> Iterator[Job]:
        """Fresh `policy.Job`s in arrival order (each call makes new, unscheduled jobs)."""
        for rid, arrival_s, prompt, output in zip(
            *(
                c.tolist()
                for c in (
                    self._request_id,
                    self._arrival_s,
                    self._prompt_tokens,
                    self._output_tokens,
                )
            ),
            strict=True,
        ):
            yield Job(id=rid, arrival_s=arrival_s, prompt_tokens=prompt, output_tokens=output)

    def filter(
        self,
        max_prompt_tokens: int | None = None,
        max_total_tokens: int | None = None,
        min_tokens: int | None = None,
    ) -> tuple[Trace, FilterReport]:
        """Keep the requests within the limits; the report counts the removed per reason.

        Request ids are kept, so a filtered trace still names the source's requests.
        """
        filters = Filters(max_prompt_tokens, max_total_tokens, min_tokens)
        keep, report = filter_mask(self._prompt_tokens, self._output_tokens, filters)
        source = f"{self.source} filtered ({filters})" if filters.active else self.source
        return self._select(keep, source), report

    def head(self, n: int) -> Trace:
        """The first `n` requests (all of them if there are fewer)."""
        if n < 0:
            raise ValueError(f"head: n must be >= 0, got {n}")
        return self._select(slice(0, n), f"{self.source} head {n}")

    def scale_time(self, factor: float) -> Trace:
        """Multiply every arrival time by `factor` (> 1 stretches the trace, lowering the rate)."""
        if not (np.isfinite(factor) and factor > 0):
            raise ValueError(f"scale_time: factor must be > 0, got {factor}")
        return Trace._trusted(
            self._arrival_s * factor,
            self._prompt_tokens,
            self._output_tokens,
            self._request_id,
            f"{self.source} time x{factor:g}",
        )

    def rescale_rate(self, rate_rps: float) -> Trace:
        """Scale time so that the mean rate, (n - 1) / duration, becomes `rate_rps`."""
        if not (np.isfinite(rate_rps) and rate_rps > 0):
            raise ValueError(f"rescale_rate: rate_rps must be > 0, got {rate_rps}")
        current_rps = self.stats()["rate_rps"]
        if not np.isfinite(current_rps):
            raise ValueError(
                f"rescale_rate: {self.source} has no defined rate (fewer than 2 distinct arrival times)"
            )
        return self.scale_time(current_rps / rate_rps)

    def stats(self) -> dict:
        """Counts, duration, rate, inter-arrival CV and length percentiles (see traces.stats)."""
        return trace_stats(self._arrival_s, self._prompt_tokens, self._output_tokens)
