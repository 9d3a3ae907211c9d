"""Prompt token ids for trace requests, which carry lengths only.

Deterministic per (seed, request id) and independent of arrival order, policy or engine, so
that the in-process executor and a load generator sending the same trace to a server feed
the model identical prompts (and a greedy model then generates identical tokens).
"""

from __future__ import annotations

import numpy as np


def prompt_token_ids(request_id: int, num_tokens: int, vocab_size: int, seed: int) -> list[int]:
    rng = np.random.default_rng([seed, request_id])
    return rng.integers(0, vocab_size, num_tokens).tolist()
