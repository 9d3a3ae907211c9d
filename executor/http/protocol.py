"""The OpenAI wire format: request checks, response bodies and stream chunks (no I/O here).

Checked per request, each failure an OpenAI-style error body (`{"error": {"message", "type",
"param", "code"}}`) with status 400 (404 for another model's name): a prompt that is empty or
of the wrong type, token ids outside the vocabulary, `max_tokens` that is not a positive
integer, prompt plus `max_tokens` beyond the context limit (`context_length_exceeded`), or a
request the policy can never hold in KV. One prompt and one choice per request (`n` = 1).

Generation is greedy and EOS is not special (as in the executor): a request gets exactly
`max_tokens` tokens, finish reason "length". Sampling fields (`temperature`, `top_p`, `seed`,
...) are accepted and have no effect; `ignore_eos` (vLLM's extension) is accepted, and true
either way. Each choice carries the generated `token_ids` (vLLM's extension), so a client can
compare tokens whatever the text codec.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

DEFAULT_COMPLETION_MAX_TOKENS = 16  # OpenAI's default for /v1/completions


class ApiError(Exception):
    def __init__(self, message: str, param: str | None = None, code: str | None = None, status: int = 400,
                 kind: str = "invalid_request_error") -> None:
        super().__init__(message)
        self.message, self.param, self.code, self.status, self.kind = message, param, code, status, kind

    def body(self) -> dict:
        return {"error": {"message": self.message, "type": self.kind, "param": self.param, "code": self.code}}


@dataclass(frozen=True)
class Limits:
    model: str
    vocab_size: int
    max_seq_tokens: int
    reject_reason: Callable[[int, int], str | None]  # (prompt tokens, max tokens) -> why the policy refuses


@dataclass(frozen=True)
class GenerationRequest:
    chat: bool
    prompt_ids: list[int]
    max_tokens: int
    stream: bool
    include_usage: bool


def _int(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _prompt_ids(prompt, codec) -> list[int]:
    if isinstance(prompt, list) and len(prompt) == 1 and isinstance(prompt[0], str | list):
        prompt = prompt[0]  # a batch of one prompt
    if isinstance(prompt, str):
        if not prompt:
            raise ApiError("prompt is empty", "prompt")
        return codec.encode(prompt)
    if isinstance(prompt, list) and prompt and all(_int(t) for t in prompt):
        return list(prompt)
    if isinstance(prompt, list) and not prompt:
        raise ApiError("prompt is empty", "prompt")
    if isinstance(prompt, list) and all(isinstance(p, str | list) for p in prompt):
        raise ApiError(f"one prompt per request is supported, got {len(prompt)}", "prompt")
    raise ApiError("prompt must be a string, a list of token ids, or a list holding one of those", "prompt")


def _messages(messages) -> list[tuple[str, str]]:
    if not isinstance(messages, list) or not messages:
        raise ApiError("messages must be a non-empty list", "messages")
    out = []
    for i, m in enumerate(messages):
        if not isinstance(m, dict) or not isinstance(m.get("role"), str):
            raise ApiError(f"messages[{i}] must be an object with a string role", "messages")
        content = m.get("content")
        if isinstance(content, list):  # content parts: only text
            if not all(isinstance(p, dict) and p.get("type") == "text" and isinstance(p.get("text"), str)
                       for p in content):
                raise ApiError(f"messages[{i}].content: only text parts are supported", "messages")
            content = "".join(p["text"] for p in content)
        if not isinstance(content, str):
            raise ApiError(f"messages[{i}].content must be a string or a list of text parts", "messages")
        out.append((m["role"], content))
    if not any(content for _, content in out):
        raise ApiError("messages are empty", "messages")
    return out


def parse(body, chat: bool, limits: Limits, codec) -> GenerationRequest:
    """A checked request, or `ApiError`."""
    if not isinstance(body, dict):
        raise ApiError("the request body must be a JSON object")
    model = body.get("model")
    if model is not None and model != limits.model:
        raise ApiError(f"The model `{model}` does not exist; this server serves `{limits.model}`", "model",
                       "model_not_found", status=404)
    if body.get("n", 1) != 1:
        raise ApiError("only n = 1 is supported", "n")
    ids = codec.chat(_messages(body.get("messages"))) if chat else _prompt_ids(body.get("prompt"), codec)
    if not ids:
        raise ApiError("the prompt encodes to no tokens", "messages" if chat else "prompt")
    bad = [t for t in ids if not 0 <= t < limits.vocab_size]
    if bad:
        raise ApiError(f"token id {bad[0]} is outside the vocabulary [0, {limits.vocab_size})", "prompt")
    key = "max_completion_tokens" if chat and body.get("max_completion_tokens") is not None else "max_tokens"
    max_tokens = body.get(key)
    if max_tokens is None:
        max_tokens = limits.max_seq_tokens - len(ids) if chat else DEFAULT_COMPLETION_MAX_TOKENS
    elif not _int(max_tokens) or max_tokens < 1:
        raise ApiError(f"{key} must be a positive integer, got {max_tokens!r}", key)
    total = len(ids) + max_tokens
    if total > limits.max_seq_tokens or max_tokens < 1:
        raise ApiError(
            f"This model's maximum context length is {limits.max_seq_tokens} tokens. However, you requested "
            f"{total} tokens ({len(ids)} in the {'messages' if chat else 'prompt'}, {max_tokens} in the completion). "
            "Please reduce the length of the prompt or completion.",
            "messages" if chat else "prompt", "context_length_exceeded")
    reason = limits.reject_reason(len(ids), max_tokens)
    if reason is not None:
        raise ApiError(f"this server cannot hold the request: {reason}", key, "context_length_exceeded")
    stream = body.get("stream", False)
    if not isinstance(stream, bool):
        raise ApiError("stream must be a boolean", "stream")
    options = body.get("stream_options") or {}
    if not isinstance(options, dict):
        raise ApiError("stream_options must be an object", "stream_options")
    return GenerationRequest(chat, ids, max_tokens, stream, bool(options.get("include_usage", False)))


# -- responses ---------------------------------------------------------------------------------
def _head(req: GenerationRequest, job_id: int, model: str, chunk: bool) -> dict:
    kind = ("chat.completion" if req.chat else "text_completion") + (".chunk" if chunk and req.chat else "")
    return {"id": f"{'chatcmpl' if req.chat else 'cmpl'}-{job_id}", "object": kind, "created": int(time.time()),
            "model": model}


def usage(req: GenerationRequest, num_generated: int) -> dict:
    return {"prompt_tokens": len(req.prompt_ids), "completion_tokens": num_generated,
            "total_tokens": len(req.prompt_ids) + num_generated}


def response(req: GenerationRequest, job_id: int, model: str, tokens: list[int], codec) -> dict:
    text = codec.decode(tokens)
    choice = {"index": 0, "finish_reason": "length", "token_ids": tokens, "logprobs": None}
    choice.update({"message": {"role": "assistant", "content": text}} if req.chat else {"text": text})
    return {**_head(req, job_id, model, False), "choices": [choice], "usage": usage(req, len(tokens))}


def chunk(req: GenerationRequest, job_id: int, model: str, tokens: list[int] | None, codec,
          finish_reason: str | None = None, role: bool = False) -> dict:
    """One stream chunk: `tokens` (one per chunk while generating), the role-only first chat
    chunk, or the final chunk with `finish_reason` and no tokens."""
    ids = tokens or []
    if req.chat:
        delta = {"role": "assistant", "content": ""} if role else ({"content": codec.decode(ids)} if ids else {})
        choice = {"index": 0, "delta": delta, "finish_reason": finish_reason, "logprobs": None}
    else:
        choice = {"index": 0, "text": codec.decode(ids), "finish_reason": finish_reason, "logprobs": None}
    choice["token_ids"] = ids
    body = {**_head(req, job_id, model, True), "choices": [choice]}
    if req.include_usage:
        body["usage"] = None
    return body


def usage_chunk(req: GenerationRequest, job_id: int, model: str, num_generated: int) -> dict:
    return {**_head(req, job_id, model, True), "choices": [], "usage": usage(req, num_generated)}
