"""`fastserve bench`: replay a trace against any OpenAI-compatible server into a run directory.

The client (client/replay.py) keeps the trace's arrival times (or `--rate`/`--cv` draw new
ones, seeded), asks for exactly `output_tokens` per request with a streamed, greedy
`/v1/completions` call, and measures TTFT, per-token times and JCT on the client. The run
directory is the standard one (requests.parquet, summary.csv, config.json), so `compare`,
`plot` and `validate`-style comparisons read it unchanged, plus `tokens.parquet` (when each
token arrived). `requests.parquet` also has `response_id`, the server's id for the request,
so client and server records can be joined. The `policy` column is `--label`, else the policy
the server reports in /v1/models (fastserve's server does), else "server".

Ctrl-C or SIGTERM stops the replay: requests in flight and not yet sent are recorded
unfinished, the run directory is written, and the exit status is 130.
"""

from __future__ import annotations

import signal

import click

DEFAULT_VOCAB_SIZE = 256  # prompt ids below it are valid for any real model


def _trace(trace: str, seed: int, rate: float | None, cv: float | None, time_scale: float, num_requests: int | None):
    import numpy as np

    import traces

    if cv is not None and rate is None:
        raise click.BadParameter("--cv goes with --rate", param_hint="--cv")
    try:
        tr = traces.resolve(trace, seed=seed)
        tr = tr.head(num_requests) if num_requests is not None else tr
        if rate is not None:
            arrivals = traces.from_rate(rate, 1.0 if cv is None else cv).generate(len(tr), np.random.default_rng(seed))
            frame = tr.frame.assign(arrival_s=arrivals)
            tr = traces.Trace.from_frame(frame, f"{tr.source} at rate {rate:g}")
        if time_scale != 1.0:
            tr = tr.scale_time(time_scale)
    except (ValueError, OSError) as e:
        raise click.BadParameter(str(e), param_hint="--rate" if "rate" in str(e) else "--trace") from None
    return tr


@click.command("bench")
@click.option("--endpoint", required=True, help="Server base URL, e.g. http://127.0.0.1:8000 (a trailing /v1 is fine).")
@click.option("--trace", "trace", required=True, help="Trace file, bundled sample (sample:NAME) or synthetic spec (synth:...).")
@click.option("--rate", type=float, default=None, help="Replace the trace's arrivals: mean rate in requests/s (Poisson; Gamma with --cv).")
@click.option("--cv", type=float, default=None, help="With --rate: coefficient of variation of the inter-arrival gaps [1, Poisson].")
@click.option("--time-scale", type=float, default=1.0, show_default=True, help="Multiply arrival times (0.1 sends ten times faster).")
@click.option("--num-requests", type=click.IntRange(1), default=None, help="Only the first N requests of the trace.")
@click.option("--model", default=None, help="Model name to ask for [the server's first model in /v1/models].")
@click.option("--vocab-size", type=click.IntRange(1), default=None, help=f"Prompt token ids are drawn below this [the server's vocab_size if /v1/models has it, else {DEFAULT_VOCAB_SIZE}].")
@click.option("--ignore-eos/--no-ignore-eos", default=True, show_default=True, help="Send ignore_eos (vLLM's extension), so that every request generates exactly output_tokens; servers that refuse unknown fields need --no-ignore-eos.")
@click.option("--seed", type=int, default=0, show_default=True, help="Seed for prompt token ids (the in-process executor's for the same seed) and --rate arrivals.")
@click.option("--timeout-s", type=float, default=600.0, show_default=True, help="Most seconds one request may take, send to last token.")
@click.option("--label", default=None, help="The policy column of the results [the policy the server reports, else 'server'].")
@click.option("-o", "--out", "run_dir", required=True, type=click.Path(file_okay=False), help="Run directory to write.")
def bench_cmd(endpoint, trace, rate, cv, time_scale, num_requests, model, vocab_size, ignore_eos, seed, timeout_s,
              label, run_dir):
    """Replay a trace against an OpenAI-compatible server; measure TTFT, token times and JCT."""
    if not (time_scale > 0):
        raise click.BadParameter(f"must be > 0, got {time_scale}", param_hint="--time-scale")
    tr = _trace(trace, seed, rate, cv, time_scale, num_requests)
    info = server_model(endpoint)
    config = {"trace": trace, "rate": rate, "cv": cv, "time_scale": time_scale}
    if run_bench(endpoint, info, tr, run_dir, config, model, vocab_size, ignore_eos, seed, timeout_s, label):
        click.echo("interrupted: finished requests were written, the rest marked unfinished", err=True)
        raise SystemExit(130)


