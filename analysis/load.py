"""Reading run and sweep directories into validated frames (DESIGN.md, "Results").

A run directory holds `requests.parquet`, `summary.csv` and `config.json`, and optionally
`iterations.parquet` and `spans.parquet`. A sweep directory holds `cells.csv`,
`summary.csv` (every done cell's summary rows plus its parameter columns and `cell_id`) and
`cells/<cell_id>/` run directories.

Invariants: every loader either returns frames that have the columns the analysis needs and
at least one row, or raises `InputError` with a one-line message naming the file and what is
wrong. Nothing here drops rows. `swap` values that are missing stay missing; groupings use
`dropna=False` so such rows keep their own group.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, fields
from pathlib import Path

import pandas as pd

from analysis.metrics import add_derived, summarize
from policy import SchedulerConfig


class InputError(ValueError):
    """A run or sweep directory, or one of its files, cannot be analysed. One-line message."""


REQUEST_COLUMNS = (
    "policy", "swap", "request_id", "replica", "arrival_s", "first_token_s", "finish_s",
    "prompt_tokens", "output_tokens", "num_preemptions", "num_swaps", "status",
)
SUMMARY_COLUMNS = ("policy", "swap", "num_finished", "jct_mean_s")
# Run directories written before summary.csv named its counts explicitly called the finished
# requests `num_requests`; read them under today's name.
LEGACY_SUMMARY_NAMES = {"num_requests": "num_finished"}
ITERATION_COLUMNS = ("policy", "swap", "replica", "start_s", "end_s")
SPAN_COLUMNS = ("policy", "swap", "replica", "request_id", "kind", "start_s", "end_s")
CELL_COLUMNS = ("cell_id", "status")
# SchedulerConfig fields a sweep grid may also vary (sim.sweep_config.SCHEDULER_GRID_KEYS).
SCHEDULER_PARAM_COLUMNS = tuple(sorted({f.name for f in fields(SchedulerConfig)} - {"swap", "max_batch_size"}))
# Sweep grid parameters, in the order labels and file names list them.
PARAM_COLUMNS = (
    "policy", "swap", "rate", "cv", "lengths", "profile", "replicas", "tp", "pp", "max_batch",
    *SCHEDULER_PARAM_COLUMNS, "seed",
)
SWEEP_SUMMARY_COLUMNS = ("cell_id", "policy", "swap", "rate")


@dataclass(frozen=True)
class RunData:
    path: Path
    requests: pd.DataFrame
    summary: pd.DataFrame
    config: dict
    iterations: pd.DataFrame | None
    spans: pd.DataFrame | None


@dataclass(frozen=True)
class SweepData:
    path: Path
    cells: pd.DataFrame
    summary: pd.DataFrame

    def counts(self) -> dict[str, int]:
        """Cells per status, e.g. {"done": 10, "failed": 2, "pending": 0}."""
        return {s: int((self.cells["status"] == s).sum()) for s in ("done", "failed", "pending")}


def check_columns(df: pd.DataFrame, required: tuple[str, ...], path: Path) -> None:
    missing = [c for c in required if c not in df.columns]
    if missing:
        raise InputError(f"{path}: missing column(s) {', '.join(missing)}")
    if df.empty:
        raise InputError(f"{path}: has no rows")


def _read(path: Path) -> pd.DataFrame:
    try:
        return pd.read_parquet(path) if path.suffix == ".parquet" else pd.read_csv(path)
    except pd.errors.EmptyDataError:
        raise InputError(f"{path}: file is empty") from None
    except (OSError, ValueError) as exc:  # pyarrow and the CSV parser raise subclasses of these
        first_line = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise InputError(f"{path}: cannot read ({first_line})") from None


def kind_of(path: str | Path) -> str:
    """"run" or "sweep", from the files present; InputError otherwise."""
    p = Path(path)
    if not p.is_dir():
        raise InputError(f"{p}: not a directory")
    if (p / "cells.csv").is_file():
        return "sweep"
    if (p / "requests.parquet").is_file():
        return "run"
    raise InputError(
        f"{p}: neither a run directory (no requests.parquet) nor a sweep directory (no cells.csv)"
    )


def _optional(path: Path, required: tuple[str, ...]) -> pd.DataFrame | None:
    if not path.is_file():
        return None
    df = _read(path)
    check_columns(df, required, path)
    return df


def load_run(path: str | Path) -> RunData:
    p = Path(path)
    if kind_of(p) != "run":
        raise InputError(f"{p}: is a sweep directory; pass one of its cells/<cell_id> run directories")
    requests = _read(p / "requests.parquet")
    check_columns(requests, REQUEST_COLUMNS, p / "requests.parquet")
    if "jct_s" not in requests:
        requests = add_derived(requests)
    summary_path = p / "summary.csv"
    if summary_path.is_file():
        summary = _read(summary_path)
        if "num_finished" not in summary:
            summary = summary.rename(columns=LEGACY_SUMMARY_NAMES)
        check_columns(summary, SUMMARY_COLUMNS, summary_path)
    else:  # derived data: recomputing it loses nothing
        summary = summarize(requests)
    config: dict = {}
    config_path = p / "config.json"
    if config_path.is_file():
        try:
            config = json.loads(config_path.read_text())
        except json.JSONDecodeError as exc:
            raise InputError(f"{config_path}: invalid JSON (line {exc.lineno}: {exc.msg})") from None
        if not isinstance(config, dict):
            raise InputError(f"{config_path}: expected a JSON object")
    return RunData(
        path=p, requests=requests, summary=summary, config=config,
        iterations=_optional(p / "iterations.parquet", ITERATION_COLUMNS),
        spans=_optional(p / "spans.parquet", SPAN_COLUMNS),
    )


def load_sweep(path: str | Path) -> SweepData:
    p = Path(path)
    if kind_of(p) != "sweep":
        raise InputError(f"{p}: is a run directory, not a sweep directory (no cells.csv)")
    cells = _read(p / "cells.csv")
    check_columns(cells, CELL_COLUMNS, p / "cells.csv")
    summary_path = p / "summary.csv"
    if not summary_path.is_file():
        raise InputError(f"{summary_path}: missing (no cell of the sweep has finished)")
    summary = _read(summary_path)
    check_columns(summary, SWEEP_SUMMARY_COLUMNS, summary_path)
    return SweepData(path=p, cells=cells, summary=summary)


def find_config_value(config: dict, key: str):
    """The value of `key` anywhere in a nested config; None when absent.

    The resolved configuration nests sections (profile, cluster, ...) whose layout belongs to
    the engines, so the analysis looks a key up wherever it sits. Two different values for
    the same key are ambiguous and raise InputError.
    """
    found = []

    def walk(node) -> None:
        if isinstance(node, dict):
            for k, v in node.items():
                if k == key and not isinstance(v, (dict, list)):
                    found.append(v)
                else:
                    walk(v)
        elif isinstance(node, list):
            for v in node:
                walk(v)

    walk(config)
    if len(set(map(repr, found))) > 1:
        raise InputError(f"config.json: {key} has several values {sorted(set(map(repr, found)))}")
    return found[0] if found else None
