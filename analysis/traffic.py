"""Preemptions, swap traffic, and how evenly the dispatcher spread load over replicas.

- Swap traffic sums `swap_out_tokens` and `swap_in_tokens` over `iterations.parquet`. A row
  that stands for a run of skipped iterations is a pure-decode plan (policy.Plan
  .is_pure_decode), which starts no transfer, so summing rows as they are is exact. A column
  that is absent, or missing for one policy's rows, means "not applicable" and sums to 0.
  Bytes = tokens * `kv_bytes_per_token` when the run's config.json gives it.
- Load per replica counts every request the dispatcher sent there, whatever its status, and
  its tokens as prompt + generated tokens (the work the replica did; `output_tokens` when a
  run has no `generated_tokens`). Requests with replica < 0 were never dispatched and are
  counted in `num_undispatched`. Replicas that got nothing count as zero, up to
  `num_replicas` when it is known. Imbalance = max / mean over replicas (1.0 is even).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from analysis.metrics import SUMMARY_KEYS

SWAP_COLUMNS = ("swap_out_tokens", "swap_in_tokens")


def swap_traffic(iterations: pd.DataFrame, kv_bytes_per_token: float | None = None) -> pd.DataFrame:
    """One row per (policy, swap): swap_out_tokens, swap_in_tokens, swap_tokens, and
    swap_out_bytes, swap_in_bytes, swap_bytes when `kv_bytes_per_token` is given."""
    df = iterations.copy()
    for c in SWAP_COLUMNS:
        if c not in df:
            df[c] = 0
    out = df.groupby(SUMMARY_KEYS, sort=False, dropna=False)[list(SWAP_COLUMNS)].sum().reset_index()
    out["swap_tokens"] = out["swap_out_tokens"] + out["swap_in_tokens"]
    for c in (*SWAP_COLUMNS, "swap_tokens"):
        out[c] = out[c].astype(np.int64)
    if kv_bytes_per_token is not None:
        if not kv_bytes_per_token > 0:
            raise ValueError(f"kv_bytes_per_token must be > 0, got {kv_bytes_per_token}")
        for c in (*SWAP_COLUMNS, "swap_tokens"):
            out[c.replace("_tokens", "_bytes")] = out[c] * kv_bytes_per_token
    return out


def replica_load(requests: pd.DataFrame, num_replicas: int | None = None) -> pd.DataFrame:
    """One row per (policy, swap, replica): num_requests and num_tokens sent to it."""
    tokens_col = "generated_tokens" if "generated_tokens" in requests else "output_tokens"
    df = requests.assign(_tokens=requests["prompt_tokens"] + requests[tokens_col])
    dispatched = df[df["replica"] >= 0]
    top = int(dispatched["replica"].max()) + 1 if len(dispatched) else 0
    if num_replicas is not None:
        if top > num_replicas:
            raise ValueError(f"requests name replica {top - 1} but the run has {num_replicas} replicas")
        top = num_replicas
    rows = []
    for (policy, swap), g in df.groupby(SUMMARY_KEYS, sort=False, dropna=False):
        d = g[g["replica"] >= 0].groupby("replica")
        counts = d.size().reindex(range(top), fill_value=0)
        tokens = d["_tokens"].sum().reindex(range(top), fill_value=0)
        for replica in range(top):
            rows.append({
                "policy": policy, "swap": swap, "replica": replica,
                "num_requests": int(counts[replica]), "num_tokens": int(tokens[replica]),
            })
    return pd.DataFrame(rows, columns=["policy", "swap", "replica", "num_requests", "num_tokens"])


def load_imbalance(requests: pd.DataFrame, num_replicas: int | None = None) -> pd.DataFrame:
    """One row per (policy, swap): num_replicas, num_undispatched, request_imbalance,
    token_imbalance (max / mean over replicas; NaN when nothing was dispatched)."""
    per_replica = replica_load(requests, num_replicas)
    rows = []
    for (policy, swap), g in requests.groupby(SUMMARY_KEYS, sort=False, dropna=False):
        load = per_replica[(per_replica["policy"] == policy) & _same(per_replica["swap"], swap)]
        row = {
            "policy": policy, "swap": swap, "num_replicas": len(load),
            "num_undispatched": int((g["replica"] < 0).sum()),
        }
        for name, col in (("request_imbalance", "num_requests"), ("token_imbalance", "num_tokens")):
            mean = load[col].mean() if len(load) else 0.0
            row[name] = load[col].max() / mean if mean > 0 else np.nan
        rows.append(row)
    return pd.DataFrame(rows)


def _same(column: pd.Series, value) -> pd.Series:
    """Equality that treats a missing value as equal to a missing value."""
    return column.isna() if pd.isna(value) else column == value
