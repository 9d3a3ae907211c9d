"""The acceptance path as a user runs it: `fastserve serve --http` in its own process, `fastserve
bench` against it, SIGTERM, then `fastserve compare` on both run directories.

The server is a distributed replica (`--pp 2`: the pipelined engine on rank 0 and one spawned
worker), so the distributed path is covered too; the single-process server is exercised in
process by tests/executor/test_http_server.py and tests/client/test_bench.py. Waits are bounded (SERVER_START_S, the subprocess
timeouts)."""

from __future__ import annotations

import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
from click.testing import CliRunner

from fastserve.cli import main

SERVER_START_S = 180.0
REPO = Path(__file__).resolve().parent.parent


@pytest.mark.slow
def test_serve_http_then_bench_then_sigterm_then_compare(tmp_path):
    served, benched = tmp_path / "served", tmp_path / "b"
    log = (tmp_path / "server.err").open("wb")
    cmd = [sys.executable, "-m", "fastserve", "serve", "--http", "127.0.0.1:0", "--model", "tiny-llama",
           "--policy", "skip-join-mlfq", "--pp", "2", "-o", str(served)]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=log, cwd=REPO)
    try:
        url = None
        for _ in range(int(SERVER_START_S / 0.05)):
            found = re.search(r"on (http://127\.0\.0\.1:\d+)/v1", (tmp_path / "server.err").read_text(errors="replace"))
            if found or proc.poll() is not None:
                url = found and found.group(1)
                break
            time.sleep(0.05)
        assert url, (tmp_path / "server.err").read_text(errors="replace")
        res = CliRunner().invoke(main, ["bench", "--endpoint", url, "--trace", "traces/data/bursty-small.csv",
                                        "--num-requests", "6", "--time-scale", "0.1", "-o", str(benched)])
        assert res.exit_code == 0, res.output
    finally:
        proc.send_signal(signal.SIGTERM)
        out, _ = proc.communicate(timeout=120)
        log.close()
    err = (tmp_path / "server.err").read_text(errors="replace")
    assert proc.returncode == 0, err
    assert "skip-join-mlfq (proactive): 6 finished, 0 rejected, 0 unfinished" in err
    assert f"wrote {served}/" in err and "skip-join-mlfq" in out.decode()
    server_rows = pd.read_parquet(served / "requests.parquet")
    client_rows = pd.read_parquet(benched / "requests.parquet")
    assert (server_rows["status"] == "finished").all() and (client_rows["status"] == "finished").all()
    assert sorted(server_rows["output_tokens"]) == sorted(client_rows["output_tokens"])
    compared = CliRunner().invoke(main, ["compare", str(benched), str(served), "--baseline", "skip-join-mlfq"])
    assert compared.exit_code == 0, compared.output
