"""`fastserve serve` (live executor over a trace, or behind HTTP) and `fastserve profile` (measure a model).

Both build the model the same way: a catalog architecture with seeded random weights, or a
local checkpoint (`--checkpoint`, never downloaded). `serve` runs each policy in turn over the
whole trace into one run directory, rewritten after every policy, and prints the summary.
Ctrl-C keeps what finished (the rest is recorded "unfinished") and exits with status 130.
`--http [HOST:]PORT` serves one policy behind an OpenAI-compatible API instead
(fastserve/http_serve.py, executor/http) and writes the run directory when stopped.

`--tp T --pp P` (T x P > 1) runs a distributed replica (executor/distributed): this process is
rank 0 and spawns T x P - 1 local workers on loopback, or, under `torchrun --nproc-per-node
T*P -m fastserve serve ...`, every process runs this command and ranks other than 0 serve rank
0's commands and write nothing. A worker that dies or hangs (past `--dist-timeout-s`) stops the
run: finished requests are kept, the rest recorded "unfinished" with the reason, exit status 1.
"""

from __future__ import annotations

import shlex
from pathlib import Path

import click

from fastserve.load_report import sustainable_rps, warn_offered, warn_results
from fastserve.outputs import output_file, overwrite_option
from fastserve.outputs import run_dir as prepare_run_dir
from fastserve.policy_options import (
    POLICY_CHOICE,
    SWAP_CHOICE,
    config_dict,
    policy_options,
    scheduler_config,
)
from fastserve.profile_grid_options import grid_from_options, grid_options
from fastserve.rundir import RunWriter, requests_frame
from fastserve.tables import print_summary
from fastserve.trace_options import load_trace, trace_load_options

CPU_DEFAULT_DEVICE_KV_TOKENS = 65_536  # a CPU profile's "device" is all of RAM; keep pools small
THREADS_HELP = ("torch intra-op threads on CPU [1: tiny models gain nothing from more, and spinning "
                "OpenMP threads slow down 100x when other processes share the cores].")


def _set_threads(threads: int | None, device: str) -> None:
    import torch

    if device == "cpu" or threads is not None:
        torch.set_num_threads(threads or 1)


def _check_model(model: str, checkpoint: str | None) -> None:
    """A catalog model (any label with --checkpoint), or a one-line error blaming --model."""
    from profiles.models import get_model

    if checkpoint is None:
        try:
            get_model(model)
        except ValueError as e:
            raise click.BadParameter(str(e), param_hint="--model") from None


def _model_config(model: str, checkpoint: str | None, device: str, dtype: str, seed: int):
    from executor.serve import ModelConfig, load_model

    _check_model(model, checkpoint)
    try:
        return load_model(ModelConfig(model, checkpoint, device, dtype, seed))
    except ValueError as e:
        raise click.BadParameter(str(e), param_hint="--checkpoint" if checkpoint else "--model") from None


def _cost(profile: str | None, model: str, device: str, policies, tp: int = 1, pp: int = 1):
    """The profile's cost model: `--profile`, else the bundled MODEL_<hardware>_tpT[_ppP], else
    MODEL_<hardware>_tp1, if any."""
    import profiles

    stem = f"{model}_{'cpu' if device == 'cpu' else device.split(':')[0]}_tp"
    name = profile or f"{stem}1"
    if profile is None and tp * pp > 1:
        parallel = f"{stem}{tp}" + (f"_pp{pp}" if pp > 1 else "")
        name = parallel if parallel in profiles.list_profiles() else name
    try:
        prof = profiles.load_profile(name)
    except ValueError as e:
        if profile is not None or "skip-join-mlfq" in policies:
            raise click.BadParameter(
                f"{e} (skip-join-mlfq needs a profile: make one with `fastserve profile --model {model} -o FILE`)",
                param_hint="--profile") from None
        return None, None
    return profiles.cost_model(prof), name


def _capacities(options: dict, cost, device: str) -> tuple[int, int]:
    """KV tokens: the flags, else the profile's; on CPU (where a profile's "device" is all of
    RAM) at most CPU_DEFAULT_DEVICE_KV_TOKENS, with a host pool four times that."""
    device_kv, host_kv = options.get("device_kv_tokens"), options.get("host_kv_tokens")
    if device == "cpu" or cost is None:
        default = min(cost.device_kv_tokens, CPU_DEFAULT_DEVICE_KV_TOKENS) if cost else CPU_DEFAULT_DEVICE_KV_TOKENS
        device_kv = device_kv or default
        return device_kv, host_kv if host_kv is not None else 4 * device_kv
    return device_kv or cost.device_kv_tokens, host_kv if host_kv is not None else cost.host_kv_tokens


