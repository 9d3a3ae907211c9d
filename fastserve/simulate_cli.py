"""`fastserve simulate`: run policies through the SimPy simulator into one run directory."""

from __future__ import annotations

import click

from fastserve.load_report import sustainable_rps, warn_offered, warn_results
from fastserve.outputs import overwrite_option
from fastserve.outputs import run_dir as prepare_run_dir
from fastserve.policy_options import (
    POLICY_CHOICE,
    SWAP_CHOICE,
    config_dict,
    policy_options,
    scheduler_config,
    with_model_context,
)
from fastserve.profile_grid_options import OPTION_OF_AXIS
from fastserve.trace_options import load_trace, trace_load_options

TIMELINE_MAX_REQUESTS = 20_000  # per-iteration records cost memory: on by default for small traces
SPANS_MAX_REQUESTS = 500  # Gantt charts are only readable for small traces


def load_inputs(trace: str, trace_format: str | None, profile: str | None, seed: int, sort: bool = False,
                arrivals: str | None = None):
    """Resolve the trace and the profile's cost model, with one-line errors."""
    import profiles

    tr = load_trace(trace, seed, trace_format, sort, arrivals)
    try:
        prof = profiles.load_profile(profile or profiles.DEFAULT_PROFILE)
        cost = profiles.cost_model(prof)
    except (ValueError, OSError) as e:
        raise click.BadParameter(str(e), param_hint="--profile") from None
    return tr, prof, cost


def check_parallelism(cost, tp: int | None, pp: int | None, profile_name: str) -> None:
    for flag, asked, have in (("--tp", tp, cost.tp), ("--pp", pp, cost.pp)):
        if asked is not None and asked != have:
            raise click.BadParameter(
                f"profile {profile_name} is for tp={cost.tp} pp={cost.pp}; make one for {flag[2:]}={asked} with "
                f"`fastserve profiles roofline --model M --gpu G --tp T --pp P -o FILE` or `fastserve profile`",
                param_hint=flag,
            )


def furthest_lookups(furthest: dict[str, float], measured: bool) -> str:
    """' (furthest: decode batch 256, prompt tokens 3,058; ...)': how far past its grid's top the
    run looked up each axis, and, for a measured profile, the options that measure that far."""
    if not furthest:
        return ""
    axes = ", ".join(f"{axis} {value:,.0f}" for axis, value in furthest.items())
    options = "/".join(OPTION_OF_AXIS[axis] for axis in furthest if axis in OPTION_OF_AXIS)
    return f" (furthest: {axes}" + (f"; fastserve profile {options} measures that far)" if measured and options
                                    else ")")


