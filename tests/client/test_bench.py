"""`fastserve bench` against the live server on 127.0.0.1: the standard run directory, client
times that contain the server's, partial results, and one-line errors.

The client's TTFT and JCT of a request contain the server's: it sends before the server stamps
the arrival, and the engine reports a token only after recording its time. So per request,
client minus server is >= 0 (the loopback overhead; benchmarks/http_overhead.py measures it).
"""

from __future__ import annotations

import asyncio
import socket

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner

from executor.engine import EngineConfig
from executor.http.codec import ByteCodec
from executor.http.server import HttpServer
from executor.serve import LiveServer
from fastserve.bench_cli import _trace
from fastserve.cli import main
from policy import SchedulerConfig
from profiles import cost_model, load_profile
from tests.executor.conftest import tiny
from traces import from_rate, resolve

TRACE = "traces/data/bursty-small.csv"
NUM_REQUESTS = 8


@pytest.fixture
def server():
    cfg = SchedulerConfig(device_kv_tokens=2048, host_kv_tokens=4096, max_seq_tokens=512)
    cost = cost_model(load_profile("tiny-llama_cpu_tp1")).for_policy("skip-join-mlfq")
    srv = HttpServer(LiveServer(tiny("tiny-llama").model, EngineConfig()), "skip-join-mlfq", cfg, cost,
                     "tiny-llama", ByteCodec(256), "127.0.0.1", 0, wait_s=0.05)
    srv.start()
    yield srv
    if srv.arrivals.stopped is None:
        srv.stop("test over")


def test_bench_writes_a_standard_run_directory_whose_times_contain_the_servers(server, tmp_path):
    out = tmp_path / "b"
    res = CliRunner().invoke(main, ["bench", "--endpoint", f"{server.url}/v1", "--trace", TRACE, "--num-requests",
                                    str(NUM_REQUESTS), "--time-scale", "0.1", "-o", str(out)])
    assert res.exit_code == 0, res.output
    served, _ = server.stop("test over")
    client = pd.read_parquet(out / "requests.parquet")
    expected = resolve(TRACE).head(NUM_REQUESTS).frame
    assert client["request_id"].tolist() == expected["request_id"].tolist()
    assert (client["status"] == "finished").all()
    assert (client["policy"] == "skip-join-mlfq").all() and (client["swap"] == "proactive").all()
    assert client["generated_tokens"].tolist() == client["output_tokens"].tolist() == expected["output_tokens"].tolist()
    summary = pd.read_csv(out / "summary.csv")
    assert summary["num_finished"].tolist() == [NUM_REQUESTS]
    tokens = pd.read_parquet(out / "tokens.parquet")
    assert tokens.groupby("request_id").size().tolist() == expected["output_tokens"].tolist()
    for rid, times in tokens.groupby("request_id")["time_s"]:
        row = client.set_index("request_id").loc[rid]
        assert times.is_monotonic_increasing and times.iloc[0] == row["first_token_s"]
        assert times.iloc[-1] <= row["finish_s"]
    # join on the server's ids: the client's intervals contain the server's
    server_rows = pd.DataFrame({"request_id": np.frombuffer(served.log.ints["request_id"], np.int64),
                                "arrival_s": np.frombuffer(served.log.floats["arrival_s"]),
                                "first_token_s": np.frombuffer(served.log.floats["first_token_s"]),
                                "finish_s": np.frombuffer(served.log.floats["finish_s"]),
                                "generated_tokens": np.frombuffer(served.log.ints["generated_tokens"], np.int64)})
    client["server_id"] = client["response_id"].str.removeprefix("cmpl-").astype(int)
    both = client.merge(server_rows, left_on="server_id", right_on="request_id", suffixes=("", "_server"))
    assert len(both) == NUM_REQUESTS and (both["generated_tokens"] == both["generated_tokens_server"]).all()
    assert (both["ttft_s"] >= both["first_token_s_server"] - both["arrival_s_server"]).all()
    assert (both["jct_s"] >= both["finish_s_server"] - both["arrival_s_server"]).all()
    compared = CliRunner().invoke(main, ["compare", str(out)])
    assert compared.exit_code == 0, compared.output
    assert "ratios are to skip-join-mlfq" in compared.output


