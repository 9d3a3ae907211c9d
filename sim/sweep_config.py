"""Sweep configuration: a TOML file naming a grid of simulations.

    [sweep]
    trace = "synth"          # or a trace file / sample:NAME; the grid's rate rescales a file
    num_requests = 2000      # synthetic traces only
    seeds = [0, 1]

    [grid]                   # every combination of these is one cell (x seeds)
    policy = ["fcfs", "skip-join-mlfq"]   # or specs: "pkg.mod:Class", "path/file.py:Class:param=1"
    swap = ["default"]       # "default" = the policy's own mode
    rate = [1.0, 2.0]        # requests/s
    cv = [1.0, 3.0]          # burstiness (Gamma arrivals), synthetic traces only
    lengths = ["sharegpt-multiturn-like"]
    profile = ["opt-13b_a100-80gb_tp1"]
    replicas = [1]
    max_batch = [16]

    alpha_s = [0.3, 3.0]     # any SchedulerConfig field may be an axis too (sensitivity sweeps)

    [scheduler]              # fixed SchedulerConfig fields for every cell
    [sim]                    # fixed SimConfig fields (dispatcher, skip, max_skip_iterations,
                             # record_iterations, record_spans)

Unknown sections or keys are errors naming the key, so a typo never silently sweeps nothing.
"""

from __future__ import annotations

import hashlib
import itertools
import json
from dataclasses import dataclass, field, fields
from pathlib import Path

import tomllib

from policy import POLICIES, SWAP_MODES, SchedulerConfig
from policy.loading import PolicyLoadError, file_source, parse_spec, resolve

GRID_KEYS = ("policy", "swap", "rate", "cv", "lengths", "profile", "replicas", "tp", "pp", "max_batch")
GRID_DEFAULTS = {
    "policy": ["fcfs", "skip-join-mlfq"], "swap": ["default"], "rate": [None], "cv": [1.0],
    "lengths": ["sharegpt-multiturn-like"], "profile": [None], "replicas": [1], "tp": [None], "pp": [None],
    "max_batch": [16],
}
# SchedulerConfig fields that may also be grid axes (swap and max_batch are axes already).
SCHEDULER_GRID_KEYS = tuple(sorted({f.name for f in fields(SchedulerConfig)} - {"swap", "max_batch_size"}))
SIM_KEYS = ("dispatcher", "skip", "max_skip_iterations", "record_iterations", "record_spans")


class SweepConfigError(ValueError):
    pass


