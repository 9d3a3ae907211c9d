"""The ASGI app (Starlette): OpenAI-compatible routes over an `OnlineArrivals` source.

Routes: POST /v1/completions and /v1/chat/completions (JSON, or server-sent events with one
chunk per generated token when `stream` is true), GET /v1/models, GET /health.

Threads: handlers run on the event loop and never block on the engine. A request is submitted
to the source with a `QueueSink`, which the engine thread calls; the sink hands each token to
the request's `asyncio.Queue` with `loop.call_soon_threadsafe`, so the engine never waits for
the loop either. A preempted request's stream simply has no chunk until it runs again.

Disconnects: a stream whose client goes away (Starlette cancels it, or a send fails) and a
non-streaming request whose connection closes before the answer both cancel the request, so
the engine aborts the job and frees its KV. A request that the run ends before it finishes
gets an error: a 503 body, or an error event on its stream.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time

from starlette.applications import Starlette
from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from executor.arrivals import RunStopped
from executor.http.protocol import (
    ApiError,
    GenerationRequest,
    Limits,
    chunk,
    parse,
    response,
    usage_chunk,
)
from executor.online import OnlineArrivals

CLIENT_CLOSED_STATUS = 499  # nginx's convention; nobody reads it


class QueueSink:
    """Engine thread -> event loop, without blocking either (see the module docstring)."""

    def __init__(self, loop: asyncio.AbstractEventLoop, queue: asyncio.Queue) -> None:
        self.loop, self.queue = loop, queue

    def _put(self, item: tuple) -> None:
        with contextlib.suppress(RuntimeError):  # a closed event loop: nobody is listening any more
            self.loop.call_soon_threadsafe(self.queue.put_nowait, item)

    def token(self, token: int) -> None:
        self._put(("token", token))

    def done(self, status: str, reason: str) -> None:
        self._put(("done", status, reason))


def _error(e: ApiError) -> JSONResponse:
    return JSONResponse(e.body(), status_code=e.status)


def _ended_error(status: str, reason: str) -> ApiError:
    if status == "rejected":
        return ApiError(f"the server refused the request: {reason}", code="rejected")
    return ApiError(f"the request did not finish: {reason}", status=503, kind="server_error", code="unfinished")


def _sse(body: dict | str) -> str:
    return f"data: {body if isinstance(body, str) else json.dumps(body)}\n\n"


class TokenStream(StreamingResponse):
    """A stream that cancels its request however it ends before the request did."""

    def __init__(self, arrivals: OnlineArrivals, job_id: int, events, state: dict) -> None:
        super().__init__(events, media_type="text/event-stream", headers={"Cache-Control": "no-cache"})
        self.arrivals, self.job_id, self.state = arrivals, job_id, state

    async def __call__(self, scope, receive, send) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            if not self.state["ended"]:
                self.arrivals.cancel(self.job_id)


class FrontEnd:
    def __init__(self, arrivals: OnlineArrivals, limits: Limits, codec, info: dict | None = None) -> None:
        self.arrivals, self.limits, self.codec = arrivals, limits, codec
        self.info = info or {}  # more fields for /v1/models (the policy and swap mode)
        self.created = int(time.time())

    def app(self) -> Starlette:
        return Starlette(routes=[
            Route("/v1/completions", self.completions, methods=["POST"]),
            Route("/v1/chat/completions", self.chat_completions, methods=["POST"]),
            Route("/v1/models", self.models, methods=["GET"]),
            Route("/health", self.health, methods=["GET"]),
        ])

    async def health(self, request: Request) -> Response:
        if self.arrivals.stopped is not None:
            return JSONResponse({"status": "stopping", "reason": self.arrivals.stopped}, status_code=503)
        return JSONResponse({"status": "ok", "num_open_requests": self.arrivals.num_open})

    async def models(self, request: Request) -> Response:
        lim = self.limits
        return JSONResponse({"object": "list", "data": [{
            "id": lim.model, "object": "model", "created": self.created, "owned_by": "fastserve",
            "max_model_len": lim.max_seq_tokens, "vocab_size": lim.vocab_size, "tokenizer": self.codec.name,
            **self.info,
        }]})

    async def completions(self, request: Request) -> Response:
        return await self._generate(request, chat=False)

    async def chat_completions(self, request: Request) -> Response:
        return await self._generate(request, chat=True)

    async def _generate(self, request: Request, chat: bool) -> Response:
        try:
            try:
                body = json.loads(await request.body())
            except ClientDisconnect:  # gone before its body arrived: nothing was submitted
                return Response(status_code=CLIENT_CLOSED_STATUS)
            except (json.JSONDecodeError, UnicodeDecodeError) as e:
                raise ApiError(f"the request body is not valid JSON: {e}") from None
            req = parse(body, chat, self.limits, self.codec)
        except ApiError as e:
            return _error(e)
        queue: asyncio.Queue = asyncio.Queue()
        try:
            job_id = self.arrivals.submit(req.prompt_ids, req.max_tokens, QueueSink(asyncio.get_running_loop(), queue))
        except RunStopped as e:
            return _error(ApiError(f"the server is stopping: {e}", status=503, kind="server_error"))
        if req.stream:
            state = {"ended": False}
            return TokenStream(self.arrivals, job_id, self._events(req, job_id, queue, state), state)
        return await self._answer(request, req, job_id, queue)

    async def _answer(self, request: Request, req: GenerationRequest, job_id: int, queue: asyncio.Queue) -> Response:
        collect = asyncio.ensure_future(_collect(queue))
        gone = asyncio.ensure_future(_disconnected(request))
        try:
            await asyncio.wait({collect, gone}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            gone.cancel()
            if not collect.done():  # the client left first (or the handler was cancelled)
                collect.cancel()
                self.arrivals.cancel(job_id)
        if not collect.done() or collect.cancelled():
            return Response(status_code=CLIENT_CLOSED_STATUS)
        tokens, status, reason = collect.result()
        if status != "finished":
            return _error(_ended_error(status, reason))
        return JSONResponse(response(req, job_id, self.limits.model, tokens, self.codec))

    async def _events(self, req: GenerationRequest, job_id: int, queue: asyncio.Queue, state: dict):
        model, codec = self.limits.model, self.codec
        if req.chat:
            yield _sse(chunk(req, job_id, model, None, codec, role=True))
        num_generated = 0
        while True:
            item = await queue.get()
            if item[0] == "token":
                num_generated += 1
                yield _sse(chunk(req, job_id, model, [item[1]], codec))
                continue
            state["ended"] = True
            _, status, reason = item
            if status != "finished":
                yield _sse(_ended_error(status, reason).body())
                return
            yield _sse(chunk(req, job_id, model, None, codec, finish_reason="length"))
            if req.include_usage:
                yield _sse(usage_chunk(req, job_id, model, num_generated))
            yield _sse("[DONE]")
            return


async def _collect(queue: asyncio.Queue) -> tuple[list[int], str, str]:
    tokens = []
    while True:
        item = await queue.get()
        if item[0] == "done":
            return tokens, item[1], item[2]
        tokens.append(item[1])


async def _disconnected(request: Request) -> None:
    """Returns when the client closes the connection (the body has been read already)."""
    while (await request.receive())["type"] != "http.disconnect":
        pass
