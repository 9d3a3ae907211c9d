"""The HTTP front end, driven by the official `openai` client and raw httpx on 127.0.0.1.

Each test starts a server (tiny-llama, random weights, a free port) in background threads and
stops it, reading the run's records. Generated tokens must equal the in-process engine's for
the same policy, seed and prompts. Every wait is bounded in count and time.
"""

from __future__ import annotations

import json
import socket
import time
from concurrent.futures import ThreadPoolExecutor

import httpx
import openai
import pytest

from executor.engine import EngineConfig
from executor.http.codec import ByteCodec
from executor.http.server import HttpServer
from executor.serve import LiveServer
from policy import SchedulerConfig
from profiles import cost_model, load_profile
from tests.executor.conftest import tiny
from traces import Trace
from traces.prompts import prompt_token_ids

POLICY = "skip-join-mlfq"
TIMEOUT_S = 60.0
CONFIG = SchedulerConfig(device_kv_tokens=256, host_kv_tokens=512, block_size_tokens=4, max_batch_size=4,
                         max_seq_tokens=512, base_quantum_s=0.002)
PROMPTS, OUTPUTS = [42, 58, 9, 32, 61, 12], [29, 13, 40, 6, 1, 33]
TRACE = Trace([0.0] * 6, PROMPTS, OUTPUTS)


def _cost():
    return cost_model(load_profile("tiny-llama_cpu_tp1")).for_policy(POLICY)


@pytest.fixture
def server():
    servers = []

    def start() -> HttpServer:
        live = LiveServer(tiny("tiny-llama").model, EngineConfig())
        srv = HttpServer(live, POLICY, CONFIG, _cost(), "tiny-llama", ByteCodec(256), "127.0.0.1", 0, wait_s=0.05)
        srv.start()
        servers.append(srv)
        return srv

    yield start
    for srv in servers:
        if srv.arrivals.stopped is None:
            srv.stop("test over")


@pytest.fixture(scope="module")
def in_process() -> dict[int, list[int]]:
    """The same trace through the in-process engine: request id -> generated tokens."""
    result, _ = LiveServer(tiny("tiny-llama").model, EngineConfig(seed=0)).run(TRACE.jobs(), POLICY, CONFIG, _cost())
    assert result.error is None
    return result.outputs


def _client(srv: HttpServer) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{srv.url}/v1", api_key="unused", max_retries=0, timeout=TIMEOUT_S)


def _prompt(rid: int) -> list[int]:
    return prompt_token_ids(rid, PROMPTS[rid], 256, 0)


def _wait_idle(srv: HttpServer) -> None:
    for _ in range(int(TIMEOUT_S / 0.02)):
        if _open_requests(srv) == 0:
            return
        time.sleep(0.02)
    raise AssertionError("requests still open")


def _rows(result) -> dict[int, tuple[str, str, int]]:
    log = result.log
    return {rid: (status, reason, gen) for rid, status, reason, gen in
            zip(log.ints["request_id"], log.status, log.reason, log.ints["generated_tokens"], strict=True)}


def test_concurrent_openai_clients_get_the_in_process_tokens(server, in_process):
    srv = server()
    client = _client(srv)

    def one(rid: int) -> list[int]:
        n = OUTPUTS[rid]
        if rid % 2:  # streaming: one chunk per token, then a finish chunk and the usage
            chunks = list(client.completions.create(model="tiny-llama", prompt=_prompt(rid), max_tokens=n,
                                                    stream=True, stream_options={"include_usage": True}))
            tokens = [c.choices[0].model_extra["token_ids"] for c in chunks if c.choices]
            assert [len(t) for t in tokens] == [1] * n + [0]
            assert chunks[-2].choices[0].finish_reason == "length" and chunks[-1].usage.completion_tokens == n
            return [t[0] for t in tokens[:-1]]
        done = client.completions.create(model="tiny-llama", prompt=_prompt(rid), max_tokens=n)
        assert done.choices[0].finish_reason == "length" and done.usage.completion_tokens == n
        assert done.choices[0].text == "".join(map(chr, done.choices[0].model_extra["token_ids"]))
        return done.choices[0].model_extra["token_ids"]

    with ThreadPoolExecutor(len(TRACE)) as pool:
        got = dict(zip(range(len(TRACE)), pool.map(one, range(len(TRACE))), strict=True))
    assert got == in_process
    result, swap = srv.stop()
    assert swap == "proactive" and result.log.counts() == {"finished": 6, "rejected": 0, "unfinished": 0}


def test_chat_completions_streamed_and_not(server):
    srv = server()
    client = _client(srv)
    messages = [{"role": "system", "content": "be brief"}, {"role": "user", "content": "hi"}]
    expected = tiny("tiny-llama").generate(ByteCodec(256).chat([("system", "be brief"), ("user", "hi")]), 7)
    done = client.chat.completions.create(model="tiny-llama", messages=messages, max_tokens=7)
    assert done.choices[0].message.content == "".join(map(chr, expected))
    chunks = list(client.chat.completions.create(model="tiny-llama", messages=messages, max_completion_tokens=7,
                                                 stream=True))
    assert chunks[0].choices[0].delta.role == "assistant"
    assert "".join(c.choices[0].delta.content or "" for c in chunks) == done.choices[0].message.content
    assert chunks[-1].choices[0].finish_reason == "length"


