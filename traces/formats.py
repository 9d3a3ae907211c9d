"""The trace formats that `traces.load` reads, and how each is recognised from its columns.

A format names the source columns that map onto the schema and how times are encoded. The
container (CSV, JSONL or Parquet) comes from the file extension; `fastserve-*` formats fix it,
and the public formats fall back to their native container when the extension says nothing.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from traces.errors import TraceError
from traces.schema import ARRIVAL_S, OUTPUT_TOKENS, PROMPT_TOKENS, REQUEST_ID


@dataclass(frozen=True)
class Format:
    name: str
    prompt_column: str
    output_column: str
    arrival_column: str | None  # None: the table has no times (pair it with an arrival process)
    time_unit: str | None  # "s", "ms" or "datetime" (absolute timestamps, made relative)
    request_id_column: str | None  # optional in the file
    container: str  # native container
    container_fixed: bool = False  # True: the format forces the container

    @property
    def required_columns(self) -> tuple[str, ...]:
        columns = (self.arrival_column, self.prompt_column, self.output_column)
        return tuple(column for column in columns if column is not None)


FORMATS: dict[str, Format] = {
    fmt.name: fmt
    for fmt in (
        *(
            Format(
                f"fastserve-{container}",
                PROMPT_TOKENS,
                OUTPUT_TOKENS,
                ARRIVAL_S,
                "s",
                REQUEST_ID,
                container,
                container_fixed=True,
            )
            for container in ("csv", "jsonl", "parquet")
        ),
        # Azure LLM inference trace 2023/2024 (Patel et al., Splitwise, ISCA'24).
        Format("azure", "ContextTokens", "GeneratedTokens", "TIMESTAMP", "datetime", None, "csv"),
        # Mooncake traces (Qin et al., FAST'25): JSONL, `timestamp` in milliseconds.
        Format("mooncake", "input_length", "output_length", "timestamp", "ms", None, "jsonl"),
        # Length-only tables such as Sarathi-Serve's ShareGPT export.
        Format("lengths", "num_prefill_tokens", "num_decode_tokens", None, None, None, "csv"),
    )
}

EXTENSIONS = {
    ".csv": "csv",
    ".jsonl": "jsonl",
    ".ndjson": "jsonl",
    ".json": "jsonl",
    ".parquet": "parquet",
    ".pq": "parquet",
}
_COMPRESSIONS = (".gz", ".bz2", ".xz", ".zst", ".zip")
# Detection order: our own schema first, then the public formats.
_DETECT_ORDER = ("fastserve", "azure", "mooncake", "lengths")


def extension_container(path: str | Path) -> str | None:
    """ "csv", "jsonl" or "parquet" from the extension (`.csv.gz` counts as CSV), else None."""
    suffixes = [s.lower() for s in Path(path).suffixes]
    while suffixes and suffixes[-1] in _COMPRESSIONS:
        suffixes.pop()
    return EXTENSIONS.get(suffixes[-1]) if suffixes else None


def get_format(name: str, source: str) -> Format:
    try:
        return FORMATS[name]
    except KeyError:
        raise TraceError(
            f"{source}: unknown format '{name}' (choose {', '.join(FORMATS)})"
        ) from None


def container_for(path: str | Path, fmt: Format | None, source: str) -> str:
    by_extension = extension_container(path)
    if fmt is not None and (fmt.container_fixed or by_extension is None):
        return fmt.container
    if by_extension is None:
        raise TraceError(
            f"{source}: unknown format: cannot tell the file type from its extension "
            f"(use .csv, .jsonl or .parquet, or name the format: {', '.join(FORMATS)})"
        )
    return by_extension


def detect(columns: list[str], container: str, source: str) -> Format:
    """The format whose required columns the table has."""
    present = set(columns)
    for family in _DETECT_ORDER:
        fmt = FORMATS[f"fastserve-{container}" if family == "fastserve" else family]
        if set(fmt.required_columns) <= present:
            return fmt
    expected = "; ".join(
        f"{name}: {','.join(f.required_columns)}"
        for name, f in FORMATS.items()
        if not name.startswith("fastserve-") or name.endswith(container)
    )
    raise TraceError(
        f"{source}: unknown format: columns [{','.join(map(str, columns))}] match none of ({expected})"
    )
