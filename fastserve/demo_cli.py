"""`fastserve demo`: the main job on a fresh machine, with no arguments.

It synthesizes a bursty ShareGPT-like trace, simulates six policies on a bundled OPT-13B
profile, sweeps the arrival rate, prints the comparison and writes plots. The default profile
is the A100-40GB one: with only ~13.5k tokens of KV, Orca's per-request reservation of the whole
context (2048 tokens) caps its batch at 6, which is the head-of-line blocking FastServe attacks;
vllm-fcfs (paged, recompute on pressure) shows what paging alone buys, and sarathi (the same
with chunked prefill) what splitting prompts adds.
"""

from __future__ import annotations

import dataclasses
import os
import time
from pathlib import Path

import click

from fastserve.policy_options import POLICY_CHOICE

DEMO_POLICIES = ("fcfs", "vllm-fcfs", "sarathi", "mlfq", "skip-join-mlfq", "srpt")
DEMO_METRICS = ("jct_mean_s", "jct_p99_s", "ttft_mean_s", "norm_latency_mean_s", "throughput_rps")


def _synth(num_requests: int, rate: float, cv: float, seed: int):
    import traces

    filters = traces.Filters(max_prompt_tokens=1024, max_total_tokens=2048)
    arrivals = f"gamma:rate={rate},cv={cv}" if cv != 1 else f"poisson:rate={rate}"
    trace, report = traces.synthesize_filtered(num_requests, arrivals, "sharegpt-multiturn-like", seed, filters)
    return trace, report


def _simulate_all(trace, cost, run_dir: Path, config: dict, spans: bool, policies: tuple[str, ...]) -> None:
    from fastserve.rundir import RunWriter, requests_frame
    from policy import SchedulerConfig
    from sim import SimConfig, simulate

    sched = SchedulerConfig(device_kv_tokens=cost.device_kv_tokens, host_kv_tokens=cost.host_kv_tokens,
                            max_seq_tokens=cost.profile.model.max_position_embeddings)
    writer = RunWriter(run_dir, {**config, "policies": {p: dataclasses.asdict(sched) for p in policies}})
    for policy in policies:
        r = simulate(trace, cost, policy, sched, SimConfig(record_iterations=True, record_spans=spans))
        writer.add(requests_frame(r.log, policy, r.swap), r.iterations, r.spans)


@click.command("demo")
@click.option("-o", "--out", "out_dir", default="fastserve-demo", show_default=True, type=click.Path(file_okay=False), help="Directory for the runs, the sweep and the plots.")
@click.option("--profile", default="opt-13b_a100-40gb_tp1", show_default=True, help="Bundled profile name or profile JSON.")
@click.option("--num-requests", type=int, default=1000, show_default=True, help="Requests in the main trace.")
@click.option("--rate", type=float, default=0.5, show_default=True, help="Mean arrival rate of the main trace, requests/s.")
@click.option("--cv", type=float, default=3.0, show_default=True, help="Burstiness: CV of Gamma inter-arrival times (1 = Poisson).")
@click.option("--sweep-rates", default="0.2,0.35,0.5,0.65", show_default=True, help="Comma-separated arrival rates for the rate sweep ('' to skip it).")
@click.option("--slo-s", type=float, default=0.3, show_default=True, help="Normalized-latency SLO (s/token) marked on the sweep plots.")
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of the synthetic traces.")
@click.option("--workers", type=int, default=None, help="Parallel sweep cells [number of CPUs].")
@click.option("--policy", "extra_policies", multiple=True, type=POLICY_CHOICE, help="Also simulate this policy (module:Class or path/to/file.py:Class, see docs/policies.md) next to the six; repeat for several.")
def demo_cmd(out_dir, profile, num_requests, rate, cv, sweep_rates, slo_s, seed, workers, extra_policies):
    """Simulate fcfs, vllm-fcfs, sarathi, mlfq, skip-join-mlfq and srpt (and any --policy) on a bursty trace; print and plot."""
    import profiles
    import traces
    from analysis.compare import compare, format_table, ratio_lines
    from analysis.load import load_run
    from analysis.plot_dir import plan_plots, write_plots
    from analysis.run_metrics import run_metrics
    from fastserve.outputs import output_dir
    from fastserve.rundir import write_sim_run
    from sim.sweep import run_sweep
    from sim.sweep_config import SweepConfig

    started = time.perf_counter()
    policies = DEMO_POLICIES + tuple(p for p in dict.fromkeys(extra_policies) if p not in DEMO_POLICIES)
    out = Path(out_dir)
    try:
        rates = [float(r) for r in sweep_rates.split(",") if r.strip()]
        cost = profiles.cost_model(profiles.load_profile(profile))
        trace, report = _synth(num_requests, rate, cv, seed)
    except ValueError as e:
        raise click.ClickException(str(e)) from None
    output_dir(out, "-o")
    traces.save(trace, out / "trace.csv")
    click.echo(f"trace: {num_requests:,} ShareGPT-like requests, Gamma arrivals at {rate:g} req/s, CV {cv:g} "
               f"({report}) -> {out / 'trace.csv'}", err=True)
    click.echo(f"profile: {profile} (device KV {cost.device_kv_tokens:,} tokens, host {cost.host_kv_tokens:,})", err=True)

    base = {"engine": "sim", "profile": profile, "seed": seed, "rate": rate, "cv": cv,
            "kv_bytes_per_token": cost.kv_bytes_per_token}
    with click.progressbar(length=2, label=f"simulating {len(policies)} policies", file=None) as bar:
        _simulate_all(trace, cost, out / "run", {**base, "trace": str(out / "trace.csv")}, spans=False,
                      policies=policies)
        bar.update(1)
        # A short, dense excerpt for a readable Gantt chart of preemptions and swaps.
        gantt_trace, _ = _synth(30, rate * 4, cv, seed + 1)
        _simulate_all(gantt_trace, cost, out / "gantt-run", {**base, "num_requests": 30}, spans=True,
                      policies=policies)
        bar.update(1)

    if rates:
        sweep = SweepConfig(trace="synth", num_requests=min(num_requests, 500), seeds=(seed,),
                            grid={"policy": list(policies), "rate": rates, "cv": [cv],
                                  "lengths": ["sharegpt-multiturn-like"], "profile": [profile]})
        run_sweep(sweep, out / "sweep", write_sim_run, workers=workers or os.cpu_count() or 1)

    written = []
    plot_dir = out / "plots"
    for src, kwargs in ((out / "run", {}), (out / "gantt-run", {}), (out / "sweep", {"slo_s": slo_s, "stat": "p95"})):
        if not src.exists():
            continue
        plan = plan_plots(src, **kwargs)
        written += write_plots(plan, plot_dir / src.name)

    table = compare([("demo", run_metrics(load_run(out / "run")))], "fcfs", list(DEMO_METRICS))
    click.echo(format_table(table, DEMO_METRICS))
    click.echo()
    for line in ratio_lines(table, DEMO_METRICS):
        click.echo(line)
    click.echo(f"\n{len(written)} plots in {plot_dir}/ ; runs in {out}/run, {out}/gantt-run"
               + (f", {out}/sweep" if rates else "") + f"  ({time.perf_counter() - started:.0f} s)")