def test_models_and_health(server):
    srv = server()
    model = _client(srv).models.list().data[0]
    assert (model.id, model.model_extra["max_model_len"], model.model_extra["policy"]) == ("tiny-llama", 512, POLICY)
    assert httpx.get(f"{srv.url}/health").json() == {"status": "ok", "num_open_requests": 0}
    srv.stop("test over")


@pytest.mark.parametrize(("body", "param", "code", "message"), [
    ({"prompt": ""}, "prompt", None, "prompt is empty"),
    ({"prompt": []}, "prompt", None, "prompt is empty"),
    ({"prompt": 5}, "prompt", None, "prompt must be a string"),
    ({"prompt": [1, "a"]}, "prompt", None, "prompt must be a string"),
    ({"prompt": ["a", "b"]}, "prompt", None, "one prompt per request"),
    ({"prompt": [1, 256]}, "prompt", None, "token id 256 is outside the vocabulary [0, 256)"),
    ({"prompt": "hi", "max_tokens": 0}, "max_tokens", None, "max_tokens must be a positive integer, got 0"),
    ({"prompt": "hi", "max_tokens": "3"}, "max_tokens", None, "max_tokens must be a positive integer, got '3'"),
    ({"prompt": "hi", "max_tokens": 511}, "prompt", "context_length_exceeded",
     "maximum context length is 512 tokens. However, you requested 513 tokens (2 in the prompt, 511 in the completion)"),
    ({"prompt": "hi", "max_tokens": 300}, "max_tokens", "context_length_exceeded", "more than the device holds (256)"),
    ({"prompt": "hi", "n": 2}, "n", None, "only n = 1"),
    ({"prompt": "hi", "stream": "yes"}, "stream", None, "stream must be a boolean"),
])
def test_bad_requests_get_openai_style_errors(server, body, param, code, message):
    srv = server()
    resp = httpx.post(f"{srv.url}/v1/completions", json=body, timeout=TIMEOUT_S)
    assert resp.status_code == 400
    error = resp.json()["error"]
    assert (error["type"], error["param"], error["code"]) == ("invalid_request_error", param, code)
    assert message in error["message"]
    with pytest.raises(openai.BadRequestError, match="messages are empty"):
        _client(srv).chat.completions.create(model="tiny-llama", messages=[{"role": "user", "content": ""}])
    with pytest.raises(openai.NotFoundError, match="does not exist"):
        _client(srv).completions.create(model="gpt-4", prompt="hi")
    bad_json = httpx.post(f"{srv.url}/v1/completions", content=b"{not json", timeout=TIMEOUT_S)
    assert bad_json.status_code == 400 and "not valid JSON" in bad_json.json()["error"]["message"]
    result, _ = srv.stop("test over")
    assert len(result.log) == 0  # nothing reached the engine


def _open_requests(srv: HttpServer) -> int:
    return httpx.get(f"{srv.url}/health", timeout=TIMEOUT_S).json()["num_open_requests"]


def test_disconnects_free_the_job_and_the_server_goes_on(server):
    srv = server()
    # a non-streaming client that leaves once the engine has its request
    body = json.dumps({"prompt": [4, 5], "max_tokens": 250}).encode()
    with socket.create_connection(("127.0.0.1", srv.port)) as sock:
        sock.sendall(b"POST /v1/completions HTTP/1.1\r\nHost: test\r\nContent-Type: application/json\r\n"
                     b"Content-Length: %d\r\n\r\n%s" % (len(body), body))
        for _ in range(int(TIMEOUT_S / 0.01)):
            if _open_requests(srv) == 1:
                break
            time.sleep(0.01)
    _wait_idle(srv)
    # a streaming client that leaves mid-stream
    stream = _client(srv).completions.create(model="tiny-llama", prompt=[1, 2, 3], max_tokens=200, stream=True)
    for _, _chunk in zip(range(3), stream, strict=False):
        pass
    stream.close()
    _wait_idle(srv)
    after = _client(srv).completions.create(model="tiny-llama", prompt=[7], max_tokens=2)
    assert after.usage.completion_tokens == 2
    result, _ = srv.stop("test over")
    rows = _rows(result)
    assert rows[0][:2] == rows[1][:2] == ("unfinished", "client disconnected")
    assert rows[0][2] < 250 and 3 <= rows[1][2] < 200
    assert rows[2] == ("finished", "", 2)


def test_stopping_ends_open_streams_with_an_error_and_records_them(server):
    srv = server()
    stream = _client(srv).completions.create(model="tiny-llama", prompt=[1, 2, 3], max_tokens=200, stream=True)
    next(iter(stream))
    srv.arrivals.stop("server stopped (SIGTERM)")
    with pytest.raises(openai.APIError, match="did not finish: run stopped: server stopped"):
        for _ in zip(range(500), stream, strict=False):
            pass
    result, _ = srv.stop()
    assert _rows(result)[0][:2] == ("unfinished", "run stopped: server stopped (SIGTERM)")
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"{srv.url}/health", timeout=TIMEOUT_S)