HTTP_HELP = ("Serve an OpenAI-compatible API on [HOST:]PORT (loopback if no host; port 0: any free port) "
             "instead of replaying --trace, until Ctrl-C or SIGTERM; then write the run directory.")
TP_HELP = "Tensor parallelism: ranks that split every layer's heads and MLP columns."
PP_HELP = "Pipeline parallelism: stages that split the layers, with pp micro-batches in flight."
DIST_TIMEOUT_HELP = ("With --tp/--pp: seconds a collective, transfer or worker start may take before "
                     "the run stops with an error (a hung worker).")


def _distributed(tp: int, pp: int) -> bool:
    from executor.distributed.launch import torchrun_env

    return tp * pp > 1 or torchrun_env() is not None


def _dist_configs(model: str, checkpoint: str | None, device: str, dtype: str, seed: int, tp: int, pp: int,
                  timeout_s: float, threads: int | None):
    """(ModelConfig, DistConfig) of a replica the model can take; one-line errors otherwise."""
    from executor.distributed.launch import DistConfig, check_parallelism
    from executor.serve import ModelConfig
    from profiles.models import get_model

    if checkpoint is None:
        try:
            get_model(model)
        except ValueError as e:
            raise click.BadParameter(str(e), param_hint="--model") from None
    if device.startswith("cuda:"):
        raise click.BadParameter("with --tp/--pp give --device cuda: each rank uses the GPU of its local rank",
                                 param_hint="--device")
    try:
        cfg = DistConfig(tp, pp, timeout_s, threads=threads or 1)
        model_cfg = ModelConfig(model, checkpoint, device, dtype, seed)
    except ValueError as e:
        raise click.BadParameter(str(e), param_hint="--dist-timeout-s" if "timeout" in str(e) else "--device") from None
    try:
        check_parallelism(model_cfg, cfg)
    except ValueError as e:
        raise click.ClickException(f"--tp {tp} --pp {pp}: {e}") from None
    return model_cfg, cfg


def _session(model_cfg, cfg):
    """Start (or, under torchrun, join) a tp x pp replica; None on a torchrun worker rank once
    rank 0 has shut it down."""
    from executor.distributed.comm import DistributedError
    from executor.distributed.launch import start

    try:
        return start(model_cfg, cfg)
    except (ValueError, DistributedError) as e:
        raise click.ClickException(f"--tp {cfg.tp} --pp {cfg.pp}: {e}") from None


def _policy_configs(policies, options: dict, swap, cost, device: str, max_positions: int) -> dict:
    """Each policy's SchedulerConfig, refused (one line) before anything runs."""
    from executor.serve import fit_config
    from policy import make_scheduler

    device_kv, host_kv = _capacities(options, cost, device)
    cfgs = {}
    for p in policies:
        try:
            cfgs[p] = fit_config(scheduler_config(options, swap, device_kv, host_kv), max_positions,
                                 options.get("max_seq_tokens") is not None)
        except ValueError as e:
            raise click.BadParameter(str(e), param_hint="--max-seq-tokens") from None
        try:
            make_scheduler(p, cfgs[p], cost)  # refuse a bad combination before any policy runs
        except ValueError as e:
            message = str(e) if str(e).startswith(p) else f"{p}: {e}"
            raise click.BadParameter(message, param_hint="--device-kv-tokens") from None
    return cfgs


