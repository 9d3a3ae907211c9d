"""`fastserve validate`: how far the simulator is from the live executor on the same trace.

Four steps, in one process so that both measurements see the same machine:
1. profile the model with the executor's profiler (`executor.profiler`, written to
   RUN_DIR/profile.json), unless `--profile` names one;
2. serve the trace with the live executor, policy by policy, into RUN_DIR/live;
3. simulate the same trace with the same profile and the same `SchedulerConfig` into RUN_DIR/sim,
   and once more into RUN_DIR/replay with the live run's own clock (each iteration the profile's
   price times the live run's measured / priced in order, profiles/replay.py): the replayed_*
   rows say how much of the error is the simulator's and how much the machine's drift;
4. compare (analysis/validation.py): RUN_DIR/validation.csv (policy, metric, measured,
   simulated, rel_error), RUN_DIR/validation_cdf.png, and the table on stdout.
RUN_DIR/validation.json keeps the command, the configuration, with `--load` the capacities,
rate and time scale chosen (`load`), and, per policy, how contended the machine was: the live
run's CPU time over its busy wall time (`busy_cpu_share`) and the load average. Clock noise is the first cause of a miss on a shared machine: a process that
waits for the CPU mid-iteration has slower iterations than any profile (a median) predicts.
Both engines get the trace already scaled by `--time-scale` (or to `--load`, sim/capacity.py), so they
see identical arrivals.
The KV block size defaults to the profile's (16 when profiling here): the profiler's grids are
timed with that block size, and the default serve block size (1) pays other costs.
Only `fastserve` may import both engines, hence the orchestration lives here.
"""

from __future__ import annotations

import json
import os
import shlex
import time
from pathlib import Path

import click

from fastserve.outputs import overwrite_option
from fastserve.outputs import run_dir as prepare_run_dir
from fastserve.policy_options import (
    POLICY_CHOICE,
    SWAP_CHOICE,
    config_dict,
    policy_options,
    scheduler_config,
)
from fastserve.rundir import RunWriter, requests_frame
from fastserve.serve_cli import THREADS_HELP, _capacities, _model_config, _set_threads
from fastserve.tables import format_table
from fastserve.trace_options import load_trace, trace_load_options

DEFAULT_BLOCK_SIZE = 16  # the profiler's default block size
CONTENDED_SHARE = 0.9  # below this CPU share while busy, the live run was slowed by other processes
VALIDATION_VIEW = [
    ("policy", "policy", "{}"), ("metric", "metric", "{}"), ("measured", "measured", "{:.6f}"),
    ("simulated", "simulated", "{:.6f}"), ("rel_error", "rel. error", "{:+.2%}"),
]


def _command_line() -> str:
    ctx = click.get_current_context()
    given = [f"{max(p.opts, key=len)} {shlex.quote(str(ctx.params[p.name]))}" if not p.is_flag else max(p.opts, key=len)
             for p in ctx.command.params
             if ctx.get_parameter_source(p.name) is not click.core.ParameterSource.DEFAULT and ctx.params[p.name] not in ((), None)]
    return " ".join(["fastserve validate", *given])


def _profile(model, name: str, path: str | None, block_size: int | None, budget_s: float, quick: bool, out: Path,
             policies: tuple[str, ...]):
    """(profile, block size): loaded from `path`, or measured here and saved to out/profile.json
    (the engine overhead measured with each of `policies`)."""
    import profiles

    if path is not None:
        try:
            prof = profiles.load_profile(path)
        except ValueError as e:
            raise click.BadParameter(str(e), param_hint="--profile") from None
        profiled_block = prof.notes.get("block_size_tokens") if isinstance(prof.notes, dict) else None
        block = block_size or profiled_block or DEFAULT_BLOCK_SIZE
        if profiled_block is not None and profiled_block != block:
            click.echo(f"warning: {path} was profiled with {profiled_block}-token KV blocks, this run uses {block}",
                       err=True)
        if prof.source == "measured" and prof.overhead is None:
            click.echo(f"warning: {path} holds no engine overhead (fastserve profile --overhead-rounds 0): the "
                       "simulation prices forward passes alone, so its latencies come out low against a live "
                       "engine's", err=True)
        return prof, block
    from executor.overhead import OverheadConfig
    from executor.profiler import ProfileConfig, profile_model

    block = block_size or DEFAULT_BLOCK_SIZE
    # prefill batches up to 16: bursts admit 5-12 prompts at once, and a grid that stops at 4
    # extrapolates them, so the error then depends on how the bursts happen to line up
    grid = dict(prefill_batch_sizes=(1, 2, 4, 8, 16), prompt_tokens=(8, 32, 64), decode_batch_sizes=(1, 4, 16),
                context_tokens=(8, 32, 64, 128), swap_tokens=(16, 64), chunk_tokens=(8, 32),
                chunk_context_tokens=(0, 32)) if quick else {}
    try:
        # more repetitions than `fastserve profile`'s default, in 7 sweeps of 3: each visit's
        # median shrugs off a time slice another process took, and 7 visits spread over the
        # budget average the machine's speed phases as a served run does (profile_timing.py)
        cfg = ProfileConfig(budget_s=budget_s, block_size_tokens=block, warmups=3, max_repeats=21, sweeps=7,
                            overhead=OverheadConfig(policies=policies), **grid)
        prof = profile_model(model, name, cfg, _command_line() + "  (profile step)")
    except ValueError as e:
        raise click.ClickException(f"profiling {name}: {e}") from None
    profiles.save_profile(prof, out / "profile.json")
    return prof, block