def server_model(endpoint: str) -> dict:
    """The server's first model in /v1/models; a one-line error when it cannot be asked."""
    from client import server_info

    try:
        return server_info(endpoint)
    except ValueError as e:
        raise click.ClickException(str(e)) from None


def run_bench(endpoint: str, info: dict, tr, run_dir, config: dict, model: str | None = None,
              vocab_size: int | None = None, ignore_eos: bool = True, seed: int = 0, timeout_s: float = 600.0,
              label: str | None = None) -> bool:
    """Replay `tr` against `endpoint` into `run_dir` (with `config` in config.json) and print
    the summary; returns whether Ctrl-C or SIGTERM cut it short."""
    import asyncio

    import pandas as pd
    from tqdm import tqdm

    from client import ReplayConfig, outcomes_for, replay
    from fastserve.rundir import RunWriter, requests_frame
    from fastserve.tables import print_summary
    from policy import RequestLog

    model = model or str(info.get("id"))
    vocab = vocab_size or int(info.get("vocab_size") or DEFAULT_VOCAB_SIZE)
    label = label or str(info.get("policy") or "server")
    swap = str(info.get("swap") or "n/a")
    try:
        cfg = ReplayConfig(endpoint, model, vocab, seed, ignore_eos, timeout_s)
    except ValueError as e:
        raise click.BadParameter(str(e), param_hint="--timeout-s") from None
    writer = RunWriter(run_dir, {
        "engine": "bench", "endpoint": endpoint, **config, "num_requests": len(tr), "model": model,
        "vocab_size": vocab, "seed": seed, "ignore_eos": ignore_eos, "timeout_s": timeout_s, "server": info,
    })
    outcomes = outcomes_for(list(tr.jobs()))
    bar = tqdm(total=len(outcomes), desc=f"bench {label}", unit="req")
    previous = signal.signal(signal.SIGTERM, signal.default_int_handler)  # SIGTERM stops like Ctrl-C
    interrupted = False
    try:
        asyncio.run(replay(cfg, outcomes, lambda o: bar.update(1)))
    except KeyboardInterrupt:
        interrupted = True
    finally:
        signal.signal(signal.SIGTERM, previous)
        bar.close()
    log = RequestLog()
    for o in outcomes:
        log.record(o.job, o.job.id, 0, o.status, o.reason)
    requests = requests_frame(log, label, swap)
    ids = {o.job.id: o.response_id for o in outcomes}
    requests["response_id"] = requests["request_id"].map(ids)
    summary = writer.add(requests)
    writer.add_table("tokens", pd.DataFrame(
        [(o.job.id, i, t) for o in outcomes for i, t in enumerate(o.token_times_s)],
        columns=["request_id", "token_index", "time_s"]).astype({"request_id": "int64", "token_index": "int64"}))
    counts = log.counts()
    click.echo(f"{label:>15}: {counts['finished']:,} finished, {counts['rejected']:,} rejected, "
               f"{counts['unfinished']:,} unfinished", err=True)
    reasons = sorted({o.reason for o in outcomes if o.status != "finished"})
    for reason in reasons[:3]:
        click.echo(f"  e.g. {reason}", err=True)
    print_summary(summary)
    click.echo(f"wrote {run_dir}/", err=True)
    return interrupted
