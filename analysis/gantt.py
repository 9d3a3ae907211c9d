"""Per-request segments for a Gantt chart, from `spans.parquet` and the requests table.

One policy (and swap mode) at a time. Kinds:
- "running", "swap_out", "swap_in": the spans as the engine recorded them; running spans
  that touch (gap <= `TOUCH_S`) are merged, because consecutive iterations of one job are
  one run;
- "waiting": from arrival to the first running span (queued, never served yet);
- "preempted": the gaps between running spans, and after the last one until the trace ends
  for a request that did not finish (a swap may overlap a preempted gap: that is when swaps
  happen).
An unfinished request's time ends where the run ended: the latest finish or span end. A
rejected request has no segments; the chart still lists it, so nothing disappears.
"""

from __future__ import annotations

import pandas as pd

TOUCH_S = 1e-9
KINDS = ("waiting", "running", "preempted", "swap_out", "swap_in")
SPAN_KINDS = ("running", "swap_out", "swap_in")


def _merged_runs(rows: pd.DataFrame) -> list[tuple[float, float]]:
    runs: list[tuple[float, float]] = []
    for start, end in rows.sort_values("start_s")[["start_s", "end_s"]].itertuples(index=False):
        if runs and start - runs[-1][1] <= TOUCH_S:
            runs[-1] = (runs[-1][0], max(runs[-1][1], end))
        else:
            runs.append((start, end))
    return runs


def gantt_segments(requests: pd.DataFrame, spans: pd.DataFrame) -> pd.DataFrame:
    """Columns request_id, kind, start_s, end_s; requests in arrival order, kinds as above."""
    bad = sorted(set(spans["kind"]) - set(SPAN_KINDS))
    if bad:
        raise ValueError(f"unknown span kind(s) {', '.join(map(str, bad))}; expected {', '.join(SPAN_KINDS)}")
    unknown = sorted(set(spans["request_id"]) - set(requests["request_id"]))
    if unknown:
        raise ValueError(f"spans name request(s) {unknown[:5]} that are not in the requests table")
    trace_end_s = max(
        requests["finish_s"].max(skipna=True) if requests["finish_s"].notna().any() else 0.0,
        spans["end_s"].max() if len(spans) else 0.0,
        requests["arrival_s"].max(),
    )
    by_request = dict(tuple(spans.groupby("request_id")))
    rows: list[tuple[int, str, float, float]] = []
    for req in requests.sort_values(["arrival_s", "request_id"]).itertuples(index=False):
        if req.status == "rejected":
            continue
        mine = by_request.get(req.request_id, spans.iloc[:0])
        runs = _merged_runs(mine[mine["kind"] == "running"])
        end_s = req.finish_s if req.status == "finished" else trace_end_s
        first_run_s = runs[0][0] if runs else end_s
        if first_run_s > req.arrival_s:
            rows.append((req.request_id, "waiting", req.arrival_s, first_run_s))
        for (_, prev_end), (next_start, _) in zip(runs, runs[1:], strict=False):
            rows.append((req.request_id, "preempted", prev_end, next_start))
        if runs and end_s - runs[-1][1] > TOUCH_S:
            rows.append((req.request_id, "preempted", runs[-1][1], end_s))
        rows.extend((req.request_id, "running", s, e) for s, e in runs)
        for kind in ("swap_out", "swap_in"):
            rows.extend(
                (req.request_id, kind, s, e)
                for s, e in mine.loc[mine["kind"] == kind, ["start_s", "end_s"]].itertuples(index=False)
            )
    return pd.DataFrame(rows, columns=["request_id", "kind", "start_s", "end_s"])
