"""`fastserve export-timeline RUN_DIR`: a run directory (simulated or live) as Chrome trace-event
JSON for Perfetto and chrome://tracing (analysis/trace_events.py)."""

from __future__ import annotations

from pathlib import Path

import click


@click.command("export-timeline")
@click.argument("run_dir", type=click.Path(file_okay=False))
@click.option("-o", "--out", "out_path", type=click.Path(dir_okay=False), default=None, help="JSON file to write [RUN_DIR/trace_events.json].")
def export_timeline_cmd(run_dir, out_path):
    """Write RUN_DIR's iterations, swaps and per-request spans as trace-event JSON (open it in
    ui.perfetto.dev or chrome://tracing). Swaps and running spans need a run recorded with --spans."""
    from analysis.load import InputError
    from analysis.trace_events import write_trace_events

    out = Path(out_path) if out_path else Path(run_dir) / "trace_events.json"
    try:
        counts = write_trace_events(run_dir, out)
    except InputError as e:
        raise click.ClickException(str(e)) from None
    summary = ", ".join(f"{n:,} {cat}" for cat, n in sorted(counts.items()))
    click.echo(f"wrote {out} ({summary} events)", err=True)
