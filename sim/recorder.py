"""Optional per-iteration and per-span records, kept as growable numeric columns.

Off by default: a million-request run has tens of millions of iterations. Rows are appended to
`array` buffers (8 bytes a value), and become a DataFrame only at the end.
"""

from __future__ import annotations

from array import array

import pandas as pd

ITERATION_COLUMNS = (
    "replica", "start_s", "end_s", "num_iterations", "batch_size", "num_prefills", "prefill_tokens",
    "decode_context_tokens", "device_kv_blocks_used", "host_kv_blocks_used", "swap_out_tokens",
    "swap_in_tokens", "num_queued",
)
SPAN_KINDS = ("running", "swap_out", "swap_in")


class IterationRecorder:
    def __init__(self, num_levels: int) -> None:
        self.cols = {c: array("d") for c in ITERATION_COLUMNS}
        self.levels = [array("q") for _ in range(num_levels)]

    def add(self, row: dict, level_counts: list[int]) -> None:
        for name, buf in self.cols.items():
            buf.append(row[name])
        for buf, count in zip(self.levels, level_counts, strict=True):
            buf.append(count)

    def frame(self, policy: str, swap: str) -> pd.DataFrame:
        df = pd.DataFrame({c: list(v) for c, v in self.cols.items()})
        for c in ITERATION_COLUMNS:
            if c not in ("start_s", "end_s"):
                df[c] = df[c].astype("int64")
        if len(self.levels) > 1:
            for i, buf in enumerate(self.levels):
                df[f"queue_level_{i}"] = list(buf)
        df.insert(0, "swap", swap)
        df.insert(0, "policy", policy)
        return df


class SpanRecorder:
    """Running spans are merged while a job runs in consecutive iterations."""

    def __init__(self) -> None:
        self.rows: list[tuple[int, int, str, float, float]] = []
        self._open: dict[int, list] = {}  # job id -> [replica, start_s, end_s]

    def running(self, replica: int, job_id: int, start_s: float, end_s: float) -> None:
        span = self._open.get(job_id)
        if span is not None and span[2] == start_s:
            span[2] = end_s
            return
        if span is not None:
            self.rows.append((span[0], job_id, "running", span[1], span[2]))
        self._open[job_id] = [replica, start_s, end_s]

    def transfer(self, replica: int, job_id: int, kind: str, start_s: float, end_s: float) -> None:
        self.rows.append((replica, job_id, kind, start_s, end_s))

    def frame(self, policy: str, swap: str) -> pd.DataFrame:
        rows = self.rows + [(s[0], jid, "running", s[1], s[2]) for jid, s in self._open.items()]
        df = pd.DataFrame(rows, columns=["replica", "request_id", "kind", "start_s", "end_s"])
        df = df.sort_values(["request_id", "start_s", "kind"], kind="stable").reset_index(drop=True)
        df.insert(0, "swap", swap)
        df.insert(0, "policy", policy)
        return df
