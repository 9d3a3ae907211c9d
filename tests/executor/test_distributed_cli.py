"""`fastserve serve --tp/--pp` end to end on CPU: spawned workers, torchrun, a worker killed mid-run.

The kill test runs the CLI as a subprocess, waits until its progress bar shows 3 finished
requests, SIGKILLs the worker (the CLI's child), and requires the run to end within the
subprocess timeout with a one-line error naming the dead worker, and a run directory that
keeps the finished requests and marks the rest unfinished with that reason.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pandas as pd
import pytest
from click.testing import CliRunner

from fastserve.cli import main

KILL_DEADLINE_S = 90  # the whole kill test: start, 3 requests, kill, stop, write


@pytest.fixture()
def trace(tmp_path) -> Path:
    """24 requests, one every 0.1 trace-seconds: the run is still going after the third finishes."""
    path = tmp_path / "t.csv"
    n = 24
    pd.DataFrame({"arrival_s": [0.1 * i for i in range(n)], "prompt_tokens": [8 + 3 * (i % 7) for i in range(n)],
                  "output_tokens": [6 + 2 * (i % 5) for i in range(n)]}).to_csv(path, index=False)
    return path


def _serve_args(trace: Path, out: Path, *extra: str) -> list[str]:
    return ["serve", "--trace", str(trace), "--model", "tiny-llama", "--device-kv-tokens", "256",
            "--host-kv-tokens", "256", "--block-size", "4", "--max-batch", "4", "--max-seq-tokens", "128",
            "-o", str(out), *extra]


@pytest.mark.parametrize("shape", [["--tp", "2"], ["--pp", "2"]], ids=["tp2", "pp2"])
def test_serve_with_spawned_workers(tmp_path, trace, shape):
    out = tmp_path / "run"
    result = CliRunner().invoke(main, _serve_args(trace, out, "--policy", "skip-join-mlfq", "--policy", "fcfs",
                                                  "--time-scale", "0.05", *shape))
    assert result.exit_code == 0, result.output
    summary = pd.read_csv(out / "summary.csv")
    assert list(summary["policy"]) == ["skip-join-mlfq", "fcfs"] and list(summary["num_finished"]) == [24, 24]
    requests = pd.read_parquet(out / "requests.parquet")
    assert (requests["status"] == "finished").all()
    assert (requests["generated_tokens"] == requests["output_tokens"]).all()
    config = json.loads((out / "config.json").read_text())
    assert (config["tp"], config["pp"]) == ((2, 1) if shape[0] == "--tp" else (1, 2))


def test_a_shape_the_model_cannot_take_is_one_line(tmp_path, trace):
    result = CliRunner().invoke(main, _serve_args(trace, tmp_path / "run", "--tp", "4"))
    assert result.exit_code == 1
    assert result.output.strip() == "Error: --tp 4 --pp 1: 2 KV heads cannot be split over 4 tensor-parallel ranks"
    assert not (tmp_path / "run").exists()


def _children(pid: int) -> list[int]:
    with open(f"/proc/{pid}/task/{pid}/children") as f:
        return [int(p) for p in f.read().split()]


def _signal_worker_mid_run(tmp_path: Path, trace: Path, sig: int, timeout_s: int) -> tuple[int, int, str, Path]:
    """Run `serve --tp 2` as a subprocess, send `sig` to its worker once 3 requests finished;
    returns (exit status, worker pid, last stderr line, run directory)."""
    out = tmp_path / "run"
    cmd = [sys.executable, "-m", "fastserve", *_serve_args(trace, out, "--policy", "skip-join-mlfq", "--policy",
                                                            "fcfs", "--tp", "2", "--dist-timeout-s", str(timeout_s))]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=tmp_path)
    err = bytearray()

    def read() -> None:  # tqdm redraws with \r and no newline: read whatever is there
        for chunk in iter(lambda: proc.stderr.read1(4096), b""):
            err.extend(chunk)

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    start = time.monotonic()
    worker = -1
    try:
        while not re.search(rb"serve skip-join-mlfq:.*\| *([3-9]|1\d)/24", bytes(err)):
            assert proc.poll() is None, bytes(err).decode(errors="replace")
            assert time.monotonic() - start < KILL_DEADLINE_S, "3 requests never finished"
            time.sleep(0.01)
        (worker,) = _children(proc.pid)
        os.kill(worker, sig)
        proc.wait(timeout=max(1.0, KILL_DEADLINE_S - (time.monotonic() - start)))
    finally:
        if proc.poll() is None:
            proc.kill()
        if worker > 0 and sig == signal.SIGSTOP:  # the CLI kills it; never leave it stopped
            with contextlib.suppress(ProcessLookupError):
                os.kill(worker, signal.SIGKILL)
    reader.join(timeout=5)
    lines = bytes(err).decode(errors="replace").replace("\r", "\n").strip().splitlines()
    return proc.returncode, worker, lines[-1], out


def _partial_result(out: Path, reason: str) -> None:
    requests = pd.read_parquet(out / "requests.parquet")
    assert len(requests) == 24 and set(requests["policy"]) == {"skip-join-mlfq"}
    finished = requests[requests["status"] == "finished"]
    unfinished = requests[requests["status"] == "unfinished"]
    assert len(finished) >= 3 and len(unfinished) >= 1 and len(finished) + len(unfinished) == 24
    assert (finished["generated_tokens"] == finished["output_tokens"]).all()
    assert unfinished["reason"].str.contains(reason, regex=False).all()
    assert unfinished["reason"].str.startswith(("run stopped: DistributedError", "not yet arrived; run stopped")).all()


@pytest.mark.serial  # a 90 s deadline on worker start-up
@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="finds the worker through /proc")
def test_killing_a_worker_stops_the_run_with_a_partial_result(tmp_path, trace):
    status, worker, error, out = _signal_worker_mid_run(tmp_path, trace, signal.SIGKILL, 20)
    assert status == 1
    assert error.startswith("Error: run stopped early, partial results written: skip-join-mlfq: DistributedError: ")
    assert f"worker rank 1 (pid {worker}) was killed by signal 9 (SIGKILL)" in error
    assert error.endswith("; policies not run: fcfs")
    _partial_result(out, "killed by signal 9")


@pytest.mark.serial  # a deadline on worker start-up
@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="finds the worker through /proc")
def test_a_hung_worker_stops_the_run_after_the_timeout(tmp_path, trace):
    t = time.monotonic()
    status, _, error, out = _signal_worker_mid_run(tmp_path, trace, signal.SIGSTOP, 3)
    assert status == 1 and time.monotonic() - t < KILL_DEADLINE_S
    assert error.startswith("Error: run stopped early, partial results written: skip-join-mlfq: DistributedError: ")
    assert "Timed out waiting 3000ms" in error and error.endswith("; policies not run: fcfs")
    _partial_result(out, "Timed out waiting 3000ms")


def test_torchrun_launch(tmp_path, trace):
    out = tmp_path / "run"
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2", "-m", "fastserve",
           *_serve_args(trace, out, "--policy", "mlfq", "--pp", "2", "--time-scale", "0.05")]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=180, cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-2000:]
    requests = pd.read_parquet(out / "requests.parquet")
    assert len(requests) == 24 and (requests["status"] == "finished").all()
    assert json.loads((out / "config.json").read_text())["pp"] == 2