def _serve(model, tr, policies, cfgs, cost, run_dir: Path, base_config: dict, seed: int) -> dict:
    """Serve every policy into run_dir; returns, per policy, how much CPU the run got (see below)."""
    from executor.engine import EngineConfig
    from executor.serve import LiveServer

    server = LiveServer(model, EngineConfig(time_scale=1.0, seed=seed, record_iterations=True, progress=True))
    writer = RunWriter(run_dir, {**base_config, "engine": "live"})
    failures, contention = [], {}
    for policy in policies:
        load, cpu_start_s, wall_start_s, system_start_s = (os.getloadavg()[0], time.process_time(), time.monotonic(),
                                                           _system_busy_s())
        # the policy's own engine overhead, as the simulator uses (sim.simulate asks for_policy)
        result, swap_mode = server.run(tr.jobs(), policy, cfgs[policy], cost.for_policy(policy))
        cpu_s, wall_s = time.process_time() - cpu_start_s, time.monotonic() - wall_start_s
        system_end_s = _system_busy_s()
        writer.add(requests_frame(result.log, policy, swap_mode), result.iterations)
        # CPU time over busy wall time (the iterations; idle sleeps use no CPU). Below ~0.9 other
        # processes took the CPU mid-iteration: the live times then hold waits no profile predicts.
        # It can exceed 1: the run's own setup and records use CPU outside any iteration.
        busy_s = float((result.iterations["end_s"] - result.iterations["start_s"]).sum()) if result.iterations is not None else 0.0
        # Other processes' CPU use meanwhile, in cores: one on the other core takes none of ours but
        # shares caches and memory bandwidth (a few % slower passes on a 2-core VM). Diagnostic only.
        others = (None if system_start_s is None or system_end_s is None or wall_s <= 0
                  else max(0.0, (system_end_s - system_start_s - cpu_s) / wall_s))
        contention[policy] = {"busy_cpu_share": cpu_s / busy_s if busy_s > 0 else None, "load_average_1m": load,
                              "other_cpu_cores": others}
        if result.error is not None:
            failures.append(f"{policy}: {result.error}")
            if result.interrupted:
                break
    if failures:
        raise click.ClickException(f"live run stopped early (partial results in {run_dir}): " + "; ".join(failures))
    return contention


def _system_busy_s() -> float | None:
    """CPU seconds every process has used since boot, all CPUs (Linux /proc/stat); None elsewhere."""
    try:
        with open("/proc/stat") as f:
            fields = [int(v) for v in f.readline().split()[1:]]
    except (OSError, ValueError):
        return None
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0)  # idle + iowait
    return (sum(fields[:7]) - idle) / os.sysconf("SC_CLK_TCK")  # user..softirq, no steal


def _at_load(tr, load: float, cost, cfgs: dict) -> tuple:
    """The trace rescaled to offer `load` times the lowest simulated capacity over the policies
    (sim/capacity.py says why), and what was chosen, for validation.json."""
    from sim.capacity import burst_capacity_rps

    try:
        capacity = {policy: burst_capacity_rps(tr, cost, policy, cfg) for policy, cfg in cfgs.items()}
        lowest = min(capacity, key=capacity.get)
        rate_rps = load * capacity[lowest]
        scaled = tr.rescale_rate(rate_rps)
    except ValueError as e:
        raise click.BadParameter(str(e), param_hint="--load") from None
    factor = float(tr.stats()["rate_rps"] / rate_rps)
    click.echo(f"--load {load:g}: {lowest} finishes {capacity[lowest]:.4g} req/s with every request at once; "
               f"arrivals scaled by {factor:.4g} to offer {rate_rps:.4g} req/s", err=True)
    return scaled, {"load": load, "capacity_rps": capacity, "rate_rps": rate_rps, "time_scale": factor}


