"""`fastserve serve --http`: one policy behind the OpenAI-compatible API, then the run directory.

The server (executor/http) runs until Ctrl-C or SIGTERM (or its engine fails); then every
request it ever accepted is one row of RUN_DIR/requests.parquet: finished, rejected, or
unfinished with the reason (client disconnected, server stopped). Arrival, first-token and
finish times are engine seconds since the server started, as in trace replay. A stop is the
normal end of a server, so it exits 0; an engine failure exits 1, after writing what it has.
"""

from __future__ import annotations

import click

from fastserve.policy_options import config_dict
from fastserve.rundir import RunWriter, requests_frame
from fastserve.tables import print_summary


def parse_address(text: str) -> tuple[str, int]:
    """`PORT`, `:PORT`, `HOST:PORT` or `[IPV6]:PORT`; the host defaults to loopback."""
    host, sep, port = text.rpartition(":")
    host = host.strip("[]") if sep else ""
    if not port.isdigit() or not 0 <= int(port) <= 65535:
        raise ValueError(f"expected [HOST:]PORT with a port in 0-65535, got {text!r}")
    return host or "127.0.0.1", int(port)


def serve_http(server, policy: str, config, cost, run_dir: str, record: dict, address: tuple[str, int]) -> None:
    """Serve on `address` with `server` (a LiveServer or DistributedServer) until stopped."""
    from executor.http.codec import make_codec
    from executor.http.server import HttpServer

    policy_cost = cost.for_policy(policy) if cost is not None else None  # as trace replay prices it
    codec = make_codec(record.get("checkpoint"), server.model.config.vocab_size)
    try:
        http = HttpServer(server, policy, config, policy_cost, record["model"], codec, *address)
    except ValueError as e:
        raise click.ClickException(str(e)) from None
    writer = RunWriter(run_dir, {
        **record, "dtype": str(server.model.dtype), "kv_bytes_per_token": server.layout.bytes_per_token,
        "policies": {policy: config_dict(config)}, "tokenizer": codec.name,
    })
    click.echo(f"serving {record['model']} ({policy}) on {http.url}/v1 (Ctrl-C or SIGTERM stops it and "
               f"writes {run_dir}/)", err=True)
    try:
        result, swap_mode = http.serve()
    except Exception as e:  # noqa: BLE001 - the engine failed outside a run: nothing to write
        raise click.ClickException(f"the engine failed: {type(e).__name__}: {e}") from None
    summary = writer.add(requests_frame(result.log, policy, swap_mode), result.iterations, result.spans)
    counts = result.log.counts()
    click.echo(f"{policy:>15} ({swap_mode}): {counts['finished']:,} finished, {counts['rejected']:,} rejected, "
               f"{counts['unfinished']:,} unfinished", err=True)
    if len(result.log):
        print_summary(summary)
    click.echo(f"wrote {run_dir}/", err=True)
    if result.error is not None and not result.interrupted:
        raise click.ClickException(f"the engine stopped early, partial results written: {result.error}")
