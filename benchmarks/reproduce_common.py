"""Shared pieces of `benchmarks/reproduce.py`: the sweep list, quick grids, tables and splicing.

Invariants:
- Every sweep that a figure reads is a TOML file under `docs/reproduction/`, run as written.
  The only exception is a *variant*: the same TOML run once per value of one
  `SchedulerConfig` field (the sweep grid has no key for scheduler fields); each variant's
  resolved configuration is written to its own `sweep.json`, so every number still traces back
  to a configuration on disk.
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
KEEPS_UP = 0.9  # a cell "keeps up" when its throughput is >= 90% of the arrival rate
QUICK_NUM_REQUESTS = 30

# Configs run once per value of one scheduler field (see the module docstring).
VARIANTS: dict[str, tuple[str, tuple[float, ...]]] = {
    "fig3c_alpha": ("alpha_s", (0.1, 0.3, 1.0, 3.0, 10.0)),
    "fig3c_quantum": ("base_quantum_s", (0.0025, 0.005, 0.01, 0.02, 0.04, 0.08)),
}


@dataclass(frozen=True)
class SweepRun:
    """One sweep to run: a config (possibly a variant of a TOML file) and where it goes."""

    name: str  # the TOML's stem, e.g. "fig3c_alpha"
    config: SweepConfig
    subdir: str  # relative to the runs directory
    variant: dict  # {} or {scheduler field: value}


def expand(name: str, config: SweepConfig, quick: bool) -> list[SweepRun]:
    """The sweeps that one TOML stands for: itself, or one per variant value."""
    if quick:
        config = shrink(config)
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
    claims: list[list[str]]  # [claim, paper, ours] rows, also gathered into the summary table
