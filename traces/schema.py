"""The trace schema and its vectorised column validators.

Schema: one row per request, `arrival_s` (float seconds from the trace start, >= 0,
non-decreasing), `prompt_tokens` and `output_tokens` (int64 > 0) and `request_id` (int64,
unique; 0..N-1 when the source has none).

The validators work on whole columns with numpy/pandas (no per-row Python), so that a million
rows validate in well under a second. Each finds the FIRST bad row and raises a one-line
`TraceError` "SOURCE: row R, column 'C': what is wrong", with R the 1-based data row (the
header is not counted) and C the column's name in the source file.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from traces.errors import TraceError

ARRIVAL_S = "arrival_s"
PROMPT_TOKENS = "prompt_tokens"
OUTPUT_TOKENS = "output_tokens"
REQUEST_ID = "request_id"
REQUIRED_COLUMNS = (ARRIVAL_S, PROMPT_TOKENS, OUTPUT_TOKENS)
COLUMNS = (*REQUIRED_COLUMNS, REQUEST_ID)
# Ranges checked at load, so that a unit mistake or a corrupt value is named with its row and
# column instead of overflowing later (the simulator's clock is int64 microseconds).
MAX_ARRIVAL_S = 1e9  # about 32 years
MAX_TOKENS = 100_000_000  # beyond any model's context
MAX_EXACT_INT = 2**53  # float64 holds every integer up to here


def where(source: str, index: int, column: str) -> str:
    """The location prefix of an error: `index` is 0-based, the message's row is 1-based."""
    return f"{source}: row {index + 1}, column '{column}'"


def _first(mask: np.ndarray) -> int | None:
    hits = np.flatnonzero(mask)
    return int(hits[0]) if hits.size else None


def as_float(values: pd.Series | np.ndarray, source: str, column: str) -> np.ndarray:
    """float64 copy of a column; rejects non-numeric, missing (NaN) and infinite values."""
    series = values if isinstance(values, pd.Series) else pd.Series(np.asarray(values))
    if pd.api.types.is_numeric_dtype(series) and not pd.api.types.is_bool_dtype(series):
        numbers = series.to_numpy(dtype=np.float64, na_value=np.nan)
    else:
        numbers = pd.to_numeric(series, errors="coerce").to_numpy(dtype=np.float64, na_value=np.nan)
        if pd.api.types.is_bool_dtype(series):
            numbers[:] = np.nan  # True/False are not token counts or times
        bad = _first(np.isnan(numbers) & series.notna().to_numpy())
        if bad is not None:
            raise TraceError(
                f"{where(source, bad, column)}: non-numeric value {series.iloc[bad]!r}"
            )
    bad = _first(np.isnan(numbers))
    if bad is not None:
        raise TraceError(f"{where(source, bad, column)}: missing value (NaN)")
    bad = _first(np.isinf(numbers))
    if bad is not None:
        raise TraceError(f"{where(source, bad, column)}: value {numbers[bad]} is not finite")
    return numbers


def as_int(values: pd.Series | np.ndarray, source: str, column: str) -> np.ndarray:
    """int64 column; rejects what `as_float` rejects and values with a fractional part."""
    series = values if isinstance(values, pd.Series) else pd.Series(np.asarray(values))
    if pd.api.types.is_integer_dtype(series) and not series.hasnans:
        return series.to_numpy(dtype=np.int64)  # exact even above 2**53
    numbers = as_float(series, source, column)
    bad = _first(np.abs(numbers) > MAX_EXACT_INT)
    if bad is not None:
        raise TraceError(f"{where(source, bad, column)}: {float(numbers[bad])!r} is too large for an integer column")
    bad = _first(numbers != np.floor(numbers))
    if bad is not None:
        raise TraceError(
            f"{where(source, bad, column)}: {float(numbers[bad])!r} is not a whole number"
        )
    return numbers.astype(np.int64)


def as_tokens(values: pd.Series | np.ndarray, source: str, column: str) -> np.ndarray:
    """A token-count column: int64 and > 0."""
    tokens = as_int(values, source, column)
    bad = _first(tokens <= 0)
    if bad is not None:
        raise TraceError(
            f"{where(source, bad, column)}: must be a positive integer, got {tokens[bad]}"
        )
    bad = _first(tokens > MAX_TOKENS)
    if bad is not None:
        raise TraceError(f"{where(source, bad, column)}: {tokens[bad]:,} tokens is more than any model's context "
                         f"(at most {MAX_TOKENS:,})")
    return tokens


def as_arrivals(values: pd.Series | np.ndarray, source: str, column: str, unit_s: float = 1.0) -> np.ndarray:
    """An arrival-time column in its unit (`unit_s` seconds each): float64, >= 0 and at most
    MAX_ARRIVAL_S once in seconds (order is checked separately)."""
    arrival_s = as_float(values, source, column)
    bad = _first(arrival_s < 0)
    if bad is not None:
        raise TraceError(
            f"{where(source, bad, column)}: arrival time must be >= 0, got {float(arrival_s[bad])!r}"
        )
    bad = _first(arrival_s * unit_s > MAX_ARRIVAL_S)
    if bad is not None:
        raise TraceError(f"{where(source, bad, column)}: arrival time {float(arrival_s[bad])!r} is more than "
                         f"{MAX_ARRIVAL_S:g} s (about 32 years) from the trace start; is the column in another unit?")
    return arrival_s


def first_unsorted(arrival_s: np.ndarray) -> int | None:
    """0-based index of the first row that arrives before the row above it, or None if sorted."""
    bad = _first(np.diff(arrival_s) < 0)
    return None if bad is None else bad + 1


def unsorted_message(arrival_s: np.ndarray, index: int, source: str, column: str) -> str:
    return (
        f"{where(source, index, column)}: arrivals are not sorted ({float(arrival_s[index])!r} comes after "
        f"{float(arrival_s[index - 1])!r} in the row above); pass sort=True (CLI: --sort) to sort them"
    )


def check_unique(request_id: np.ndarray, source: str, column: str) -> None:
    duplicated = pd.Series(request_id).duplicated(keep="first").to_numpy()
    bad = _first(duplicated)
    if bad is not None:
        first = _first(request_id == request_id[bad])
        raise TraceError(
            f"{where(source, bad, column)}: duplicate request id {request_id[bad]} "
            f"(first seen in row {first + 1})"
        )
