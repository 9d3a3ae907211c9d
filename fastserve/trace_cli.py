"""`fastserve trace ...`: synthesize, inspect and convert workload traces.

A thin layer over the `traces` package: it parses options, turns library errors (`TraceError`,
`SpecError`, other `ValueError`s) into one-line `click.ClickException`s, and prints warnings
(such as "arrivals were sorted") as one line on stderr.
"""

from __future__ import annotations

import contextlib
import warnings
from collections.abc import Iterator

import click
from tqdm import tqdm

import traces
from fastserve.outputs import output_file
from traces.stats import format_stats

FORMAT_CHOICE = click.Choice(sorted(traces.FORMATS))


@contextlib.contextmanager
def _one_line_errors() -> Iterator[None]:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", traces.TraceWarning)
        try:
            yield
        except ValueError as err:
            raise click.ClickException(str(err)) from None
        finally:
            for warning in caught:
                click.echo(f"warning: {warning.message}", err=True)


def _steps(names: list[str]) -> tqdm:
    """A progress bar over the named steps of a command, on stderr (hidden when not a TTY)."""
    return tqdm(names, desc="trace", unit="step", disable=None, leave=False)


def _filter_options(command):
    for option in reversed(
        (
            click.option(
                "--max-prompt-tokens",
                type=click.IntRange(min=1),
                help="Drop requests whose prompt is longer.",
            ),
            click.option(
                "--max-total-tokens",
                type=click.IntRange(min=1),
                help="Drop requests whose prompt + output is longer.",
            ),
            click.option(
                "--min-tokens",
                type=click.IntRange(min=1),
                help="Drop requests whose prompt or output is shorter.",
            ),
        )
    ):
        command = option(command)
    return command


def _load_options(command):
    for option in reversed(
        (
            click.option(
                "--format",
                "fmt",
                type=FORMAT_CHOICE,
                help="Force the input format (default: detect from columns).",
            ),
            click.option(
                "--sort",
                is_flag=True,
                help="Sort unsorted arrivals (with a warning) instead of failing.",
            ),
            click.option(
                "--arrivals",
                help="Arrival process for tables without times, e.g. poisson:rate=4 "
                "(replaces recorded times otherwise).",
            ),
            click.option(
                "--seed",
                type=click.IntRange(min=0),
                default=0,
                show_default=True,
                help="Seed of --arrivals and of synth: specs.",
            ),
        )
    ):
        command = option(command)
    return command


@click.group("trace")
def trace() -> None:
    """Workload traces: synthesize, inspect and convert."""


@trace.command("synth", short_help="Synthesize a trace (arrivals x lengths), with filters.")
@click.option(
    "--num-requests",
    "-n",
    type=click.IntRange(min=1),
    required=True,
    help="Requests in the trace (after filtering: rejected draws are redrawn and reported).",
)
@click.option(
    "--rate", type=float, help="Mean arrival rate in requests/s (Poisson, or Gamma with --cv)."
)
@click.option(
    "--cv",
    type=float,
    default=1.0,
    show_default=True,
    help="Coefficient of variation of inter-arrival gaps; != 1 uses Gamma arrivals.",
)
@click.option(
    "--arrivals",
    help="Arrival spec instead of --rate/--cv: poisson:rate=R, gamma:rate=R,cv=C, "
    "constant:rate=R, replay:PATH.",
)
@click.option(
    "--lengths",
    required=True,
    help="Length spec: fixed:prompt=P,output=O, uniform:prompt=A-B,output=C-D, "
    "lognormal:prompt_mean=M,prompt_sigma=S,output_mean=M,output_sigma=S (M: mean token count; "
    "S: std of its log), empirical:PATH (resample a length table), alpaca-like, arxiv-like, chat-single-turn, sharegpt-multiturn-like (old name sharegpt-like: deprecated).",
)
@click.option(
    "--seed", type=click.IntRange(min=0), default=0, show_default=True, help="Random seed."
)
@_filter_options
@click.option(
    "--output",
    "-o",
    "output_path",
    required=True,
    type=click.Path(dir_okay=False),
    help="File to write: .csv, .jsonl or .parquet.",
)
def synth(
    num_requests,
    rate,
    cv,
    arrivals,
    lengths,
    seed,
    max_prompt_tokens,
    max_total_tokens,
    min_tokens,
    output_path,
) -> None:
    """Synthesize a trace from an arrival process and a length distribution."""
    if (rate is None) == (arrivals is None):
        raise click.UsageError("give exactly one of --rate (with optional --cv) or --arrivals")
    if arrivals is not None and cv != 1.0:
        raise click.UsageError("--cv goes with --rate, not with --arrivals")
    output_file(output_path, "-o")
    with _one_line_errors():
        steps = _steps(["synthesize", "write"])
        arrival_spec = traces.parse_arrivals(arrivals) if arrivals else traces.from_rate(rate, cv)
        filters = traces.Filters(max_prompt_tokens, max_total_tokens, min_tokens)
        result, report = traces.synthesize_filtered(
            num_requests, arrival_spec, lengths, seed, filters
        )
        steps.update()
        traces.save(result, output_path)
        steps.update()
        steps.close()
    click.echo(f"filter: {report}")
    click.echo(f"wrote {len(result):,} requests to {output_path} ({result.source})")