@dataclass(frozen=True)
class SweepConfig:
    trace: str = "synth"
    num_requests: int = 1000
    seeds: tuple[int, ...] = (0,)
    grid: dict = field(default_factory=dict)
    scheduler: dict = field(default_factory=dict)
    sim: dict = field(default_factory=dict)
    source: str = "<config>"

    def __post_init__(self) -> None:
        where = self.source
        if self.num_requests <= 0:
            raise SweepConfigError(f"{where}: sweep.num_requests must be positive, got {self.num_requests}")
        if not self.seeds:
            raise SweepConfigError(f"{where}: sweep.seeds must list at least one seed")
        for key, values in self.grid.items():
            if key not in GRID_KEYS and key not in SCHEDULER_GRID_KEYS:
                raise SweepConfigError(f"{where}: unknown grid key {key!r}; known: {', '.join(GRID_KEYS)} "
                                       f"and the scheduler fields {', '.join(SCHEDULER_GRID_KEYS)}")
            if not isinstance(values, list) or not values:
                raise SweepConfigError(f"{where}: grid.{key} must be a non-empty list")
            if key in SCHEDULER_GRID_KEYS:
                if key in self.scheduler:
                    raise SweepConfigError(f"{where}: {key} is both a grid axis and a fixed [scheduler] value")
                for value in values:  # each value alone; combinations are checked per cell
                    try:
                        SchedulerConfig(**{key: value})
                    except ValueError as e:
                        raise SweepConfigError(f"{where}: grid.{key}: {e}") from None
        for p in self.grid.get("policy", []):
            if p in POLICIES:
                continue
            try:  # a spec (policy/loading.py): resolved here so that a typo fails before any cell runs
                resolve(p)
            except PolicyLoadError as e:
                raise SweepConfigError(f"{where}: grid.policy: {e}") from None
        for s in self.grid.get("swap", []):
            if s != "default" and s not in SWAP_MODES:
                raise SweepConfigError(f"{where}: grid.swap: unknown mode {s!r}; known: default, {', '.join(SWAP_MODES)}")
        if self.trace == "synth" and None in self.grid.get("rate", [None]):
            raise SweepConfigError(f"{where}: a synthetic sweep needs grid.rate")
        known = {f.name for f in fields(SchedulerConfig)}
        for key in self.scheduler:
            if key not in known:
                raise SweepConfigError(f"{where}: unknown scheduler key {key!r}; known: {', '.join(sorted(known))}")
        for key in self.sim:
            if key not in SIM_KEYS:
                raise SweepConfigError(f"{where}: unknown sim key {key!r}; known: {', '.join(SIM_KEYS)}")

    @classmethod
    def from_toml(cls, path: str | Path) -> SweepConfig:
        path = Path(path)
        try:
            data = tomllib.loads(path.read_text())
        except (OSError, tomllib.TOMLDecodeError) as e:
            raise SweepConfigError(f"{path}: {e}") from None
        for section in data:
            if section not in ("sweep", "grid", "scheduler", "sim"):
                raise SweepConfigError(f"{path}: unknown section [{section}]; known: sweep, grid, scheduler, sim")
        sweep = dict(data.get("sweep", {}))
        unknown = set(sweep) - {"trace", "num_requests", "seeds"}
        if unknown:
            raise SweepConfigError(f"{path}: unknown sweep key {sorted(unknown)[0]!r}; known: trace, num_requests, seeds")
        return cls(
            trace=str(sweep.get("trace", "synth")), num_requests=int(sweep.get("num_requests", 1000)),
            seeds=tuple(int(s) for s in sweep.get("seeds", [0])), grid=dict(data.get("grid", {})),
            scheduler=dict(data.get("scheduler", {})), sim=dict(data.get("sim", {})), source=str(path),
        )

    def axis_keys(self) -> tuple[str, ...]:
        """The cells' parameters: the fixed axes, then the scheduler fields this grid sweeps.
        Cells of a grid without scheduler axes keep the ids they had before those existed."""
        return GRID_KEYS + tuple(k for k in SCHEDULER_GRID_KEYS if k in self.grid)

    def cells(self) -> list[dict]:
        """Every grid point x seed, in a stable order, each with a stable `cell_id`."""
        axes = {k: self.grid[k] if k in self.grid else GRID_DEFAULTS[k] for k in self.axis_keys()}
        out = []
        for combo in itertools.product(*axes.values(), self.seeds):
            cell = dict(zip(axes, combo[:-1], strict=True))
            cell["seed"] = combo[-1]
            cell["cell_id"] = cell_id(cell)
            out.append(cell)
        return out

    def policy_files(self) -> dict[str, str]:
        """Source text of every policy file the grid names, keyed by the path as written: the
        workers load these bytes (`policy.loading.provide_file`), so a Ray node needs no copy."""
        files = {}
        for p in self.grid.get("policy", []):
            spec = parse_spec(p)
            if spec.is_file:
                path = spec.target.rsplit(":", 1)[0]
                files[path] = file_source(path)
        return files

    def to_dict(self) -> dict:
        return {"trace": self.trace, "num_requests": self.num_requests, "seeds": list(self.seeds),
                "grid": self.grid, "scheduler": self.scheduler, "sim": self.sim}


def cell_id(params: dict) -> str:
    blob = json.dumps({k: v for k, v in sorted(params.items()) if k != "cell_id"}, sort_keys=True)
    return hashlib.sha1(blob.encode()).hexdigest()[:12]
