"""Say out loud when a run's numbers describe an overloaded server or a trace it mostly refused.

Before a run, `warn_offered` compares the trace's offered rate with the rate the profile can
sustain on its lengths (`profiles.sustainable`); after each policy, `warn_results` reports a
rejection share above REJECTED_WARN_SHARE and a throughput under the summary's overload share of
the admitted rate. Each warning is one line on stderr, so tables on stdout stay clean.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import click

if TYPE_CHECKING:  # the CLI imports this module at start-up: no pandas or numpy until a run
    import pandas as pd

REJECTED_WARN_SHARE = 0.02  # a few percent refused already changes what the latencies describe


def offered_rate_rps(arrival_s) -> float:
    import numpy as np

    arrivals = np.asarray(arrival_s, dtype=np.float64)
    span_s = float(arrivals.max() - arrivals.min()) if len(arrivals) > 1 else 0.0
    return len(arrivals) / span_s if span_s > 0 else float("nan")


def sustainable_rps(cost, trace, config, num_replicas: int = 1) -> float | None:
    """The profile's estimated sustainable rate on this trace's lengths; None without a profile."""
    if cost is None:
        return None
    from profiles.sustainable import sustainable_rate_rps

    return sustainable_rate_rps(cost, trace.prompt_tokens, trace.output_tokens, config.max_batch_size,
                                config.device_kv_tokens, num_replicas)


def warn_offered(trace, sustainable: float | None, profile_name: str) -> None:
    offered = offered_rate_rps(trace.arrival_s)
    if sustainable is None or not offered > sustainable:
        return
    click.echo(f"warning: overload: the trace offers {offered:.3g} req/s, above the ~{sustainable:.3g} req/s that "
               f"{profile_name} sustains on its lengths; queues grow with the trace's length, so latencies depend "
               "on where it stops (lower the rate, e.g. `fastserve trace convert --rescale-rate`)", err=True)


def warn_results(requests: pd.DataFrame, summary: pd.DataFrame) -> None:
    """One line per policy that refused more than a few percent, or fell behind its arrivals."""
    for _, row in summary.iterrows():
        label = f"{row['policy']} ({row['swap']})"
        offered, rejected = int(row["num_offered"]), int(row["num_rejected"])
        if offered and rejected / offered > REJECTED_WARN_SHARE:
            mine = requests[(requests["policy"] == row["policy"]) & (requests["status"] == "rejected")]
            example = mine.iloc[0]
            click.echo(f"warning: {label} REJECTED {rejected:,} of {offered:,} requests ({rejected / offered:.0%}); "
                       f"e.g. request {example['request_id']}: {example['reason']}", err=True)
        if row["overloaded"]:
            click.echo(f"warning: {label} is overloaded: it finished {row['throughput_rps']:.3g} req/s of the "
                       f"{row['offered_rps']:.3g} req/s offered" + (
                           f" (the profile sustains ~{row['sustainable_rps']:.3g})" if "sustainable_rps" in row else ""),
                       err=True)
