"""`fastserve sweep`: a grid of simulations from a TOML file, locally or on Ray."""

from __future__ import annotations

import os
from pathlib import Path

import click


@click.command("sweep")
@click.argument("config_file", type=click.Path(exists=True, dir_okay=False))
@click.option("-o", "--out", "sweep_dir", required=True, type=click.Path(file_okay=False), help="Sweep directory; re-running resumes it, skipping finished cells.")
@click.option("--workers", type=int, default=None, help="Parallel simulations [number of CPUs].")
@click.option("--ray", "ray_address", default=None, help="Run on Ray: 'auto' (a running cluster, else a local one) or a cluster ADDRESS.")
def sweep_cmd(config_file, sweep_dir, workers, ray_address):
    """Run every cell of CONFIG_FILE's grid: a TOML file with [sweep], [grid], [scheduler] and
    [sim] sections. Every key is explained in docs/sweeps/README.md, next to the examples
    docs/sweeps/grid_2x3x2.toml and docs/sweeps/mlfq_sensitivity.toml."""
    from fastserve.rundir import write_sim_run
    from sim.sweep import run_sweep
    from sim.sweep_config import SweepConfig, SweepConfigError

    try:
        config = SweepConfig.from_toml(config_file)
    except SweepConfigError as e:
        raise click.ClickException(str(e)) from None
    from fastserve.outputs import output_dir

    output_dir(sweep_dir, "-o")
    workers = workers or os.cpu_count() or 1
    if workers <= 0:
        raise click.BadParameter("must be positive", param_hint="--workers")
    try:
        cells = run_sweep(config, sweep_dir, write_sim_run, workers=workers, ray_address=ray_address)
    except ValueError as e:
        raise click.ClickException(str(e)) from None
    except KeyboardInterrupt:
        click.echo(f"interrupted: every finished cell is kept in {sweep_dir}; re-run the same command to resume",
                   err=True)
        raise SystemExit(130) from None
    counts = cells.status.value_counts().to_dict()
    click.echo(f"{len(cells)} cells: {counts.get('done', 0)} done, {counts.get('failed', 0)} failed, "
               f"{counts.get('pending', 0)} pending -> {sweep_dir}/summary.csv")
    summary_path = Path(sweep_dir) / "summary.csv"
    if summary_path.is_file():
        import pandas as pd

        summary = pd.read_csv(summary_path)
        if "overloaded" in summary and summary["overloaded"].any():
            click.echo(f"warning: {int(summary['overloaded'].sum())} of {len(summary)} cells are overloaded (column "
                       "`overloaded` of summary.csv; `fastserve compare` marks them): their latencies grow with "
                       "the trace's length", err=True)
    if counts.get("failed"):
        for _, row in cells[cells.status == "failed"].iterrows():
            click.echo(f"  failed {row.cell_id}: {row.error}", err=True)
        raise SystemExit(1)
