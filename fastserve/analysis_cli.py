"""`fastserve compare` and `fastserve plot`: thin click wrappers over `analysis`.

Library errors (`analysis.load.InputError`, ValueError) become one-line `click.ClickException`s
that name the path or option; no traceback reaches the user.
"""

from __future__ import annotations

from pathlib import Path

import click
from tqdm import tqdm

from analysis.compare import DEFAULT_METRICS, format_table, ratio_lines
from analysis.compare import compare as compare_runs
from analysis.load import kind_of, load_run, load_sweep
from analysis.plot_dir import plan_plots, write_plots
from analysis.run_metrics import run_metrics
from analysis.sweep_table import constant_params, format_sweep_table, sweep_table
from fastserve.outputs import output_dir, output_file


def _run_names(paths: tuple[str, ...]) -> list[str]:
    """Directory names, or the paths as given when two names collide."""
    names = [Path(p).resolve().name for p in paths]
    return names if len(set(names)) == len(names) else [str(p) for p in paths]


@click.command()
@click.argument("run_dirs", nargs=-1, required=True, type=click.Path(file_okay=False))
@click.option("--baseline", default="fcfs", show_default=True,
              help="Policy the ratios are taken against (looked up in the same run first).")
@click.option("--metric", "metrics", multiple=True, metavar="COLUMN",
              help="Metric column to compare; repeat for several. Any summary.csv column, or swap_tokens, "
                   "swap_bytes, request_imbalance, token_imbalance, slo_attainment, goodput_rps. "
                   f"Default: {', '.join(DEFAULT_METRICS)} (plus slo_attainment and goodput_rps with SLO limits).")
@click.option("--ttft-slo-s", type=float, default=None,
              help="TTFT limit in seconds for SLO attainment and goodput (needs --tpot-slo-s).")
@click.option("--tpot-slo-s", type=float, default=None,
              help="Time-per-output-token limit in seconds for SLO attainment (needs --ttft-slo-s).")
@click.option("-o", "--output", type=click.Path(dir_okay=False), default=None,
              help="Also write the table, values and ratios, as CSV to this file.")
def compare(run_dirs, baseline, metrics, ttft_slo_s, tpot_slo_s, output) -> None:
    """Compare policies side by side across RUN_DIR..., with ratios to a baseline policy.
    Given one sweep directory instead, print a row per combination of the swept parameters
    (mean over seeds), with ratios to the baseline policy at the same parameters."""
    if (ttft_slo_s is None) != (tpot_slo_s is None):
        raise click.BadParameter("give both --ttft-slo-s and --tpot-slo-s, or neither", param_hint="--ttft-slo-s")
    with_slo = ttft_slo_s is not None
    if output:
        output_file(output, "-o")
    if not metrics:
        metrics = DEFAULT_METRICS + (("slo_attainment", "goodput_rps") if with_slo else ())
    try:
        sweeps = [p for p in run_dirs if kind_of(p) == "sweep"]
    except ValueError as exc:
        raise click.ClickException(str(exc)) from None
    if sweeps:
        if len(run_dirs) > 1:
            raise click.ClickException(f"{sweeps[0]}: is a sweep directory; compare one sweep at a time, or run directories")
        if with_slo:
            raise click.BadParameter("SLO limits need per-request data: compare the sweep's cells/<cell_id> runs",
                                     param_hint="--ttft-slo-s")
        _compare_sweep(sweeps[0], baseline, list(metrics), output)
        return
    try:
        frames = [run_metrics(load_run(p), ttft_slo_s, tpot_slo_s) for p in run_dirs]
        baseline = _default_baseline(frames, baseline)
        table = compare_runs(list(zip(_run_names(run_dirs), frames, strict=True)), baseline, list(metrics))
    except ValueError as exc:  # InputError included: it names the file
        raise click.ClickException(str(exc)) from None
    click.echo(format_table(table, metrics))
    click.echo()
    for line in ratio_lines(table, metrics):
        click.echo(line)
    _warn_overloaded(table)
    if with_slo:
        click.echo(f"SLO: TTFT <= {ttft_slo_s:g} s and TPOT <= {tpot_slo_s:g} s; rejected and unfinished "
                   "requests count as misses")
    if output:
        _write_csv(table, output)