@click.command("serve")
@click.option("--trace", "trace", default=None, help="Trace file, bundled sample (sample:NAME) or synthetic spec (synth:...); or --http.")
@trace_load_options
@click.option("--http", "http", default=None, metavar="[HOST:]PORT", help=HTTP_HELP)
@click.option("--model", required=True, help="Catalog model (e.g. tiny-llama, tiny-opt, llama-2-7b) built with random weights; a label with --checkpoint.")
@click.option("--checkpoint", type=click.Path(exists=True, file_okay=False), default=None, help="Local transformers checkpoint directory to load instead (never downloaded).")
@click.option("--policy", "policies", multiple=True, type=POLICY_CHOICE, help="Policy to run: a built-in name, module:Class or path/to/file.py:Class (docs/policies.md); repeat for several [fcfs and skip-join-mlfq].")
@click.option("--swap", type=SWAP_CHOICE, default=None, help="KV swap mode for every policy [each policy's own].")
@click.option("--profile", default=None, help="Profile (bundled name or JSON) for skip-join's prefill estimate and default KV capacities [MODEL_cpu_tpT(_ppP) if bundled, else MODEL_cpu_tp1, on CPU].")
@click.option("--time-scale", type=float, default=1.0, show_default=True, help="Wall seconds per trace second (0.1 replays ten times faster).")
@click.option("--seed", type=int, default=0, show_default=True, help="Seed for random weights, prompt token ids and synthetic traces.")
@click.option("--device", default="cpu", show_default=True, help="cpu, cuda or cuda:N.")
@click.option("--dtype", type=click.Choice(["auto", "float32", "float16", "bfloat16"]), default="auto", show_default=True, help="auto: fp32 on CPU, bf16 (else fp16) on CUDA.")
@click.option("--tp", type=click.IntRange(1), default=1, show_default=True, help=TP_HELP)
@click.option("--pp", type=click.IntRange(1), default=1, show_default=True, help=PP_HELP)
@click.option("--dist-timeout-s", type=float, default=60.0, show_default=True, help=DIST_TIMEOUT_HELP)
@click.option("--threads", type=click.IntRange(1), default=None, help=THREADS_HELP)
@click.option("--timeline/--no-timeline", default=True, show_default=True, help="Write iterations.parquet (one row per iteration).")
@click.option("--spans/--no-spans", default=False, show_default=True, help="Write spans.parquet (running/swap spans for Gantt charts).")
@click.option("-o", "--out", "run_dir", required=True, type=click.Path(file_okay=False), help="Run directory to write (new or empty; see --overwrite).")
@overwrite_option
@policy_options
def serve(trace, sort, arrivals, http, model, checkpoint, policies, swap, profile, time_scale, seed, device, dtype, tp, pp,
          dist_timeout_s, threads, timeline, spans, run_dir, overwrite, **options):
    """Serve a trace with a real model, policy by policy, into one run directory."""
    from executor.engine import EngineConfig
    from executor.serve import LiveServer

    if (trace is None) == (http is None):
        raise click.UsageError("give --trace (replay a trace) or --http [HOST:]PORT (serve requests), one of them")
    policies = policies or (("skip-join-mlfq",) if http else ("fcfs", "skip-join-mlfq"))
    address = _http_address(http, policies)
    twice = sorted({p for p in policies if policies.count(p) > 1})
    if twice:
        raise click.BadParameter(f"{twice[0]} given twice (each policy runs once per run directory)", param_hint="--policy")
    prepare_run_dir(run_dir, "-o", overwrite)
    _check_model(model, checkpoint)
    tr = load_trace(trace, seed, sort=sort, arrivals=arrivals) if trace is not None else None
    try:
        engine_config = EngineConfig(time_scale=time_scale, seed=seed, record_iterations=timeline,
                                     record_spans=spans, progress=True)
    except ValueError as e:
        raise click.BadParameter(str(e), param_hint="--time-scale") from None
    cost, profile_name = _cost(profile, model, device, policies, tp, pp)
    _set_threads(threads, device)
    record = {"engine": "live", "trace": trace, "http": http, "num_requests": len(tr) if tr else None, "model": model, "checkpoint": checkpoint,
              "device": device, "threads": threads, "profile": profile_name, "tp": tp, "pp": pp, "seed": seed,
              "time_scale": time_scale}
    if not _distributed(tp, pp):
        server = LiveServer(_model_config(model, checkpoint, device, dtype, seed), engine_config)
        cfgs = _policy_configs(policies, options, swap, cost, device, server.max_seq_tokens)
        _serve_or_listen(server, tr, policies, cfgs, cost, run_dir, record, address)
        return
    from executor.distributed.launch import transformers_config
    from executor.distributed.server import DistributedServer

    model_cfg, dist_cfg = _dist_configs(model, checkpoint, device, dtype, seed, tp, pp, dist_timeout_s, threads)
    positions = int(transformers_config(model_cfg).max_position_embeddings)
    cfgs = _policy_configs(policies, options, swap, cost, device, positions)  # before any process starts
    session = _session(model_cfg, dist_cfg)
    if session is None:  # a torchrun worker rank: rank 0 writes the run directory
        return
    server = DistributedServer(session, engine_config)
    try:
        _serve_or_listen(server, tr, policies, cfgs, cost, run_dir, {**record, "dist_timeout_s": dist_timeout_s}, address)
    finally:
        server.close()


