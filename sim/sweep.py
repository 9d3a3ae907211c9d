"""Sweeps: many simulations over a grid, on local processes or a Ray cluster.

Layout of SWEEP_DIR (what `analysis` reads):
  sweep.json      the resolved configuration
  cells.csv       one row per cell: cell_id, status (done | failed | pending), error, parameters
  cells/<id>/     each finished cell's run directory
  summary.csv     every done cell's summary rows, with the cell's parameters

Invariants: a cell's directory appears atomically (written to `<id>.partial`, then renamed), so
a re-run skips exactly the cells that finished and redoes the rest; a cell that raises is
recorded with its error and the others go on; workers return results to the driver, which alone
writes, so a Ray cluster needs no shared filesystem. Cells are independent and deterministic,
so both backends give identical results.
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import signal
import traceback
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor, as_completed
from pathlib import Path

import pandas as pd
from tqdm import tqdm

from policy import SchedulerConfig
from policy.loading import provide_file
from profiles.sustainable import sustainable_rate_rps
from sim.cluster import SimResult, simulate
from sim.config import SimConfig
from sim.sweep_config import SCHEDULER_GRID_KEYS, SweepConfig

# write_cell(run_dir, config_dict, result) -> that cell's summary frame (injected by the CLI,
# which owns the run-directory format).
CellWriter = Callable[[Path, dict, SimResult], pd.DataFrame]


def build_cell(cell: dict, sweep: dict):
    """The trace, cost model and configs of one cell (raises ValueError on bad parameters)."""
    import profiles
    import traces

    cost = profiles.cost_model(profiles.load_profile(cell["profile"] or profiles.DEFAULT_PROFILE))
    for key in ("tp", "pp"):
        if cell[key] is not None and cell[key] != getattr(cost, key):
            raise ValueError(f"profile {cell['profile']} has {key}={getattr(cost, key)}, the cell asks {key}={cell[key]}")
    sched_fields = dict(sweep["scheduler"])
    sched_fields.update({k: cell[k] for k in SCHEDULER_GRID_KEYS if k in cell})
    sched_fields.setdefault("device_kv_tokens", cost.device_kv_tokens)
    sched_fields.setdefault("host_kv_tokens", cost.host_kv_tokens)
    model = cost.profile.model  # the context limit defaults to the model's, as in `fastserve simulate`
    sched_fields.setdefault("max_seq_tokens", model.max_position_embeddings)
    if sched_fields["max_seq_tokens"] > model.max_position_embeddings:
        raise ValueError(f"max_seq_tokens = {sched_fields['max_seq_tokens']} exceeds {model.name}'s context of "
                         f"{model.max_position_embeddings} tokens")
    sched = SchedulerConfig(**sched_fields, max_batch_size=cell["max_batch"],
                            swap=None if cell["swap"] == "default" else cell["swap"])
    if sweep["trace"] == "synth":
        kind = "poisson" if cell["cv"] == 1 else "gamma"
        arrivals = f"poisson:rate={cell['rate']}" if kind == "poisson" else f"gamma:rate={cell['rate']},cv={cell['cv']}"
        filters = traces.Filters(max_prompt_tokens=min(1024, sched.max_seq_tokens), max_total_tokens=sched.max_seq_tokens)
        trace, _ = traces.synthesize_filtered(sweep["num_requests"], arrivals, cell["lengths"], cell["seed"], filters)
    else:
        trace = traces.resolve(sweep["trace"], seed=cell["seed"])
        if cell["rate"] is not None:
            trace = trace.rescale_rate(cell["rate"])
    sim = SimConfig(num_replicas=cell["replicas"], pp=cost.pp, **sweep["sim"])
    return trace, cost, sched, sim


def run_cell(cell: dict, sweep: dict) -> dict:
    """Simulate one cell. Never raises: an error comes back as {"error": ...}."""
    try:
        for path, source in sweep.get("policy_files", {}).items():
            provide_file(path, source)
        trace, cost, sched, sim = build_cell(cell, sweep)
        result = simulate(trace, cost, cell["policy"], sched, sim)
        return {"cell": cell, "result": result, "config": {
            "engine": "sim", "cell": cell,
            "sweep": {k: v for k, v in sweep.items() if k != "policy_files"}, "scheduler": dataclasses.asdict(sched),
            "sim": dataclasses.asdict(sim), "kv_bytes_per_token": cost.kv_bytes_per_token,
            "num_requests": len(trace.arrival_s),
            "sustainable_rps": sustainable_rate_rps(cost, trace.prompt_tokens, trace.output_tokens,
                                                    sched.max_batch_size, sched.device_kv_tokens, sim.num_replicas)}}
    except Exception as e:  # noqa: BLE001 - a failing cell is data, not a crash
        return {"cell": cell, "error": f"{type(e).__name__}: {e}", "traceback": traceback.format_exc()}


def _cells_frame(cells: list[dict], status: dict[str, tuple[str, str]]) -> pd.DataFrame:
    rows = [{"cell_id": c["cell_id"], "status": status.get(c["cell_id"], ("pending", ""))[0],
             "error": status.get(c["cell_id"], ("", ""))[1], **{k: v for k, v in c.items() if k != "cell_id"}}
            for c in cells]
    return pd.DataFrame(rows)


def _write_csv(df: pd.DataFrame, path: Path) -> None:
    tmp = path.with_name(path.name + ".tmp")
    df.to_csv(tmp, index=False)
    os.replace(tmp, path)


def run_sweep(config: SweepConfig, out_dir: str | Path, write_cell: CellWriter, *, workers: int = 1,
              ray_address: str | None = None, progress: bool = True) -> pd.DataFrame:
    """Run every unfinished cell; returns cells.csv's frame. `ray_address`: None (local
    processes), "auto" (connect to a running cluster or start a local one) or an address."""
    out = Path(out_dir)
    (out / "cells").mkdir(parents=True, exist_ok=True)
    sweep = config.to_dict()
    (out / "sweep.json").write_text(json.dumps(sweep, indent=2))
    cells = config.cells()
    status: dict[str, tuple[str, str]] = {}
    for cell in cells:
        if (out / "cells" / cell["cell_id"] / "summary.csv").exists():
            status[cell["cell_id"]] = ("done", "")
    todo = [c for c in cells if c["cell_id"] not in status]
    bar = tqdm(total=len(cells), initial=len(cells) - len(todo), desc="sweep", unit="cell", disable=not progress)

    def finish(outcome: dict) -> None:
        cid = outcome["cell"]["cell_id"]
        if "error" in outcome:
            status[cid] = ("failed", outcome["error"])
            bar.write(f"cell {cid} failed: {outcome['error']}")
        else:
            partial = out / "cells" / f"{cid}.partial"
            shutil.rmtree(partial, ignore_errors=True)
            write_cell(partial, outcome["config"], outcome["result"])
            os.replace(partial, out / "cells" / cid)
            status[cid] = ("done", "")
        _write_csv(_cells_frame(cells, status), out / "cells.csv")
        bar.update(1)

    _write_csv(_cells_frame(cells, status), out / "cells.csv")
    sweep = {**sweep, "policy_files": config.policy_files()}  # for the workers; not in sweep.json
    try:
        if ray_address is not None:
            _run_ray(todo, sweep, finish, ray_address, workers)
        elif workers <= 1:
            for cell in todo:
                finish(run_cell(cell, sweep))
        else:
            _run_local(todo, sweep, finish, workers)
    finally:
        bar.close()
        _write_summary(out, cells, status)
    return _cells_frame(cells, status)


def _ignore_sigint() -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the driver alone decides what Ctrl-C stops


def _run_local(todo: list[dict], sweep: dict, finish, workers: int) -> None:
    """Cells on local processes. Ctrl-C (KeyboardInterrupt in the driver) stops at once: queued
    cells are cancelled and running ones killed, since a cell is kept only when it finishes;
    every cell that finished before was already written by `finish`."""
    pool = ProcessPoolExecutor(max_workers=workers, initializer=_ignore_sigint)
    try:
        futures = [pool.submit(run_cell, cell, sweep) for cell in todo]
        for fut in as_completed(futures):
            finish(fut.result())
    except BaseException:
        # concurrent.futures has no public way to stop running work before Python 3.14's
        # terminate_workers(); waiting for it is what made Ctrl-C take as long as the sweep.
        processes = list((getattr(pool, "_processes", None) or {}).values())
        pool.shutdown(wait=False, cancel_futures=True)
        for process in processes:
            process.terminate()
        for process in processes:
            process.join()
        raise
    pool.shutdown()


def _run_ray(todo: list[dict], sweep: dict, finish, address: str, workers: int) -> None:
    try:
        import ray
    except ImportError:
        raise ValueError("--ray needs the `cluster` extra: pip install 'fastserve[cluster]'") from None
    if not ray.is_initialized():
        if address == "auto":
            ray.init(num_cpus=workers if workers > 1 else None, include_dashboard=False, log_to_driver=False)
        else:
            ray.init(address=address, log_to_driver=False)
    remote = ray.remote(run_cell)
    pending = [remote.remote(cell, sweep) for cell in todo]
    while pending:
        ready, pending = ray.wait(pending, num_returns=1)
        finish(ray.get(ready[0]))


def _write_summary(out: Path, cells: list[dict], status: dict[str, tuple[str, str]]) -> None:
    frames = []
    for cell in cells:
        if status.get(cell["cell_id"], ("",))[0] != "done":
            continue
        df = pd.read_csv(out / "cells" / cell["cell_id"] / "summary.csv")
        for key, value in cell.items():
            if key not in df.columns:  # policy and swap come from the run (swap resolved)
                df[key] = value
        frames.append(df)
    if frames:
        _write_csv(pd.concat(frames, ignore_index=True), out / "summary.csv")
