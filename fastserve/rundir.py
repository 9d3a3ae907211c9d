"""Run directories: the one result format both engines write (DESIGN.md, "Results").

`RunWriter` rewrites the files atomically (temp file, then rename) after every policy, so an
interrupted run keeps every policy that finished. It creates the directory and writes
config.json with the first policy's results, so a run that fails before any result leaves no
half-written directory. Layout:
  requests.parquet   one row per request and policy
  summary.csv        one row per (policy, swap)
  config.json        resolved configuration, seed, package versions, git SHA, and under
                     `policy_classes` each policy's class, module, file and file sha256
  iterations.parquet optional, one row per iteration (timeline plots)
  spans.parquet      optional, per-request running/swap spans (Gantt charts, small traces)
  tokens.parquet     optional, `fastserve bench`: when each token reached the client
"""

from __future__ import annotations

import json
import os
import subprocess
from importlib import metadata
from pathlib import Path

import numpy as np
import pandas as pd

from analysis.metrics import add_derived, summarize
from policy.records import RequestLog


def requests_frame(log: RequestLog, policy: str, swap: str) -> pd.DataFrame:
    cols: dict[str, np.ndarray | list] = {
        "policy": [policy] * len(log),
        "swap": [swap] * len(log),
    }
    for name, values in log.ints.items():
        cols[name] = np.frombuffer(values, dtype=np.int64) if len(values) else np.zeros(0, np.int64)
    for name, values in log.floats.items():
        cols[name] = np.frombuffer(values, dtype=np.float64) if len(values) else np.zeros(0)
    cols["status"] = log.status
    cols["reason"] = log.reason
    df = pd.DataFrame(cols)
    return add_derived(df).sort_values("request_id", kind="stable").reset_index(drop=True)


def environment() -> dict:
    versions = {}
    for pkg in ("fastserve", "simpy", "torch", "transformers", "numpy", "pandas"):
        try:
            versions[pkg] = metadata.version(pkg)
        except metadata.PackageNotFoundError:
            versions[pkg] = None
    try:
        sha = subprocess.run(
            ["git", "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5,
            cwd=Path(__file__).resolve().parent,
        ).stdout.strip() or None
    except (OSError, subprocess.SubprocessError):
        sha = None
    return {"versions": versions, "git_sha": sha}


def _atomic_write(path: Path, write) -> None:
    tmp = path.with_name(path.name + ".tmp")
    write(tmp)
    os.replace(tmp, path)


class RunWriter:
    def __init__(self, run_dir: str | os.PathLike, config: dict) -> None:
        """`config["sustainable_rps"]`, when present, is the profile's estimated sustainable
        rate (`profiles.sustainable`): summary.csv then marks runs offered more as overloaded."""
        self.dir = Path(run_dir)
        self.sustainable_rps = config.get("sustainable_rps")
        self.config = {**config, **environment()}
        self._requests: list[pd.DataFrame] = []
        self._iterations: list[pd.DataFrame] = []
        self._spans: list[pd.DataFrame] = []

    @property
    def requests(self) -> pd.DataFrame:
        """Every policy's requests so far, one frame."""
        return pd.concat(self._requests, ignore_index=True)

    def _write_config(self) -> None:
        _atomic_write(self.dir / "config.json", lambda p: p.write_text(json.dumps(self.config, indent=2, default=str)))

    def _record_policies(self, requests: pd.DataFrame) -> None:
        """Name the class behind each new policy spec, so that the run can be repeated."""
        from policy.loading import PolicyLoadError, provenance

        classes = self.config.setdefault("policy_classes", {})
        new = [p for p in dict.fromkeys(requests["policy"]) if p not in classes]
        for spec in new:
            try:
                classes[spec] = provenance(spec)
            except PolicyLoadError as e:  # results are never lost over a missing record
                classes[spec] = {"spec": spec, "error": str(e)}
        if new:
            self._write_config()

    def add(self, requests: pd.DataFrame, iterations: pd.DataFrame | None = None,
            spans: pd.DataFrame | None = None, run_stats: dict | None = None) -> pd.DataFrame:
        """Add one policy's results and rewrite the directory. Returns the summary so far.
        `run_stats` (e.g. num_extrapolations) go to config.json under "runs", by policy."""
        if not self._requests:
            self.dir.mkdir(parents=True, exist_ok=True)
        if run_stats is not None and len(requests):
            self.config.setdefault("runs", {})[str(requests["policy"].iloc[0])] = run_stats
        if not self._requests or run_stats is not None:
            self._write_config()
        self._requests.append(requests)
        self._record_policies(requests)
        if iterations is not None:
            self._iterations.append(iterations)
        if spans is not None:
            self._spans.append(spans)
        all_requests = self.requests
        summary = summarize(all_requests, self.sustainable_rps)
        _atomic_write(self.dir / "requests.parquet", lambda p: all_requests.to_parquet(p, index=False))
        _atomic_write(self.dir / "summary.csv", lambda p: summary.to_csv(p, index=False))
        if self._iterations:
            frame = pd.concat(self._iterations, ignore_index=True)
            _atomic_write(self.dir / "iterations.parquet", lambda p: frame.to_parquet(p, index=False))
        if self._spans:
            frame = pd.concat(self._spans, ignore_index=True)
            _atomic_write(self.dir / "spans.parquet", lambda p: frame.to_parquet(p, index=False))
        return summary

    def add_table(self, name: str, frame: pd.DataFrame) -> None:
        """Write one more table, `<name>.parquet` (replaced atomically)."""
        _atomic_write(self.dir / f"{name}.parquet", lambda p: frame.to_parquet(p, index=False))


def write_sim_run(run_dir: str | os.PathLike, config: dict, result) -> pd.DataFrame:
    """One simulation result as a run directory (the sweep's cell writer)."""
    writer = RunWriter(run_dir, config)
    return writer.add(requests_frame(result.log, result.policy, result.swap), result.iterations, result.spans,
                      run_stats={"num_extrapolations": result.stats.get("num_extrapolations", 0)})