def _http_address(http: str | None, policies) -> tuple[str, int] | None:
    if http is None:
        return None
    from fastserve.http_serve import parse_address

    if len(policies) > 1:
        raise click.BadParameter("--http serves one policy", param_hint="--policy")
    try:
        return parse_address(http)
    except ValueError as e:
        raise click.BadParameter(str(e), param_hint="--http") from None


def _serve_or_listen(server, tr, policies, cfgs: dict, cost, run_dir: str, record: dict, address) -> None:
    if address is None:
        _serve(server, tr, policies, cfgs, cost, run_dir, record)
        return
    from fastserve.http_serve import serve_http

    serve_http(server, policies[0], cfgs[policies[0]], cost, run_dir, record, address)


def _serve(server, tr, policies, cfgs: dict, cost, run_dir: str, record: dict) -> None:
    """Run every policy on `server` (a LiveServer or a DistributedServer) into `run_dir`;
    `record` goes into config.json."""
    sustainable = sustainable_rps(cost, tr, next(iter(cfgs.values())))
    warn_offered(tr, sustainable, record["profile"])
    writer = RunWriter(run_dir, {"sustainable_rps": sustainable,
        **record, "dtype": str(server.model.dtype), "kv_bytes_per_token": server.layout.bytes_per_token,
        "policies": {p: config_dict(c) for p, c in cfgs.items()},
    })
    summary, failures, interrupted = None, [], False
    for policy in policies:
        try:
            # the policy's own engine overhead, as `fastserve simulate` and `validate` price it: the
            # overhead is part of skip-join's prefill estimate, so its join levels match theirs
            policy_cost = cost.for_policy(policy) if cost is not None else None
            result, swap_mode = server.run(tr.jobs(), policy, cfgs[policy], policy_cost)
        except ValueError as e:
            raise click.ClickException(f"{policy}: {e}") from None
        summary = writer.add(requests_frame(result.log, policy, swap_mode), result.iterations, result.spans)
        counts = result.log.counts()
        click.echo(f"{policy:>15} ({swap_mode}): {counts['finished']:,} finished, {counts['rejected']:,} rejected, "
                   f"{counts['unfinished']:,} unfinished", err=True)
        if result.error is not None:
            failures.append(f"{policy}: {result.error}")
            if result.interrupted:
                interrupted = True
                break
            if getattr(server, "failed", None) is not None:  # a broken replica serves no more policies
                rest = policies[policies.index(policy) + 1:]
                failures.extend([f"policies not run: {', '.join(rest)}"] if rest else [])
                break
    print_summary(summary)
    if summary is not None:
        warn_results(writer.requests, summary)
    click.echo(f"wrote {run_dir}/", err=True)
    if interrupted:
        click.echo("interrupted: finished requests were written, the rest marked unfinished", err=True)
        raise SystemExit(130)
    if failures:
        raise click.ClickException("run stopped early, partial results written: " + "; ".join(failures))


@click.command("profile")
@click.option("--model", required=True, help="Catalog model built with random weights; a label with --checkpoint.")
@click.option("--checkpoint", type=click.Path(exists=True, file_okay=False), default=None, help="Local transformers checkpoint directory (never downloaded).")
@click.option("--device", default="cpu", show_default=True, help="cpu, cuda or cuda:N.")
@click.option("--dtype", type=click.Choice(["auto", "float32", "float16", "bfloat16"]), default="auto", show_default=True, help="auto: fp32 on CPU, bf16 (else fp16) on CUDA.")
@click.option("--tp", type=click.IntRange(1), default=1, show_default=True, help=TP_HELP)
@click.option("--pp", type=click.IntRange(1), default=1, show_default=True, help=PP_HELP)
@click.option("--dist-timeout-s", type=float, default=60.0, show_default=True, help=DIST_TIMEOUT_HELP)
@click.option("--threads", type=click.IntRange(1), default=None, help=THREADS_HELP)
@click.option("--budget-s", type=float, default=120.0, show_default=True, help="Time budget: repetitions shrink to fit it (each point runs at least once).")
@click.option("--warmups", type=click.IntRange(0), default=2, show_default=True, help="Untimed runs before each point.")
@click.option("--repeats", type=click.IntRange(1), default=7, show_default=True, help="Most timed repetitions per point (the median is kept).")
@click.option("--block-size", type=click.IntRange(1), default=16, show_default=True, help="KV block size in tokens.")
@click.option("--quick", is_flag=True, help="A small grid (for tests and smoke runs).")
@grid_options
@click.option("--overhead-policy", "overhead_policies", multiple=True, type=POLICY_CHOICE,
              help="Policy whose engine overhead is measured (repeat for several) [every built-in]; on a big "
                   "model these live runs take most of the profiling time.")