def _warn_overloaded(table) -> None:
    if "overloaded" in table and table["overloaded"].astype(bool).any():
        click.echo(f"warning: {int(table['overloaded'].astype(bool).sum())} of {len(table)} rows are overloaded "
                   "(throughput under 90% of a keeping-up server's, or offered above the profile's sustainable rate): "
                   "their latencies grow with the trace's length", err=True)


def _default_baseline(frames, baseline: str) -> str:
    """Without --baseline, runs that lack fcfs (a `fastserve bench` or `serve --http` run holds the
    one policy it measured) compare against their first policy, said on stderr."""
    ctx = click.get_current_context()
    given = ctx.get_parameter_source("baseline") is not click.core.ParameterSource.DEFAULT
    if given or any((f["policy"] == baseline).any() for f in frames) or frames[0].empty:
        return baseline
    first = str(frames[0]["policy"].iloc[0])
    click.echo(f"note: no {baseline} row in these runs; ratios are to {first} (choose with --baseline)", err=True)
    return first


def _write_csv(table, output: str) -> None:
    try:
        table.to_csv(output, index=False)
    except OSError as exc:
        raise click.ClickException(f"{output}: cannot write ({exc.strerror or exc})") from None
    click.echo(f"wrote {output}")


def _compare_sweep(path: str, baseline: str, metrics: list[str], output: str | None) -> None:
    try:
        sweep = load_sweep(path)
        table = sweep_table(sweep.summary, metrics, baseline)
    except ValueError as exc:
        raise click.ClickException(str(exc)) from None
    counts = sweep.counts()
    click.echo(f"{path}: {counts['done']} of {len(sweep.cells)} cells done"
               + (f" ({counts['failed']} failed, {counts['pending']} pending: see cells.csv)"
                  if counts["failed"] or counts["pending"] else ""))
    fixed = constant_params(sweep.summary)
    if fixed:
        click.echo("fixed: " + ", ".join(f"{k}={v}" for k, v in fixed.items()))
    click.echo(format_sweep_table(table, metrics))
    _warn_overloaded(table)
    if table[[f"{m}_x" for m in metrics]].isna().all().all():
        click.echo(f"no ratios: baseline policy {baseline!r} is not in the sweep (--baseline)")
    else:
        click.echo(f"ratios: to {baseline} at the same parameters")
    if output:
        _write_csv(table, output)


@click.command()
@click.argument("directory", type=click.Path(file_okay=False))
@click.option("-o", "--out-dir", required=True, type=click.Path(file_okay=False),
              help="Directory to write the PNG files to (created if missing).")
@click.option("--slo-s", type=float, default=None,
              help="Normalized-latency SLO in s/token: draws the SLO line and marks throughput at SLO (sweeps).")
@click.option("--slo-stat", type=click.Choice(["p95", "mean"]), default="p95", show_default=True,
              help="Which normalized latency the SLO bounds.")
@click.option("--max-gantt-requests", type=click.IntRange(min=1), default=40, show_default=True,
              help="Draw at most this many requests (earliest arrivals) in the Gantt chart.")
def plot(directory, out_dir, slo_s, slo_stat, max_gantt_requests) -> None:
    """Write the plots that DIRECTORY (a run or sweep directory) supports, as PNGs in OUT_DIR."""
    if slo_s is not None and not slo_s > 0:
        raise click.BadParameter(f"must be > 0, got {slo_s}", param_hint="--slo-s")
    output_dir(out_dir, "-o")
    try:
        plan = plan_plots(directory, slo_s, slo_stat, max_gantt_requests)
        written = write_plots(plan, out_dir, lambda jobs: tqdm(jobs, desc="plots", unit="plot", leave=False))
    except ValueError as exc:
        raise click.ClickException(str(exc)) from None
    except OSError as exc:  # the output directory: not writable, disk full
        raise click.ClickException(f"{exc.filename or out_dir}: cannot write ({exc.strerror or exc})") from None
    for path in written:
        click.echo(f"wrote {path}")
    for reason in plan.skipped:
        click.echo(f"skipped: {reason}")
    for note in plan.notes:
        click.echo(f"note: {note}")
