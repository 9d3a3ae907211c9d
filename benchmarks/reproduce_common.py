"""Shared pieces of `benchmarks/reproduce.py`: the sweep list, quick grids, tables and splicing.

Invariants:
- Every sweep that a figure reads is a TOML file under `docs/reproduction/`, run as written,
  plus the scheduler settings of `POLICY_SETTINGS`, which no TOML may set (one place to change
  them for the whole page). The exceptions are *variants*: the same TOML run once per value of
  one scheduler field (`VARIANTS`), or once per workload with rates given relative to the
  measured knee (`LOAD_RELATIVE`). Each variant's resolved configuration is written to its own
  `sweep.json`, so every number still traces back to a configuration on disk.
- `--quick` shrinks a grid (first and last value of each axis, one seed, a few requests) but
  keeps every policy and swap mode, so the quick run exercises every code path of the full one.
- Generated markdown goes between `<!-- reproduce:NAME -->` and `<!-- /reproduce:NAME -->`
  markers; text outside the markers is never touched.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import pandas as pd

from sim.sweep_config import SweepConfig

REPO_ROOT = Path(__file__).resolve().parent.parent
CONFIG_DIR = REPO_ROOT / "docs" / "reproduction"
DOC_PATH = REPO_ROOT / "docs" / "reproduction.md"
SLO_S = 0.3  # normalized-latency SLO, s/token (the paper's)

# The scheduler settings every sweep of the page runs with: the ONE place to change them.
# These are the paper's rules as the policy implements them by default: q1 = the profile's
# shortest iteration ("auto"), x2 per level, 10 levels, alpha 3 s checked at every decision, and a
# promoted job keeps the top level for its home level's quantum (DESIGN.md, "MLFQ settings").
# A TOML that sets one of these keys is an error; fig3c's variants override one.
POLICY_SETTINGS: dict[str, object] = {
    "base_quantum_s": "auto",
    "quantum_growth": 2.0,
    "num_levels": 10,
    "alpha_s": 3.0,
    "starvation_check_s": 0.0,
    "promotion": "quantum",
}
KEEPS_UP = 0.9  # a cell "keeps up" when its throughput is >= 90% of the arrival rate
QUICK_NUM_REQUESTS = 30

# Configs run once per value of one scheduler field (see the module docstring).
VARIANTS: dict[str, tuple[str, tuple[float, ...]]] = {
    "fig3c_alpha": ("alpha_s", (0.1, 0.3, 1.0, 3.0, 10.0)),
    "fig3c_quantum": ("base_quantum_s", (0.0025, 0.005, 0.01, 0.02, 0.04, 0.08)),
}


# Sweeps whose policy column is relabelled, so that one policy run under two setups (vllm-fcfs
# with FastServe's memory, and with vLLM's own caps in the artifact) are two lines.
SYSTEM_LABELS: dict[str, str] = {
    "fig1_chat_vllm": "vllm (artifact caps)",
    "fig1_chat_chunked": "vllm-chunked (artifact caps)",
    "fig5_azure_vllm": "vllm (artifact caps)",
}

# Sweeps whose grid.rate is a LOAD: a share of the knee, measured per (lengths, device KV)
# combination as the throughput of `KNEE_POLICY` when every request of the trace arrives at once.
LOAD_RELATIVE = ("fig4_tail_burst", "fig4_load_memory")
KNEE_POLICY = "vllm-fcfs"


@dataclass(frozen=True)
class SweepRun:
    """One sweep to run: a config (possibly a variant of a TOML file) and where it goes."""

    name: str  # the TOML's stem, e.g. "fig3c_alpha"
    config: SweepConfig
    subdir: str  # relative to the runs directory
    variant: dict  # {} or {scheduler field: value}


def with_policy_settings(config: SweepConfig) -> SweepConfig:
    """`config` with POLICY_SETTINGS in its [scheduler] (ValueError if the TOML sets one)."""
    clash = sorted(set(POLICY_SETTINGS) & (set(config.scheduler) | set(config.grid)))
    if clash:
        raise ValueError(f"{config.source}: sets {', '.join(clash)}; the page's scheduler settings live in "
                         f"benchmarks/reproduce_common.py POLICY_SETTINGS")
    return replace(config, scheduler={**POLICY_SETTINGS, **config.scheduler})


def expand(name: str, config: SweepConfig, quick: bool) -> list[SweepRun]:
    """The sweeps that one TOML stands for: itself, one per variant value, or one per workload
    of a load-relative sweep."""
    config = with_policy_settings(config)
    if quick:
        config = shrink(config)
    if name in LOAD_RELATIVE:
        return load_relative(name, config)
    if name not in VARIANTS:
        return [SweepRun(name, config, name, {})]
    key, values = VARIANTS[name]
    if quick:
        values = (values[0], values[-1])
    return [
        SweepRun(name, replace(config, scheduler={**config.scheduler, key: value}),
                 f"{name}/{key}={value:g}", {key: value})
        for value in values
    ]


def knee_rps(config: SweepConfig, lengths: str, device_kv_tokens: int | None) -> float:
    """Throughput of KNEE_POLICY on the sweep's trace size with every request at t = 0."""
    from sim.cluster import simulate
    from sim.sweep import build_cell

    cell = {"policy": KNEE_POLICY, "swap": "default", "rate": 1e6, "cv": 1.0, "lengths": lengths,
            "profile": config.grid["profile"][0], "replicas": 1, "tp": None, "pp": None,
            "max_batch": config.grid.get("max_batch", [16])[0], "seed": config.seeds[0]}
    scheduler = dict(config.scheduler)
    if device_kv_tokens is not None:
        scheduler["device_kv_tokens"] = device_kv_tokens
    trace, cost, sched, sim = build_cell(cell, {**config.to_dict(), "scheduler": scheduler})
    result = simulate(trace, cost, KNEE_POLICY, sched, sim)
    return result.stats["finished"] / result.stats["end_s"]


