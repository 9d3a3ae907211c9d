"""Reading and writing trace files: `load`, `load_lengths` and `save`.

`load` reads CSV, JSONL or Parquet, detects the format from the columns (or takes a forced
one), converts the source columns into the schema and validates them in whole-column numpy
operations, so a million rows load in about a second. Errors are one-line `TraceError`s
naming the file, the 1-based data row and the source column. Nothing is dropped: a bad row is
an error, never skipped.

Times: `fastserve-*` and Mooncake times are kept as the data says (Mooncake's milliseconds
become seconds); Azure's absolute timestamps become seconds after the earliest one.
`save` writes our schema losslessly (floats as shortest round-trip text in CSV/JSONL).
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.json as pa_json

from traces.arrivals import ArrivalSpec, parse_arrivals
from traces.errors import TraceError, TraceWarning
from traces.formats import Format, container_for, detect, extension_container, get_format
from traces.rng import seeded_generators
from traces.schema import (
    as_arrivals,
    as_int,
    as_tokens,
    check_unique,
    first_unsorted,
    unsorted_message,
    where,
)
from traces.trace import Trace


def _read_jsonl(path: Path, source: str) -> pd.DataFrame:
    try:  # fast path: Arrow's reader; it refuses mixed-type columns, which pandas then reports
        return pa_json.read_json(path).to_pandas()
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        pass
    try:
        return pd.read_json(path, lines=True, dtype=False, precise_float=True)
    except ValueError:
        # Find the offending line for the message; this per-line loop runs only on bad input.
        with open(path, encoding="utf-8") as lines:
            for number, line in enumerate(lines, start=1):
                text = line.rstrip("\r\n")
                if not text.strip():
                    continue
                try:
                    json.loads(text)
                except json.JSONDecodeError as err:  # its own "line 1 column C" would be a second numbering
                    raise TraceError(f"{source}: line {number}, character {err.pos + 1}: invalid JSON "
                                     f"({err.msg})") from None
                except ValueError as err:
                    raise TraceError(f"{source}: line {number}: invalid JSON ({err})") from None
        raise TraceError(f"{source}: cannot parse as JSONL") from None


def read_table(path: str | Path, container: str, source: str) -> pd.DataFrame:
    """The raw table of a file; raises `TraceError` when it is unreadable or has no data rows."""
    path = Path(path)
    if not path.is_file():
        raise TraceError(f"{source}: no such file")
    try:
        if container == "csv":
            frame = pd.read_csv(path)
        elif container == "jsonl":
            frame = _read_jsonl(path, source)
        else:
            frame = pd.read_parquet(path)
    except pd.errors.EmptyDataError:
        raise TraceError(f"{source}: empty file (no header, no data rows)") from None
    except (pd.errors.ParserError, UnicodeDecodeError, pa.ArrowException, OSError) as err:
        message = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise TraceError(f"{source}: cannot read as {container.upper()}: {message}") from None
    if len(frame) == 0:
        raise TraceError(f"{source}: empty trace (no data rows)")
    return frame


def _open(path: str | Path, fmt: str | None) -> tuple[pd.DataFrame, Format, str]:
    source = str(path)
    forced = get_format(fmt, source) if fmt is not None else None
    frame = read_table(path, container_for(path, forced, source), source)
    frame.columns = [str(column).strip() for column in frame.columns]
    chosen = forced or detect(list(frame.columns), container_for(path, None, source), source)
    for column in chosen.required_columns:
        if column not in frame.columns:
            raise TraceError(
                f"{source}: missing column '{column}' for format {chosen.name} "
                f"(found: {', '.join(frame.columns)})"
            )
    return frame, chosen, source


def _arrival_seconds(frame: pd.DataFrame, fmt: Format, source: str) -> np.ndarray:
    column = fmt.arrival_column
    if fmt.time_unit != "datetime":
        arrival_s = as_arrivals(frame[column], source, column, 1e-3 if fmt.time_unit == "ms" else 1.0)
        return arrival_s / 1000.0 if fmt.time_unit == "ms" else arrival_s
    stamps = pd.to_datetime(frame[column], format="ISO8601", errors="coerce")
    bad = np.flatnonzero(stamps.isna().to_numpy())
    if bad.size:
        value = frame[column].iloc[bad[0]]
        problem = "missing value (NaN)" if pd.isna(value) else f"not a timestamp: {value!r}"
        raise TraceError(f"{where(source, int(bad[0]), column)}: {problem}")
    nanoseconds = stamps.to_numpy(dtype="datetime64[ns]").astype(np.int64)
    return (nanoseconds - nanoseconds.min()) / 1e9


def load(
    path: str | Path,
    fmt: str | None = None,
    sort: bool = False,
    arrivals: ArrivalSpec | str | None = None,
    seed: int = 0,
) -> Trace:
    """Read a trace file into a validated `Trace`.

    `fmt`: one of `traces.FORMATS`, or None to detect it from the columns (and extension).
    `sort`: unsorted arrivals are an error naming the first bad row; with sort=True they are
    stably sorted and a `TraceWarning` says so.
    `arrivals`: an arrival process (or spec string) that gives the arrival times; required for
    `lengths` tables, and for timed formats it replaces the recorded times. Its random stream
    is the one `synthesize(..., seed=seed)` uses for arrivals.
    """
    frame, fmt, source = _open(path, fmt)
    prompt_tokens = as_tokens(frame[fmt.prompt_column], source, fmt.prompt_column)
    output_tokens = as_tokens(frame[fmt.output_column], source, fmt.output_column)
    request_id = None
    if fmt.request_id_column in frame.columns:
        request_id = as_int(frame[fmt.request_id_column], source, fmt.request_id_column)
        check_unique(request_id, source, fmt.request_id_column)
    if arrivals is not None:
        arrival_s = parse_arrivals(arrivals).generate(len(frame), seeded_generators(seed)[0])
    elif fmt.arrival_column is None:
        raise TraceError(
            f"{source}: format '{fmt.name}' has no arrival times; give an arrival process "
            f"(arrivals='poisson:rate=4', CLI: --arrivals poisson:rate=4)"
        )
    else:
        arrival_s = _arrival_seconds(frame, fmt, source)
    bad = first_unsorted(arrival_s)
    if bad is not None:
        if not sort:
            raise TraceError(
                unsorted_message(arrival_s, bad, source, fmt.arrival_column or "arrival_s")
            )
        order = np.argsort(arrival_s, kind="stable")
        warnings.warn(
            f"{source}: arrivals were not sorted (first at row {bad + 1}); sorted them, "
            f"keeping the order of equal times",
            TraceWarning,
            stacklevel=2,
        )
        # Without ids in the file, ids stay the source row numbers (0-based) after sorting.
        request_id = order.astype(np.int64) if request_id is None else request_id[order]
        arrival_s, prompt_tokens, output_tokens = (
            arrival_s[order],
            prompt_tokens[order],
            output_tokens[order],
        )
    if request_id is None:
        request_id = np.arange(len(arrival_s), dtype=np.int64)
    return Trace._trusted(arrival_s, prompt_tokens, output_tokens, request_id, source)


def load_lengths(path: str | Path, fmt: str | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Prompt and output token counts of any trace or length table (no arrival times needed)."""
    frame, fmt, source = _open(path, fmt)
    return (
        as_tokens(frame[fmt.prompt_column], source, fmt.prompt_column),
        as_tokens(frame[fmt.output_column], source, fmt.output_column),
    )


def save(trace: Trace, path: str | Path) -> None:
    """Write `trace` in our schema; the container comes from the extension (.csv/.jsonl/.parquet)."""
    container = extension_container(path)
    if container is None:
        raise TraceError(
            f"{path}: unknown format: cannot tell the file type from its extension "
            f"(use .csv, .jsonl or .parquet)"
        )
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    frame = trace.frame
    if container == "csv":
        frame.to_csv(path, index=False)
    elif container == "parquet":
        frame.to_parquet(path, index=False)
    else:
        # pandas' to_json keeps at most 15 digits, so build the lines from numpy's shortest
        # round-trip text instead: vectorised and lossless.
        lines = pd.Series(np.full(len(frame), "{", dtype=object))
        for i, column in enumerate(frame.columns):
            lines = (
                lines + ("," if i else "") + f'"{column}":' + frame[column].to_numpy().astype(str)
            )
        text = "\n".join((lines + "}").tolist())
        Path(path).write_text(text + "\n" if text else "", encoding="utf-8")
