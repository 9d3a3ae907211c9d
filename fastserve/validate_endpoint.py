"""`fastserve validate --endpoint URL`: how far the simulator is from a server someone runs.

Two steps on one trace: (1) `fastserve bench` against the server, into OUT/bench (policy
column = the simulated policy, so the rows pair up); (2) `fastserve simulate` of the same trace
(same `--time-scale`) with `--profile` (measured on the server's GPU: see the README) and the
policy the server runs, into OUT/sim. Then OUT/validation.csv holds `policy, metric, measured,
simulated, rel_error` for the summary metrics (`analysis.validation.SUMMARY_METRICS`); the
per-iteration metric of in-process validation needs the server's own iteration records, which
a client cannot see. The policy is `--policy`, else the one the server reports in /v1/models
(fastserve's server does; name vLLM's as `vllm-fcfs`). The context limit is the server's
`max_model_len` when it reports one and `--max-seq-tokens` is not given.
"""

from __future__ import annotations

from pathlib import Path

import click

from fastserve.bench_cli import run_bench, server_model
from fastserve.policy_options import config_dict, scheduler_config
from fastserve.serve_cli import _capacities
from fastserve.tables import format_table


def validate_endpoint(endpoint: str, trace: str, policies: tuple[str, ...], swap: str | None, profile: str | None,
                      time_scale: float, seed: int, run_dir: str, options: dict, view) -> None:
    import pandas as pd

    import profiles
    import traces
    from analysis.validation import COLUMNS, SUMMARY_METRICS, rel_error
    from fastserve.validate_cli import _simulate

    if profile is None:
        raise click.UsageError("--endpoint needs --profile: the server's GPU profile (see the README)")
    if len(policies) > 1:
        raise click.BadParameter("--endpoint validates the one policy the server runs", param_hint="--policy")
    info = server_model(endpoint)
    policy = policies[0] if policies else info.get("policy")
    if policy is None:
        raise click.UsageError("the server does not say which policy it runs: name it with --policy")
    try:
        tr = traces.resolve(trace, seed=seed)
        tr = tr.scale_time(time_scale) if time_scale != 1.0 else tr
    except (ValueError, OSError) as e:
        raise click.BadParameter(str(e), param_hint="--trace") from None
    try:
        cost = profiles.cost_model(profiles.load_profile(profile))
    except ValueError as e:
        raise click.BadParameter(str(e), param_hint="--profile") from None
    device = "cpu" if cost.profile.hardware["name"] == "cpu" else "cuda"
    device_kv, host_kv = _capacities(options, cost, device)
    if options.get("max_seq_tokens") is None and info.get("max_model_len"):
        options = {**options, "max_seq_tokens": int(info["max_model_len"])}
    try:
        cfg = scheduler_config(options, swap, device_kv, host_kv)
    except ValueError as e:
        raise click.BadParameter(str(e), param_hint="--max-seq-tokens") from None
    out = Path(run_dir)
    base = {"trace": trace, "time_scale": time_scale, "endpoint": endpoint, "profile": profile, "seed": seed,
            "kv_bytes_per_token": cost.kv_bytes_per_token, "policies": {policy: config_dict(cfg)}}
    if run_bench(endpoint, info, tr, out / "bench", base, seed=seed, label=policy):
        raise SystemExit(130)
    try:
        _simulate(tr, {policy: cfg}, {policy: cost}, out / "sim", base)
    except ValueError as e:
        raise click.ClickException(f"simulating {policy}: {e}") from None
    measured = pd.read_csv(out / "bench" / "summary.csv").iloc[0]
    simulated = pd.read_csv(out / "sim" / "summary.csv").iloc[0]
    table = pd.DataFrame([(policy, m, float(measured[m]), float(simulated[m]), rel_error(float(measured[m]), float(simulated[m])))
                          for m in SUMMARY_METRICS], columns=COLUMNS)
    table.to_csv(out / "validation.csv", index=False)
    click.echo(format_table(table, view))
    click.echo(f"wrote {out}/validation.csv", err=True)
