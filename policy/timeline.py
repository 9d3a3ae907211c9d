"""Per-iteration rows and per-request spans, the one recorder both engines fill.

Pure Python (the `policy` rule: no pandas); an engine turns `columns()` into a DataFrame with
`pd.DataFrame(log.columns(policy, swap)).astype(log.dtypes())`. Formats (DESIGN.md "Results"):
- `iterations.parquet`: policy, swap, then `ITERATION_COLUMNS` (one row per iteration, or per
  run of skipped identical iterations: `num_iterations`), then any engine-specific columns, then
  `queue_level_<i>` (jobs per level at the start of the iteration) for multi-level policies.
- `spans.parquet`: policy, swap, replica, request_id, kind (running | swap_out | swap_in),
  start_s, end_s, sorted by request, then start; running spans merge while a job runs in
  back-to-back iterations.
Recording is optional: a million-request simulation has tens of millions of iterations.
"""

from __future__ import annotations

from collections.abc import Sequence

ITERATION_COLUMNS = (
    "replica", "start_s", "end_s", "num_iterations", "batch_size", "num_prefills", "prefill_tokens",
    "decode_context_tokens", "device_kv_blocks_used", "host_kv_blocks_used", "swap_out_tokens",
    "swap_in_tokens", "num_queued",
)
SPAN_KINDS = ("running", "swap_out", "swap_in")


class IterationLog:
    def __init__(self, num_levels: int, extra_columns: Sequence[str] = (),
                 float_columns: Sequence[str] = ("start_s", "end_s")) -> None:
        self.names = (*ITERATION_COLUMNS, *extra_columns)
        self.float_columns = frozenset(float_columns)
        self.num_levels = num_levels
        self.rows: list[tuple] = []
        self.levels: list[list[int]] = []

    def add(self, row: dict, level_counts: list[int]) -> None:
        self.rows.append(tuple(map(row.__getitem__, self.names)))  # once per iteration: no generator
        self.levels.append(level_counts)

    def columns(self, policy: str, swap: str) -> dict[str, list]:
        cols: dict[str, list] = {"policy": [policy] * len(self.rows), "swap": [swap] * len(self.rows)}
        for i, name in enumerate(self.names):
            cols[name] = [row[i] for row in self.rows]
        if self.num_levels > 1:
            for level in range(self.num_levels):
                cols[f"queue_level_{level}"] = [counts[level] for counts in self.levels]
        return cols

    def dtypes(self) -> dict[str, str]:
        """Explicit column types, so that an empty log still writes typed columns."""
        names = [*self.names, *(f"queue_level_{i}" for i in range(self.num_levels if self.num_levels > 1 else 0))]
        return {n: "float64" if n in self.float_columns else "int64" for n in names}


class SpanLog:
    def __init__(self) -> None:
        self.rows: list[tuple[int, int, str, float, float]] = []
        self._open: dict[int, list] = {}  # job id -> [replica, start_s, end_s]

    def running(self, replica: int, job_id: int, start_s: float, end_s: float,
                back_to_back: bool | None = None) -> None:
        """A job ran in [start_s, end_s]. `back_to_back`: it also ran in the previous iteration
        (None: decide by whether its open span ends exactly at start_s)."""
        span = self._open.get(job_id)
        if back_to_back is None:
            back_to_back = span is not None and span[2] == start_s
        if span is not None and back_to_back:
            span[2] = end_s
            return
        if span is not None:
            self.rows.append((span[0], job_id, "running", span[1], span[2]))
        self._open[job_id] = [replica, start_s, end_s]

    def transfer(self, replica: int, job_id: int, kind: str, start_s: float, end_s: float) -> None:
        if kind not in SPAN_KINDS:
            raise ValueError(f"span kind must be one of {SPAN_KINDS}, got {kind!r}")
        self.rows.append((replica, job_id, kind, start_s, end_s))

    def columns(self, policy: str, swap: str) -> dict[str, list]:
        rows = self.rows + [(s[0], jid, "running", s[1], s[2]) for jid, s in self._open.items()]
        rows.sort(key=lambda r: (r[1], r[3], r[2]))
        names = ("replica", "request_id", "kind", "start_s", "end_s")
        cols: dict[str, list] = {"policy": [policy] * len(rows), "swap": [swap] * len(rows)}
        for i, name in enumerate(names):
            cols[name] = [r[i] for r in rows]
        return cols

    @staticmethod
    def dtypes() -> dict[str, str]:
        return {"replica": "int64", "request_id": "int64", "start_s": "float64", "end_s": "float64"}