@click.command("simulate")
@click.option("--trace", "trace", required=True, help="Trace file (CSV/JSONL/Parquet, Azure, Mooncake, ...), a bundled sample (sample:NAME) or a synthetic spec (synth:num_requests=..,rate=..,cv=..,lengths=..).")
@click.option("--trace-format", default=None, help="Force the trace format instead of detecting it from the columns.")
@trace_load_options
@click.option("--profile", default=None, help="Profile name (see `fastserve profiles list`) or JSON file [bundled OPT-13B on A100-80GB].")
@click.option("--policy", "policies", multiple=True, type=POLICY_CHOICE, help="Policy to simulate: a built-in name, module:Class or path/to/file.py:Class (docs/policies.md); repeat for several [fcfs and skip-join-mlfq].")
@click.option("--swap", type=SWAP_CHOICE, default=None, help="KV swap mode for every policy [each policy's own: proactive for the MLFQs and SRPT].")
@click.option("--replicas", type=int, default=1, show_default=True, help="Model replicas behind the dispatcher.")
@click.option("--dispatcher", type=click.Choice(["round-robin", "least-work", "shortest-queue"]), default="round-robin", show_default=True, help="How arrivals are spread over replicas (round-robin simulates fastest: each replica skips past the others' arrivals).")
@click.option("--tp", type=int, default=None, help="Tensor parallelism; must match the profile's [the profile's].")
@click.option("--pp", type=int, default=None, help="Pipeline stages; must match the profile's [the profile's].")
@click.option("--seed", type=int, default=0, show_default=True, help="Seed for synthetic traces.")
@click.option("--no-skip", is_flag=True, help="Step every iteration instead of skipping runs of identical decode iterations (same results, slower).")
@click.option("--timeline/--no-timeline", default=None, help=f"Record per-iteration rows (iterations.parquet) [on up to {TIMELINE_MAX_REQUESTS:,} requests].")
@click.option("--spans/--no-spans", default=None, help=f"Record per-request running/swap spans for Gantt charts (spans.parquet) [on up to {SPANS_MAX_REQUESTS} requests].")
@click.option("-o", "--out", "run_dir", required=True, type=click.Path(file_okay=False), help="Run directory to write (new or empty; see --overwrite).")
@overwrite_option
@policy_options
def simulate_cmd(trace, trace_format, sort, arrivals, profile, policies, swap, replicas, dispatcher, tp, pp, seed, no_skip,
                 timeline, spans, run_dir, overwrite, **options):
    """Simulate POLICIES on a trace and write requests.parquet, summary.csv and config.json."""
    # pandas: imported inside the command (fastserve/cli.py)
    from fastserve.rundir import RunWriter, requests_frame
    from fastserve.tables import print_summary
    from policy import POLICIES
    from sim import SimConfig, simulate

    prepare_run_dir(run_dir, "-o", overwrite)
    tr, prof, cost = load_inputs(trace, trace_format, profile, seed, sort, arrivals)
    profile_name = profile or "default"
    check_parallelism(cost, tp, pp, profile_name)
    policies = policies or ("fcfs", "skip-join-mlfq")
    num_requests = len(tr.arrival_s)
    try:
        sim_config = SimConfig(
            num_replicas=replicas, pp=cost.pp, dispatcher=dispatcher, skip=not no_skip,
            record_iterations=timeline if timeline is not None else num_requests <= TIMELINE_MAX_REQUESTS,
            record_spans=spans if spans is not None else num_requests <= SPANS_MAX_REQUESTS,
            progress=True,
        )
    except ValueError as e:
        raise click.BadParameter(str(e), param_hint="--replicas") from None
    options = with_model_context(options, prof.model.max_position_embeddings, prof.model.name)
    cfgs = {p: scheduler_config(options, swap, options.get("device_kv_tokens") or cost.device_kv_tokens,
                                options.get("host_kv_tokens") or cost.host_kv_tokens) for p in policies}
    sustainable = sustainable_rps(cost, tr, next(iter(cfgs.values())), replicas)
    warn_offered(tr, sustainable, profile_name)
    writer = RunWriter(run_dir, {
        "engine": "sim", "trace": trace, "num_requests": num_requests, "profile": profile_name,
        "kv_bytes_per_token": cost.kv_bytes_per_token, "tp": cost.tp, "pp": cost.pp, "seed": seed,
        "sim": {"replicas": replicas, "dispatcher": dispatcher, "skip": not no_skip},
        "policies": {p: config_dict(c) for p, c in cfgs.items()}, "sustainable_rps": sustainable,
    })
    summary = None
    for policy in policies:
        try:
            result = simulate(tr, cost, policy, cfgs[policy], sim_config)
        except ValueError as e:
            raise click.ClickException(str(e) if str(e).startswith(f"{policy}:") else f"{policy}: {e}") from None
        except Exception as e:  # a user's policy failing mid-run: one line; earlier policies stay written
            if policy in POLICIES:
                raise
            raise click.ClickException(f"{policy}: the policy raised {type(e).__name__}: {e}") from None
        requests = requests_frame(result.log, policy, result.swap)
        summary = writer.add(requests, result.iterations, result.spans,
                             run_stats={"num_extrapolations": result.stats["num_extrapolations"]})
        s = result.stats
        click.echo(f"{policy:>15} ({result.swap}): {s['finished']:,} finished, {s['rejected']:,} rejected, "
                   f"{s['unfinished']:,} unfinished; {s['num_decisions']:,} decisions, "
                   f"{s['num_skipped_iterations']:,} iterations skipped, {s['wall_s']:.1f} s wall"
                   + (f"; {s['num_extrapolations']:,} cost lookups extrapolated past the profile's grid"
                      + furthest_lookups(s.get("extrapolated_max", {}), prof.source == "measured")
                      if s["num_extrapolations"] else ""), err=True)
    print_summary(summary)
    warn_results(writer.requests, summary)
    click.echo(f"wrote {run_dir}/", err=True)
