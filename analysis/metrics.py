"""Per-request derived columns and the per-policy summary (`summary.csv`).

Reads data frames only; runs nothing. Definitions (FastServe section 6):
- JCT = finish - arrival; TTFT = first token - arrival;
- TPOT = (finish - first token) / (output tokens - 1), undefined for one-token outputs;
- normalized latency = JCT / output tokens (the paper's headline metric);
- throughput = finished requests / (last finish - first arrival).
Only finished requests enter the latency statistics; rejected and unfinished ones are counted
in their own columns, never silently dropped. Percentiles interpolate linearly between order
statistics (numpy's and pandas' default), so p99 of 3 values lies between the 2nd and 3rd.
Rows whose `swap` is missing form their own group (`dropna=False`), so none disappear.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

SUMMARY_KEYS = ["policy", "swap"]


def add_derived(df: pd.DataFrame) -> pd.DataFrame:
    """Add jct_s, ttft_s, tpot_s and norm_latency_s to a requests frame (returns a copy)."""
    out = df.copy()
    out["jct_s"] = out["finish_s"] - out["arrival_s"]
    out["ttft_s"] = out["first_token_s"] - out["arrival_s"]
    decode_tokens = out["output_tokens"] - 1
    out["tpot_s"] = np.where(decode_tokens > 0, (out["finish_s"] - out["first_token_s"]) / decode_tokens.clip(lower=1), np.nan)
    out["norm_latency_s"] = out["jct_s"] / out["output_tokens"]
    return out


def _summarize_group(g: pd.DataFrame) -> dict:
    done = g[g["status"] == "finished"]
    jct = done["jct_s"]
    span_s = done["finish_s"].max() - g["arrival_s"].min() if len(done) else np.nan
    return {
        "num_requests": len(done),
        "num_rejected": int((g["status"] == "rejected").sum()),
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
        "throughput_rps": len(done) / span_s if span_s and span_s > 0 else np.nan,
        "num_preemptions": int(g["num_preemptions"].sum()),
        "num_swaps": int(g["num_swaps"].sum()),
        "num_recomputes": int(g["num_recomputes"].sum()) if "num_recomputes" in g else 0,
    }


def summarize(requests: pd.DataFrame) -> pd.DataFrame:
    """One row per (policy, swap), in order of first appearance."""
    df = requests if "jct_s" in requests else add_derived(requests)
    rows = []
    for (policy, swap), g in df.groupby(SUMMARY_KEYS, sort=False, dropna=False):
        rows.append({"policy": policy, "swap": swap, **_summarize_group(g)})
    return pd.DataFrame(rows)