@click.option("--overhead-rounds", type=click.IntRange(0), default=3, show_default=True,
              help="Engine-overhead runs per batch size and policy; 0: none (the profile then prices the "
                   "model's forward passes alone).")
@click.option("--hardware", "hardware_name", default=None, help="Hardware name recorded in the profile [cpu, or the GPU's name].")
@click.option("--seed", type=int, default=0, show_default=True, help="Seed for random weights.")
@click.option("-o", "--out", "out_path", required=True, type=click.Path(dir_okay=False), help="Profile JSON to write.")
def profile(model, checkpoint, device, dtype, tp, pp, dist_timeout_s, threads, budget_s, warmups, repeats, block_size,
            quick, prefill_batch_sizes, prompt_tokens, decode_batch_sizes, context_tokens, swap_tokens,
            overhead_policies, overhead_rounds, hardware_name, seed, out_path):
    """Measure prefill and decode grids, swap latency and KV capacity into a profile JSON
    (with --tp/--pp: of a distributed replica, plus its all-reduce and send/recv costs)."""
    from executor.overhead import OverheadConfig
    from executor.profiler import ProfileConfig, profile_model
    from profiles import save_profile

    ctx = click.get_current_context()
    as_typed = lambda value: ",".join(map(str, value)) if isinstance(value, tuple) else str(value)  # noqa: E731
    given = [max(param.opts, key=len) + ("" if param.is_flag else f" {shlex.quote(as_typed(value))}")
             for param in ctx.command.params
             if param.name != "out_path" and ctx.get_parameter_source(param.name) is not click.core.ParameterSource.DEFAULT
             for value in (ctx.params[param.name] if param.multiple else [ctx.params[param.name]])]
    command = " ".join(["fastserve profile", *given, "-o", shlex.quote(out_path)])
    output_file(out_path, "-o")
    grid = grid_from_options(quick, prefill_batch_sizes=prefill_batch_sizes, prompt_tokens=prompt_tokens,
                             decode_batch_sizes=decode_batch_sizes, context_tokens=context_tokens,
                             swap_tokens=swap_tokens)
    overhead = None
    if overhead_rounds:
        overhead = OverheadConfig(rounds=overhead_rounds, **(
            {"policies": tuple(overhead_policies)} if overhead_policies else {}))
    elif overhead_policies:
        raise click.BadParameter("is given with --overhead-rounds 0, which measures no overhead",
                                 param_hint="--overhead-policy")
    try:
        cfg = ProfileConfig(warmups=warmups, max_repeats=repeats, budget_s=budget_s, block_size_tokens=block_size,
                            overhead=overhead, **grid)
    except ValueError as e:
        raise click.BadParameter(str(e), param_hint="--budget-s") from None
    _set_threads(threads, device)
    name = model if checkpoint is None else (model or Path(checkpoint).name)
    if _distributed(tp, pp):
        from executor.distributed.comm import DistributedError
        from executor.distributed.profile import profile_replica

        session = _session(*_dist_configs(model, checkpoint, device, dtype, seed, tp, pp, dist_timeout_s, threads))
        if session is None:  # a torchrun worker rank: rank 0 writes the profile
            return
        try:
            result = profile_replica(session, name, cfg, command, hardware_name)
        except (ValueError, DistributedError) as e:
            raise click.ClickException(str(e)) from None
        finally:
            session.close()
    else:
        built = _model_config(model, checkpoint, device, dtype, seed)
        try:
            result = profile_model(built, name, cfg, command, hardware_name)
        except ValueError as e:
            raise click.ClickException(str(e)) from None
    save_profile(result, out_path)
    click.echo(f"wrote {out_path} ({result.name}, KV {result.device_kv_tokens:,} device / "
               f"{result.host_kv_tokens:,} host tokens)", err=True)