@trace.command("stats", short_help="Print a trace's counts, rate, CV and length percentiles.")
@click.argument("trace_spec", metavar="FILE")
@_load_options
@click.option(
    "--plot",
    "plot_path",
    type=click.Path(dir_okay=False),
    help="Also save length histograms and the arrival rate over time to this PNG.",
)
def stats(trace_spec, fmt, sort, arrivals, seed, plot_path) -> None:
    """Print counts, rate, burstiness and length percentiles of FILE.

    FILE is a trace file, sample:NAME or a synth:... spec.
    """
    if plot_path:
        output_file(plot_path, "--plot")
    with _one_line_errors():
        loaded = traces.resolve(trace_spec, seed=seed, fmt=fmt, sort=sort, arrivals=arrivals)
        click.echo(format_stats(loaded.stats(), f"trace: {loaded.source}"))
        if plot_path:
            from traces.plot import plot_trace  # seaborn is slow to import; only when asked

            plot_trace(loaded, plot_path)
            click.echo(f"wrote plot to {plot_path}")


@trace.command("convert", short_help="Convert any supported trace format to ours.")
@click.argument("input_spec", metavar="IN")
@click.argument("output_path", metavar="OUT", type=click.Path(dir_okay=False))
@_load_options
@_filter_options
@click.option("--time-scale", type=float, help="Multiply arrival times by this factor.")
@click.option(
    "--rescale-rate", type=float, help="Scale arrival times to this mean rate (requests/s)."
)
@click.option(
    "--head", type=click.IntRange(min=0), help="Keep only the first N requests (after filtering)."
)
def convert(
    input_spec,
    output_path,
    fmt,
    sort,
    arrivals,
    seed,
    max_prompt_tokens,
    max_total_tokens,
    min_tokens,
    time_scale,
    rescale_rate,
    head,
) -> None:
    """Read IN (any supported format, sample:NAME or synth:...) and write OUT in our schema.

    OUT's extension (.csv, .jsonl, .parquet) picks the container.
    """
    if time_scale is not None and rescale_rate is not None:
        raise click.UsageError("give at most one of --time-scale and --rescale-rate")
    output_file(output_path, "OUT")
    with _one_line_errors():
        steps = _steps(["read", "transform", "write"])
        result = traces.resolve(input_spec, seed=seed, fmt=fmt, sort=sort, arrivals=arrivals)
        steps.update()
        result, report = result.filter(max_prompt_tokens, max_total_tokens, min_tokens)
        if head is not None:
            result = result.head(head)
        if time_scale is not None:
            result = result.scale_time(time_scale)
        if rescale_rate is not None:
            result = result.rescale_rate(rescale_rate)
        steps.update()
        traces.save(result, output_path)
        steps.update()
        steps.close()
    click.echo(f"filter: {report}")
    click.echo(f"wrote {len(result):,} requests to {output_path}")
