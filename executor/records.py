"""Per-iteration rows and per-request spans of a live run, in the simulator's formats.

`iterations.parquet` columns (DESIGN.md; the simulator writes the same): policy, swap, replica,
start_s, end_s, num_iterations (always 1 here), batch_size, num_prefills, prefill_tokens,
decode_context_tokens, device_kv_blocks_used, host_kv_blocks_used, swap_out_tokens,
swap_in_tokens, num_queued, plus queue_level_<i> for multi-level policies, plus the live-only
`forward_s` (model time inside the iteration; the rest is scheduling, bookkeeping and waits)
and `decode_max_context_tokens` (the longest decode context, which the pooled attention pads
every decode job to; `fastserve validate` prices live iterations with it).
`spans.parquet`: policy, swap, replica, request_id, kind in {running, swap_out, swap_in},
start_s, end_s; running spans merge while a job runs in back-to-back iterations.
"""

from __future__ import annotations

import pandas as pd

ITERATION_COLUMNS = (
    "replica", "start_s", "end_s", "num_iterations", "batch_size", "num_prefills", "prefill_tokens",
    "decode_context_tokens", "device_kv_blocks_used", "host_kv_blocks_used", "swap_out_tokens",
    "swap_in_tokens", "num_queued", "forward_s", "decode_max_context_tokens",
)
FLOAT_COLUMNS = ("start_s", "end_s", "forward_s")
SPAN_KINDS = ("running", "swap_out", "swap_in")


class IterationLog:
    def __init__(self, num_levels: int) -> None:
        self.rows: list[tuple] = []
        self.levels: list[list[int]] = []
        self.num_levels = num_levels

    def add(self, row: dict, level_counts: list[int]) -> None:
        self.rows.append(tuple(row[c] for c in ITERATION_COLUMNS))
        self.levels.append(level_counts)

    def frame(self, policy: str, swap: str) -> pd.DataFrame:
        df = pd.DataFrame(self.rows, columns=list(ITERATION_COLUMNS))
        for c in ITERATION_COLUMNS:
            df[c] = df[c].astype("float64" if c in FLOAT_COLUMNS else "int64")
        if self.num_levels > 1:
            for i in range(self.num_levels):
                df[f"queue_level_{i}"] = pd.Series([counts[i] for counts in self.levels], dtype="int64")
        df.insert(0, "swap", swap)
        df.insert(0, "policy", policy)
        return df


class SpanLog:
    def __init__(self) -> None:
        self.rows: list[tuple[int, int, str, float, float]] = []
        self._open: dict[int, list] = {}  # job id -> [replica, start_s, end_s]

    def running(self, replica: int, job_id: int, start_s: float, end_s: float, back_to_back: bool) -> None:
        span = self._open.get(job_id)
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

    def frame(self, policy: str, swap: str) -> pd.DataFrame:
        rows = self.rows + [(s[0], jid, "running", s[1], s[2]) for jid, s in self._open.items()]
        df = pd.DataFrame(rows, columns=["replica", "request_id", "kind", "start_s", "end_s"])
        df = df.astype({"replica": "int64", "request_id": "int64", "start_s": "float64", "end_s": "float64"})
        df = df.sort_values(["request_id", "start_s", "kind"], kind="stable").reset_index(drop=True)
        df.insert(0, "swap", swap)
        df.insert(0, "policy", policy)
        return df