def test_requests_the_server_refuses_are_recorded_rejected(server, tmp_path):
    out = tmp_path / "b"
    res = CliRunner().invoke(main, ["bench", "--endpoint", server.url, "--trace", "synth:num_requests=3,rate=50,lengths=fixed:prompt=400,output=200",
                                    "--label", "mine", "-o", str(out)])
    assert res.exit_code == 0, res.output
    client = pd.read_parquet(out / "requests.parquet")
    assert client["status"].tolist() == ["rejected"] * 3 and (client["policy"] == "mine").all()
    assert client["reason"].str.startswith("HTTP 400: This model's maximum context length is 512 tokens").all()


def test_an_unreachable_endpoint_is_a_one_line_error(tmp_path):
    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    res = CliRunner().invoke(main, ["bench", "--endpoint", f"http://127.0.0.1:{port}", "--trace", TRACE,
                                    "-o", str(tmp_path / "b")])
    assert res.exit_code == 1
    assert res.output.startswith(f"Error: cannot read the model list at http://127.0.0.1:{port}/v1/models")
    assert "Traceback" not in res.output


def test_rate_and_cv_replace_the_arrivals_with_seeded_ones():
    tr = _trace(TRACE, 7, 3.0, 2.0, 1.0, 20)
    expected = from_rate(3.0, 2.0).generate(20, np.random.default_rng(7))
    assert tr.frame["arrival_s"].tolist() == expected.tolist()
    original = resolve(TRACE).head(20).frame
    assert tr.frame["prompt_tokens"].tolist() == original["prompt_tokens"].tolist()


def test_validate_endpoint_compares_a_bench_run_with_a_simulation(server, tmp_path):
    out = tmp_path / "v"
    res = CliRunner().invoke(main, ["validate", "--endpoint", server.url, "--trace",
                                    "synth:num_requests=6,rate=20,lengths=fixed:prompt=16,output=8",
                                    "--profile", "tiny-llama_cpu_tp1", "-o", str(out)])
    assert res.exit_code == 0, res.output
    table = pd.read_csv(out / "validation.csv")
    measured = pd.read_csv(out / "bench" / "summary.csv").iloc[0]
    simulated = pd.read_csv(out / "sim" / "summary.csv").iloc[0]
    assert table["policy"].tolist() == ["skip-join-mlfq"] * 4
    assert table["metric"].tolist() == ["jct_mean_s", "jct_p50_s", "jct_p99_s", "ttft_mean_s"]
    for row in table.itertuples():
        assert (row.measured, row.simulated) == (measured[row.metric], simulated[row.metric])
        assert row.rel_error == pytest.approx(row.simulated / row.measured - 1)
    assert measured["num_finished"] == simulated["num_finished"] == 6


def test_validate_endpoint_needs_a_profile(server, tmp_path):
    res = CliRunner().invoke(main, ["validate", "--endpoint", server.url, "--trace", TRACE, "-o", str(tmp_path / "v")])
    assert res.exit_code == 2 and "--endpoint needs --profile" in res.output


def test_a_stopped_replay_keeps_what_finished_and_ends_every_request(server):
    from client import ReplayConfig, outcomes_for, replay
    from traces import Trace

    # two requests now, two at 60 s: the replay is stopped (as Ctrl-C does) once two have ended
    outcomes = outcomes_for(list(Trace([0.0, 0.0, 60.0, 60.0], [5, 6, 7, 8], [3, 4, 5, 6]).jobs()))
    cfg = ReplayConfig(server.url, "tiny-llama", 256)

    async def stopped_after_two() -> None:
        task, ended = asyncio.current_task(), []

        def done(outcome) -> None:
            ended.append(outcome)
            if len(ended) == 2:
                task.cancel()

        await replay(cfg, outcomes, done)

    with pytest.raises(asyncio.CancelledError):
        asyncio.run(stopped_after_two())
    assert [(o.status, o.reason) for o in outcomes] == [("finished", ""), ("finished", "")] + \
        [("unfinished", "not sent: the replay stopped first")] * 2
    assert [o.job.generated_tokens for o in outcomes] == [3, 4, 0, 0]
    assert [len(o.token_times_s) for o in outcomes] == [3, 4, 0, 0]
