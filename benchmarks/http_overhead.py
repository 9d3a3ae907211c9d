"""How far `fastserve bench`'s client-side TTFT and JCT are from the server's own records.

    python benchmarks/http_overhead.py [--trace traces/data/bursty-small.csv] [--num-requests N]

Starts `fastserve serve --http 127.0.0.1:0 --model tiny-llama` in its own process (as a user
would), then, from this process:
1. the loopback overhead: the round trip of GET /health (HTTP over loopback through the event
   loop, no engine work), 200 times one after another, while the server is idle;
2. an idle replay: the trace's first requests sent 0.5 s apart, so none waits for another;
3. the trace replay itself (`client.replay`, what `fastserve bench` runs).
It stops the server with SIGTERM, joins the bench rows to the server's run directory by the
server's response id, and prints, per replay, the client-minus-server difference of TTFT and
JCT per request (median, p90, max) and of the arrival stamp. By construction the difference
is >= 0 (tests/client/test_bench.py); it is the loopback overhead plus, under load, the time
the server's event loop waits for the engine thread to let go of the GIL.
"""

from __future__ import annotations

import argparse
import asyncio
import re
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
import numpy as np
import pandas as pd

from client import ReplayConfig, outcomes_for, replay, server_info
from traces import Trace, resolve

REPO = Path(__file__).resolve().parent.parent
START_TIMEOUT_S = 300.0


def start_server(run_dir: Path, log_path: Path) -> tuple[subprocess.Popen, str]:
    cmd = [sys.executable, "-m", "fastserve", "serve", "--http", "127.0.0.1:0", "--model", "tiny-llama",
           "--policy", "skip-join-mlfq", "-o", str(run_dir)]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=log_path.open("wb"), cwd=REPO)
    for _ in range(int(START_TIMEOUT_S / 0.1)):
        found = re.search(r"on (http://127\.0\.0\.1:\d+)/v1", log_path.read_text(errors="replace"))
        if found:
            return proc, found.group(1)
        if proc.poll() is not None:
            break
        time.sleep(0.1)
    proc.kill()
    raise SystemExit(f"the server did not start: {log_path.read_text(errors='replace')[-2000:]}")


def health_rtt_s(url: str, n: int = 200) -> list[float]:
    times = []
    nodelay = [(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)]
    with httpx.Client(transport=httpx.HTTPTransport(socket_options=nodelay)) as http:
        for _ in range(n):
            began = time.perf_counter()
            http.get(f"{url}/health").raise_for_status()
            times.append(time.perf_counter() - began)
    return times


def run_replay(cfg: ReplayConfig, trace: Trace) -> pd.DataFrame:
    outcomes = outcomes_for(list(trace.jobs()))
    asyncio.run(replay(cfg, outcomes))
    bad = [o.reason for o in outcomes if o.status != "finished"]
    if bad:
        raise SystemExit(f"{len(bad)} requests did not finish, e.g. {bad[0]}")
    return pd.DataFrame({
        "server_id": [int(o.response_id.removeprefix("cmpl-")) for o in outcomes],
        "ttft_client_s": [o.job.first_token_s - o.job.arrival_s for o in outcomes],
        "jct_client_s": [o.job.finish_s - o.job.arrival_s for o in outcomes],
    })


def stats_ms(values: np.ndarray) -> str:
    return (f"median {np.median(values) * 1e3:7.2f} ms   p90 {np.quantile(values, 0.9) * 1e3:7.2f} ms   "
            f"max {values.max() * 1e3:7.2f} ms")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trace", default="traces/data/bursty-small.csv", help="trace to replay")
    parser.add_argument("--num-requests", type=int, default=None, help="only the first N requests")
    parser.add_argument("--num-idle", type=int, default=10, help="requests in the idle replay")
    args = parser.parse_args()
    trace = resolve(args.trace)
    trace = trace.head(args.num_requests) if args.num_requests else trace
    frame = trace.frame
    idle = Trace(0.5 * np.arange(args.num_idle), frame["prompt_tokens"][:args.num_idle],
                 frame["output_tokens"][:args.num_idle])
    with tempfile.TemporaryDirectory() as tmp:
        run_dir = Path(tmp) / "served"
        proc, url = start_server(run_dir, Path(tmp) / "server.err")
        try:
            info = server_info(url)
            cfg = ReplayConfig(url, info["id"], info["vocab_size"])
            rtt = np.array(health_rtt_s(url))
            replays = {"idle (0.5 s apart)": run_replay(cfg, idle), f"{args.trace}": run_replay(cfg, trace)}
        finally:
            proc.send_signal(signal.SIGTERM)
            proc.wait(timeout=120)
        served = pd.read_parquet(run_dir / "requests.parquet").set_index("request_id")
    print(f"loopback overhead, GET /health round trip ({len(rtt)} calls): {stats_ms(rtt)}   "
          f"mean {statistics.fmean(rtt) * 1e3:.2f} ms")
    for name, client in replays.items():
        rows = served.loc[client["server_id"]]
        ttft = client["ttft_client_s"].to_numpy() - rows["ttft_s"].to_numpy()
        jct = client["jct_client_s"].to_numpy() - rows["jct_s"].to_numpy()
        print(f"\n{name}: {len(client)} requests, server JCT mean {rows['jct_s'].mean():.3f} s, "
              f"client JCT mean {client['jct_client_s'].mean():.3f} s")
        print(f"  TTFT client - server: {stats_ms(ttft)}")
        print(f"  JCT  client - server: {stats_ms(jct)}")
        print(f"  JCT relative: median {np.median(jct / rows['jct_s'].to_numpy()):+.2%}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