def _simulate(tr, cfgs: dict, costs: dict, run_dir: Path, config: dict) -> None:
    """Simulate each policy of `cfgs` with its cost model in `costs` into `run_dir`."""
    from sim import SimConfig, simulate

    writer = RunWriter(run_dir, {**config, "engine": "sim"})
    for policy, cfg in cfgs.items():
        result = simulate(tr, costs[policy], policy, cfg, SimConfig(record_iterations=True, progress=True))
        writer.add(requests_frame(result.log, policy, result.swap), result.iterations)


def _live_clocks(live, cost, policies) -> dict:
    """Each policy's cost model over its live run's own clock (profiles/replay.py): simulated with
    it, what is left of the error once the machine's speed during the live run is given."""
    from analysis.validation import replay_factors
    from profiles.replay import ReplayedClock

    return {p: ReplayedClock(cost, replay_factors(live, p, cost)) for p in policies}


def _report(out: Path, cost, policies, live) -> None:
    from analysis.load import load_run
    from analysis.plots.style import save
    from analysis.plots.validation import plot_validation_cdf
    from analysis.validation import SATURATED_QUEUED_SHARE, queued_time_share, validation_table

    sim = load_run(out / "sim")
    table = validation_table(live, sim, cost, load_run(out / "replay"))
    table.to_csv(out / "validation.csv", index=False)
    save(plot_validation_cdf(live.requests, sim.requests, list(policies)), out / "validation_cdf.png")
    click.echo(format_table(table, VALIDATION_VIEW))
    for policy in policies:
        share = queued_time_share(live.iterations[live.iterations["policy"] == policy])
        if share >= SATURATED_QUEUED_SHARE:
            click.echo(f"warning: {policy}: requests waited to be admitted during {share:.0%} of the live run: at or "
                       "past the knee its JCT is mostly queueing and moves several times as much as the iteration "
                       "times; compare iteration_s, or rerun at a load the machine keeps up with (--load 0.8)",
                       err=True)


