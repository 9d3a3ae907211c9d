"""Per-request derived columns and the per-policy summary (`summary.csv`).

Reads data frames only; runs nothing. Definitions (FastServe section 6):
- JCT = finish - arrival; TTFT = first token - arrival;
- TPOT = (finish - first token) / (output tokens - 1), undefined for one-token outputs;
- normalized latency = JCT / output tokens (the paper's headline metric);
- throughput = finished requests / (last finish - first arrival);
- offered rate = requests offered / (last arrival - first arrival), `admitted` without the rejected.
Counts: `num_offered` = `num_finished` + `num_rejected` + `num_unfinished`. Only finished
requests enter the latency statistics; rejected and unfinished ones are counted in their own
columns, never silently dropped. A run is `overloaded` when its throughput is under
OVERLOAD_THROUGHPUT_SHARE of what a keeping-up server shows on the same trace (the admitted
requests over the arrival span plus the median JCT: even a server that keeps up finishes the
last request about one JCT after it arrives, which on a short trace is a large share of the
span), or when the admitted rate exceeds the sustainable rate the caller estimated from the
profile (`profiles.sustainable`): its queues grow with the trace's length, so its latencies
depend on where the trace stops. Percentiles interpolate linearly between order
statistics (numpy's and pandas' default), so p99 of 3 values lies between the 2nd and 3rd.
Rows whose `swap` is missing form their own group (`dropna=False`), so none disappear.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

SUMMARY_KEYS = ["policy", "swap"]
OVERLOAD_THROUGHPUT_SHARE = 0.9


def add_derived(df: pd.DataFrame) -> pd.DataFrame:
    """Add jct_s, ttft_s, tpot_s and norm_latency_s to a requests frame (returns a copy)."""
    out = df.copy()
    out["jct_s"] = out["finish_s"] - out["arrival_s"]
    out["ttft_s"] = out["first_token_s"] - out["arrival_s"]
    decode_tokens = out["output_tokens"] - 1
    out["tpot_s"] = np.where(decode_tokens > 0, (out["finish_s"] - out["first_token_s"]) / decode_tokens.clip(lower=1), np.nan)
    out["norm_latency_s"] = out["jct_s"] / out["output_tokens"]
    return out


def _summarize_group(g: pd.DataFrame, sustainable_rps: float | None) -> dict:
    done = g[g["status"] == "finished"]
    jct = done["jct_s"]
    span_s = done["finish_s"].max() - g["arrival_s"].min() if len(done) else np.nan
    num_rejected = int((g["status"] == "rejected").sum())
    arrival_span_s = g["arrival_s"].max() - g["arrival_s"].min() if len(g) > 1 else np.nan
    offered_rps = len(g) / arrival_span_s if arrival_span_s > 0 else np.nan
    admitted_rps = (len(g) - num_rejected) / arrival_span_s if arrival_span_s > 0 else np.nan
    throughput_rps = len(done) / span_s if span_s and span_s > 0 else np.nan
    keeping_up_rps = (len(g) - num_rejected) / (arrival_span_s + jct.median()) if len(done) else np.nan
    overloaded = bool(admitted_rps > 0 and (not throughput_rps >= OVERLOAD_THROUGHPUT_SHARE * keeping_up_rps
                                            or (sustainable_rps is not None and admitted_rps > sustainable_rps)))
    return {
        "num_offered": len(g),
        "num_finished": len(done),
        "num_rejected": num_rejected,
        "num_unfinished": int((g["status"] == "unfinished").sum()),
        "jct_mean_s": jct.mean(),
        "jct_p50_s": jct.quantile(0.50),
        "jct_p90_s": jct.quantile(0.90),
        "jct_p95_s": jct.quantile(0.95),
        "jct_p99_s": jct.quantile(0.99),
        "ttft_mean_s": done["ttft_s"].mean(),
        "ttft_p99_s": done["ttft_s"].quantile(0.99),
        "tpot_mean_s": done["tpot_s"].mean(),
        "norm_latency_mean_s": done["norm_latency_s"].mean(),
        "norm_latency_p95_s": done["norm_latency_s"].quantile(0.95),
        "norm_latency_p99_s": done["norm_latency_s"].quantile(0.99),
        "throughput_rps": throughput_rps,
        "offered_rps": offered_rps,
        **({"sustainable_rps": sustainable_rps} if sustainable_rps is not None else {}),
        "overloaded": overloaded,
        "num_preemptions": int(g["num_preemptions"].sum()),
        "num_swaps": int(g["num_swaps"].sum()),
        "num_recomputes": int(g["num_recomputes"].sum()) if "num_recomputes" in g else 0,
    }


def summarize(requests: pd.DataFrame, sustainable_rps: float | None = None) -> pd.DataFrame:
    """One row per (policy, swap), in order of first appearance. `sustainable_rps`: the
    profile's estimated sustainable rate, when the caller knows it (adds that column)."""
    df = requests if "jct_s" in requests else add_derived(requests)
    rows = []
    for (policy, swap), g in df.groupby(SUMMARY_KEYS, sort=False, dropna=False):
        rows.append({"policy": policy, "swap": swap, **_summarize_group(g, sustainable_rps)})
    return pd.DataFrame(rows)
