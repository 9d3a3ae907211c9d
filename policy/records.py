"""Compact per-request result columns, filled by both engines from finished `Job`s.

Columns are `array` buffers (8 bytes a value), not an object per request, so a million-request
simulation keeps its results in tens of MB. Every request ends in exactly one row: `status` is
"finished", "rejected" (the engine refused it up front, `reason` says why) or "unfinished"
(the run stopped first, `reason` says why). `fastserve.rundir` turns the columns into
`requests.parquet`.
"""

from __future__ import annotations

import math
from array import array

from policy.job import Job

FLOAT_COLUMNS = ("arrival_s", "first_token_s", "finish_s")
INT_COLUMNS = (
    "request_id", "replica", "prompt_tokens", "output_tokens", "generated_tokens",
    "num_preemptions", "num_swaps", "num_recomputes",
)
STATUSES = ("finished", "rejected", "unfinished")


class RequestLog:
    def __init__(self) -> None:
        self.floats = {c: array("d") for c in FLOAT_COLUMNS}
        self.ints = {c: array("q") for c in INT_COLUMNS}
        self.status: list[str] = []
        self.reason: list[str] = []

    def __len__(self) -> int:
        return len(self.status)

    def record(self, job: Job, request_id: int, replica: int, status: str = "finished", reason: str = "") -> None:
        if status not in STATUSES:
            raise ValueError(f"status must be one of {STATUSES}, got {status!r}")
        f, i = self.floats, self.ints
        f["arrival_s"].append(job.arrival_s)
        f["first_token_s"].append(job.first_token_s)
        f["finish_s"].append(job.finish_s if status == "finished" else math.nan)
        for name, value in (
            ("request_id", request_id), ("replica", replica), ("prompt_tokens", job.prompt_tokens),
            ("output_tokens", job.output_tokens), ("generated_tokens", job.generated_tokens),
            ("num_preemptions", job.num_preemptions), ("num_swaps", job.num_swaps),
            ("num_recomputes", job.num_recomputes),
        ):
            i[name].append(value)
        self.status.append(status)
        self.reason.append(reason)

    def counts(self) -> dict[str, int]:
        return {s: self.status.count(s) for s in STATUSES}