@click.command("validate")
@click.option("--model", default=None, help="Catalog model (e.g. tiny-llama, tiny-opt) built with seeded random weights (required without --endpoint).")
@click.option("--endpoint", default=None, help="Instead of the in-process executor: bench this OpenAI-compatible server (URL) and simulate it with --profile (fastserve/validate_endpoint.py).")
@click.option("--trace", "trace", required=True, help="Trace file, bundled sample (sample:NAME) or synthetic spec (synth:...).")
@click.option("--policy", "policies", multiple=True, type=POLICY_CHOICE, help="Policy to validate: a built-in name, module:Class or path/to/file.py:Class (docs/policies.md); repeat for several [fcfs and skip-join-mlfq].")
@click.option("--swap", type=SWAP_CHOICE, default=None, help="KV swap mode for every policy [each policy's own: proactive for the MLFQs].")
@trace_load_options
@click.option("--profile", default=None, help="Profile (bundled name or JSON) to use instead of profiling the model first.")
@click.option("--profile-budget-s", type=click.FloatRange(min=0, min_open=True), default=60.0, show_default=True, help="Time budget of the profiling step.")
@click.option("--quick-profile", is_flag=True, help="Profile a small grid (smoke tests; costs outside it are extrapolated).")
@click.option("--time-scale", type=click.FloatRange(min=0, min_open=True), default=1.0, show_default=True, help="Multiply the trace's arrival times by this for both engines (0.1: ten times the rate).")
@click.option("--load", type=click.FloatRange(min=0, min_open=True, max=2), default=None, help="Instead of --time-scale: rescale the trace's arrivals to offer this fraction of the simulated capacity (requests/s with every request arriving at once; the lowest over --policy), measured with the profile of this run; e.g. 0.8.")
@click.option("--seed", type=int, default=0, show_default=True, help="Seed for random weights, prompt token ids and synthetic traces.")
@click.option("--device", default="cpu", show_default=True, help="cpu, cuda or cuda:N.")
@click.option("--threads", type=click.IntRange(1), default=None, help=THREADS_HELP)
@click.option("-o", "--out", "run_dir", required=True, type=click.Path(file_okay=False), help="Directory to write: live/, sim/, profile.json, validation.csv, validation.json, validation_cdf.png (new or empty; see --overwrite).")
@overwrite_option
@policy_options
def validate_cmd(model, endpoint, trace, policies, swap, sort, arrivals, profile, profile_budget_s, quick_profile, time_scale,
                 load, seed, device, threads, run_dir, overwrite, **options):
    """Run the live executor and the simulator on one trace and report how far apart they are.

    RUN_DIR/validation.csv compares the live run with the simulation from the profile; its
    replayed_* rows simulate once more over the live run's own clock (RUN_DIR/replay), which
    separates the simulator's error from the machine's drift."""
    from analysis.load import load_run
    from executor.serve import LiveServer
    from policy import POLICIES

    if load is not None and time_scale != 1.0:
        raise click.UsageError("give --load or --time-scale, not both: --load chooses the time scale")
    if endpoint is not None:
        if load is not None:
            raise click.UsageError("--load needs the in-process executor (--model): it simulates the model's profile")
        from fastserve.validate_endpoint import validate_endpoint

        prepare_run_dir(run_dir, "-o", overwrite)
        validate_endpoint(endpoint, trace, policies, swap, profile, time_scale, seed, run_dir, options, VALIDATION_VIEW)
        return
    if model is None:
        raise click.UsageError("give --model (validate the in-process executor) or --endpoint URL (a running server)")
    policies = policies or ("fcfs", "skip-join-mlfq")
    twice = sorted({p for p in policies if policies.count(p) > 1})
    if twice:
        raise click.BadParameter(f"{twice[0]} given twice", param_hint="--policy")
    tr = load_trace(trace, seed, sort=sort, arrivals=arrivals)
    if time_scale != 1.0:
        tr = tr.scale_time(time_scale)
    out = prepare_run_dir(run_dir, "-o", overwrite)
    if overwrite:
        from fastserve.outputs import RUN_FILES

        for name in ("profile.json", "validation.csv", "validation.json", "validation_cdf.png",
                     *(f"{sub}/{f}" for sub in ("live", "sim", "replay") for f in RUN_FILES)):
            (out / name).unlink(missing_ok=True)
    out.mkdir(exist_ok=True)
    _set_threads(threads, device)
    built = _model_config(model, None, device, "auto", seed)
    prof, block = _profile(built, model, profile, options.get("block_size_tokens"), profile_budget_s, quick_profile, out,
                           tuple(policies))
    import profiles

    cost = profiles.cost_model(prof)
    device_kv, host_kv = _capacities(options, cost, device)
    server = LiveServer(built)
    cfgs = {}
    for p in policies:
        try:
            cfg = scheduler_config({**options, "block_size_tokens": block}, swap, device_kv, host_kv)
            cfgs[p] = server.fit_config(cfg, options.get("max_seq_tokens") is not None)
        except ValueError as e:
            raise click.BadParameter(str(e), param_hint="--max-seq-tokens") from None
    at_load = None
    if load is not None:
        tr, at_load = _at_load(tr, load, cost, cfgs)
        time_scale = at_load["time_scale"]
    base = {"trace": trace, "time_scale": time_scale, "load": at_load, "num_requests": len(tr), "model": model, "device": device,
            "threads": threads, "profile": profile or str(out / "profile.json"), "seed": seed,
            "kv_bytes_per_token": cost.kv_bytes_per_token, "tp": 1, "pp": 1,
            "policies": {p: config_dict(c) for p, c in cfgs.items()}}
    try:
        contention = _serve(built, tr, policies, cfgs, cost, out / "live", base, seed)
        _simulate(tr, cfgs, dict.fromkeys(policies, cost), out / "sim", base)
        live = load_run(out / "live")
        _simulate(tr, cfgs, _live_clocks(live, cost, policies), out / "replay", {**base, "clock": "replayed from live"})
    except ValueError as e:
        raise click.ClickException(str(e)) from None
    except Exception as e:  # a user's policy failing in the simulator: one line, the live runs stay written
        if all(p in POLICIES for p in policies):
            raise
        raise click.ClickException(f"a policy raised {type(e).__name__}: {e}") from None
    (out / "validation.json").write_text(json.dumps({"command": _command_line(), **base, "contention": contention}, indent=2))
    _report(out, cost, policies, live)
    for policy, c in contention.items():
        share = c["busy_cpu_share"]
        if share is not None and share < CONTENDED_SHARE:
            click.echo(f"warning: {policy}: the live run got {share:.0%} of a CPU while busy (load average "
                       f"{c['load_average_1m']:.1f}): other processes took the CPU, so its times include waits "
                       "that no profile predicts; rerun on a quiet machine", err=True)
    click.echo(f"wrote {out}/validation.csv and {out}/validation_cdf.png", err=True)
