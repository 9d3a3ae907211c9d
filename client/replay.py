"""Replay a trace against an OpenAI-compatible server, measuring every request from the client.

Open loop, as the FastServe artifact's client: request i is sent at `t0 + arrival_s[i]`
whatever the server's state, on its own connection if need be (no client-side queue). Each is
a streaming `/v1/completions` call with a token-id prompt of exactly `prompt_tokens` ids
(`traces.prompts.prompt_token_ids`, the ids the in-process executor uses for the same seed),
`max_tokens` = `output_tokens`, greedy, and `ignore_eos` unless disabled (vLLM's extension:
the server must not stop at EOS, so that the work is the trace's).

Times are client seconds since `t0`: `arrival_s` when the request is sent, `first_token_s`
when the first chunk carrying a token arrives, `finish_s` when the stream ends, and one time
per token (a chunk's tokens: its `token_ids`, else one if it carries text). A request ends as
finished (the stream completed), rejected (the server answered 4xx) or unfinished (5xx, an
error event, a broken connection, the timeout, or the replay stopped first), with the reason.

Invariant: `replay` fills one `Outcome` per request in place, even when it is cancelled
(Ctrl-C): requests in flight and not yet sent end unfinished, so partial results are kept.
"""

from __future__ import annotations

import asyncio
import json
import math
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import httpx

from policy import Job
from traces.prompts import prompt_token_ids


@dataclass(frozen=True)
class ReplayConfig:
    endpoint: str  # http://host:port (a trailing /v1 is fine)
    model: str
    vocab_size: int  # prompt ids are drawn below it
    seed: int = 0
    ignore_eos: bool = True
    timeout_s: float = 600.0  # per request, from send to the end of its stream

    def __post_init__(self) -> None:
        if self.vocab_size < 1:
            raise ValueError(f"vocab_size must be >= 1, got {self.vocab_size}")
        if not self.timeout_s > 0:
            raise ValueError(f"timeout_s must be > 0, got {self.timeout_s}")


@dataclass
class Outcome:
    job: Job  # arrival, first token, finish (client times) and generated_tokens filled in
    status: str = "unfinished"
    reason: str = "not sent: the replay stopped first"
    response_id: str = ""
    token_times_s: list[float] = field(default_factory=list)


def base_url(endpoint: str) -> str:
    url = endpoint.rstrip("/")
    return url[:-3] if url.endswith("/v1") else url


def _chunk_tokens(choice: dict) -> int:
    if isinstance(choice.get("token_ids"), list):
        return len(choice["token_ids"])
    text = choice.get("text")
    if text is None:
        text = (choice.get("delta") or {}).get("content")
    return 1 if text else 0


async def _one(http: httpx.AsyncClient, cfg: ReplayConfig, outcome: Outcome, t0: float) -> None:
    job = outcome.job
    body = {"model": cfg.model, "prompt": prompt_token_ids(job.id, job.prompt_tokens, cfg.vocab_size, cfg.seed),
            "max_tokens": job.output_tokens, "stream": True, "stream_options": {"include_usage": True},
            "temperature": 0.0}
    if cfg.ignore_eos:
        body["ignore_eos"] = True
    job.arrival_s = time.perf_counter() - t0
    outcome.reason = "no response yet"
    num_tokens, usage_tokens, ended = 0, None, False
    async with http.stream("POST", f"{base_url(cfg.endpoint)}/v1/completions", json=body) as resp:
        if resp.status_code != 200:
            text = (await resp.aread()).decode("utf-8", "replace")
            try:
                message = json.loads(text)["error"]["message"]
            except (ValueError, KeyError, TypeError):
                message = text.strip()[:200]
            outcome.status = "rejected" if 400 <= resp.status_code < 500 else "unfinished"
            outcome.reason = f"HTTP {resp.status_code}: {message}"
            return
        async for line in resp.aiter_lines():
            if not line.startswith("data:"):
                continue
            data = line[5:].strip()
            if data == "[DONE]":
                ended = True
                break
            event = json.loads(data)
            if "error" in event:
                outcome.reason = f"server error: {event['error'].get('message', event['error'])}"
                return
            now = time.perf_counter() - t0
            outcome.response_id = outcome.response_id or str(event.get("id", ""))
            if event.get("usage"):
                usage_tokens = event["usage"].get("completion_tokens")
            for choice in event.get("choices") or []:
                n = _chunk_tokens(choice)
                if n and num_tokens == 0:
                    job.first_token_s = now
                num_tokens += n
                outcome.token_times_s.extend([now] * n)
                ended = ended or choice.get("finish_reason") is not None
    job.generated_tokens = usage_tokens if usage_tokens is not None else num_tokens
    if not ended:
        outcome.reason = "the stream ended without a finish"
        return
    job.finish_s = time.perf_counter() - t0
    outcome.status, outcome.reason = "finished", ""


async def _send_at(http, cfg: ReplayConfig, outcome: Outcome, t0: float, done: Callable[[Outcome], None]) -> None:
    try:
        await asyncio.sleep(max(0.0, t0 + outcome.job.arrival_s - time.perf_counter()))
        await asyncio.wait_for(_one(http, cfg, outcome, t0), cfg.timeout_s)
    except asyncio.TimeoutError:
        outcome.reason = f"timed out after {cfg.timeout_s:g} s"
    except asyncio.CancelledError:
        if outcome.reason != "not sent: the replay stopped first":
            outcome.reason = "in flight when the replay stopped"
        raise
    except (httpx.HTTPError, ValueError) as e:
        outcome.reason = f"{type(e).__name__}: {e}"
    finally:
        if outcome.status != "finished":
            outcome.job.finish_s = math.nan
        done(outcome)


def outcomes_for(jobs: list[Job]) -> list[Outcome]:
    """One fresh outcome per job, all "not sent" (the caller keeps them if the replay is cut short)."""
    return [Outcome(Job(id=j.id, arrival_s=j.arrival_s, prompt_tokens=j.prompt_tokens,
                        output_tokens=j.output_tokens)) for j in jobs]


async def replay(cfg: ReplayConfig, outcomes: list[Outcome], done: Callable[[Outcome], None] = lambda o: None) -> None:
    """Send every outcome's job at its arrival time (seconds from now), filling the outcomes in
    place; `done` is called as each ends. Cancelled (Ctrl-C), it still ends every outcome."""
    limits = httpx.Limits(max_connections=None, max_keepalive_connections=None)
    # Nagle off: a request's body must not wait for the ACK of its headers
    transport = httpx.AsyncHTTPTransport(limits=limits, socket_options=[(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)])
    async with httpx.AsyncClient(transport=transport, timeout=httpx.Timeout(cfg.timeout_s)) as http:
        t0 = time.perf_counter()
        tasks = [asyncio.ensure_future(_send_at(http, cfg, o, t0, done)) for o in outcomes]
        try:
            await asyncio.gather(*tasks)
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)


def server_info(endpoint: str, timeout_s: float = 10.0) -> dict:
    """The first model of GET /v1/models (`id`, and `vocab_size`, `policy`, `swap` where the
    server tells); ValueError with a one-line reason when the server cannot be asked."""
    url = f"{base_url(endpoint)}/v1/models"
    try:
        resp = httpx.get(url, timeout=timeout_s)
        resp.raise_for_status()
        return resp.json()["data"][0]
    except (httpx.HTTPError, ValueError, KeyError, IndexError, TypeError) as e:
        raise ValueError(f"cannot read the model list at {url}: {e}") from None