def load_relative(name: str, config: SweepConfig) -> list[SweepRun]:
    """One sweep per (lengths, device_kv_tokens): grid.rate (loads) times that workload's knee."""
    runs = []
    for lengths in config.grid["lengths"]:
        for kv in config.grid.get("device_kv_tokens", [None]):
            knee = round(knee_rps(config, lengths, kv), 4)
            grid = {**config.grid, "lengths": [lengths], "rate": [round(load * knee, 4) for load in config.grid["rate"]]}
            if kv is not None:
                grid["device_kv_tokens"] = [kv]
            tag = f"{len(runs):02d}"
            runs.append(SweepRun(name, replace(config, grid=grid), f"{name}/{tag}", {"knee_rps": knee}))
    return runs


def shrink(config: SweepConfig) -> SweepConfig:
    """A tiny version of `config` for --quick: ends of each numeric axis, one seed."""
    grid = {}
    for key, values in config.grid.items():
        grid[key] = values if key in ("policy", "swap") or len(values) <= 2 else [values[0], values[-1]]
    return replace(config, grid=grid, seeds=config.seeds[:1],
                   num_requests=min(config.num_requests, QUICK_NUM_REQUESTS))


def keeps_up(throughput_rps: pd.Series | float, rate: pd.Series | float):
    """Whether the server kept up with the offered load (see KEEPS_UP)."""
    return throughput_rps >= KEEPS_UP * rate


def seed_means(summary: pd.DataFrame, keys: list[str], metrics: list[str]) -> pd.DataFrame:
    """Mean over seeds of `metrics`, per combination of `keys` (seeds are replicates)."""
    return summary.groupby(keys, dropna=False, sort=True)[metrics].mean().reset_index()


def fmt(value: float, digits: int = 3) -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "n/a"
    if isinstance(value, (int, np.integer)):
        return f"{value:,}"
    return f"{value:.{digits}g}"


def ratio(num: float, den: float) -> float:
    return num / den if den and math.isfinite(den) and den > 0 else math.nan


def md_table(rows: list[list], header: list[str]) -> str:
    """A GitHub markdown table; floats are formatted with `fmt`, strings kept as they are."""
    def cell(v) -> str:
        return v if isinstance(v, str) else fmt(v)
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in rows]
    return "\n".join(lines)


def splice(doc: str, name: str, block: str) -> str:
    """Replace the text between NAME's markers in `doc` with `block` (ValueError if absent)."""
    begin, end = f"<!-- reproduce:{name} -->", f"<!-- /reproduce:{name} -->"
    pattern = re.compile(re.escape(begin) + r".*?" + re.escape(end), re.DOTALL)
    if not pattern.search(doc):
        raise ValueError(f"no {begin} ... {end} markers in the document")
    return pattern.sub(lambda _: f"{begin}\n{block.strip()}\n{end}", doc, count=1)


@dataclass
class FigureData:
    """What a figure's report reads: each TOML's sweep summary (variants concatenated, with
    the variant's field as a column), the sweeps that produced them, and where to write."""

    summaries: dict[str, pd.DataFrame]
    sweeps: dict[str, list[SweepRun]]
    runs_dir: Path
    out_dir: Path
    workers: int


@dataclass
class FigureReport:
    markdown: str
    images: list[Path]
    # [claim, paper's setup, paper, ours, why they differ] rows, gathered into the summary table
    claims: list[list[str]]
    results: pd.DataFrame | None = None  # the seed means the tables quote, written as <fig>_results.csv


def long_results(frame: pd.DataFrame, table: str, ids: list[str], metrics: list[str]) -> pd.DataFrame:
    """`frame` as rows of (table, the id columns joined as `key`, metric, value): one format
    for every figure's `<fig>_results.csv`."""
    rows = []
    for _, r in frame.iterrows():
        key = "; ".join(f"{c}={r[c]}" for c in ids)
        rows += [{"table": table, "key": key, "metric": m, "value": float(r[m])} for m in metrics]
    return pd.DataFrame(rows, columns=["table", "key", "metric", "value"])


def seed_spread(summary: pd.DataFrame, keys: list[str], value) -> pd.DataFrame:
    """Per combination of `keys`: min and max over seeds of `value(seed_frame)` (a float)."""
    rows = []
    for key, g in summary.groupby(keys, sort=True):
        per_seed = [value(s) for _, s in g.groupby("seed")]
        key = key if isinstance(key, tuple) else (key,)
        rows.append({**dict(zip(keys, key, strict=True)), "min": np.nanmin(per_seed), "max": np.nanmax(per_seed),
                     "num_seeds": len(per_seed)})
    return pd.DataFrame(rows)
