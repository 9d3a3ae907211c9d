"""A toy cost model with whole-microsecond costs, so expected timelines are exact integers.

iteration = 1000 us + 10 us per prefill token + 1 us per decode context token + 100 us per job
            + 1 us per token of KV a prefill chunk attends to beyond its own (chunked prefill)
swap      = 5 us per token (either direction)
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass
class ToyCost:
    base_us: int = 1000
    prefill_us_per_token: int = 10
    decode_us_per_token: int = 1
    per_job_us: int = 100
    swap_us_per_token: int = 5
    kv_bytes_per_token: int = 1024
    device_kv_tokens: int = 10_000
    host_kv_tokens: int = 10_000
    send_recv_us: int = 50

    def iteration_us(self, prefill, decode, prefill_context=()) -> int:
        return (self.base_us + self.prefill_us_per_token * sum(prefill) + self.decode_us_per_token * sum(decode)
                + self.per_job_us * (len(prefill) + len(decode)) + self.decode_us_per_token * sum(prefill_context))

    def iteration_s(self, prefill_tokens, decode_context_tokens, prefill_context_tokens=()) -> float:
        return self.iteration_us(prefill_tokens, decode_context_tokens, prefill_context_tokens) / 1e6

    def decode_iterations_s(self, decode_context_tokens, num_iterations):
        ctx = sum(decode_context_tokens)
        b = len(decode_context_tokens)
        us = self.base_us + self.per_job_us * b + self.decode_us_per_token * (ctx + b * np.arange(num_iterations))
        return us / 1e6

    def prefill_s(self, prompt_tokens: int) -> float:
        return self.iteration_us([prompt_tokens], []) / 1e6

    def swap_s(self, tokens: int, direction: str) -> float:
        return self.swap_us_per_token * tokens / 1e6

    def min_iteration_s(self) -> float:
        return self.iteration_us([], [1]) / 1e6

    def pp_send_recv_s(self, num_tokens: int) -> float:
        return self.send_recv_us / 1e6


@dataclass
class ListTrace:
    arrival_s: np.ndarray
    prompt_tokens: np.ndarray
    output_tokens: np.ndarray
    request_id: np.ndarray

    @classmethod
    def of(cls, rows):
        """rows: (arrival_s, prompt_tokens, output_tokens) tuples."""
        a, p, o = zip(*rows, strict=True) if rows else ((), (), ())
        return cls(np.array(a, float), np.array(p, np.int64), np.array(o, np.int64), np.arange(len(rows)))


def jobs_of(result) -> dict[int, dict]:
    log = result.log
    out = {}
    for i in range(len(log)):
        rid = log.ints["request_id"][i]
        out[rid] = {
            "status": log.status[i], "first_token_s": log.floats["first_token_s"][i],
            "finish_s": log.floats["finish_s"][i], **{k: log.ints[k][i] for k in (
                "generated_tokens", "num_preemptions", "num_swaps", "num_recomputes", "replica")},
        }
    return out


