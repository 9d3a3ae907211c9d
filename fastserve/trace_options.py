"""The trace flags of the commands that run a trace (`simulate`, `serve`, `validate`).

Trace errors may suggest `--sort` or `--arrivals` (traces/io.py), so every command that loads a
trace offers both, with `fastserve trace stats`'s meaning, and loads it the same way: errors
become one line blaming --trace.
"""

from __future__ import annotations

import click


def trace_load_options(func):
    func = click.option("--arrivals", default=None,
                        help="Arrival process for traces without times (e.g. poisson:rate=4); replaces "
                             "recorded times otherwise.")(func)
    return click.option("--sort", is_flag=True,
                        help="Sort unsorted arrivals (with a warning) instead of failing.")(func)


def load_trace(trace: str, seed: int, fmt: str | None = None, sort: bool = False, arrivals: str | None = None):
    import warnings

    import traces

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", traces.TraceWarning)
        try:
            loaded = traces.resolve(trace, seed=seed, fmt=fmt, sort=sort, arrivals=arrivals)
        except (ValueError, OSError) as e:
            raise click.BadParameter(str(e), param_hint="--trace") from None
    for warning in caught:
        click.echo(f"warning: {warning.message}", err=True)
    return loaded
