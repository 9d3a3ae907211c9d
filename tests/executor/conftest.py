"""Shared fixtures: tiny models (random seeded weights, fp32 CPU), their reference generations.

Torch runs single-threaded here: the models are tiny, and spinning OpenMP threads slow down by
orders of magnitude when other test processes share the two cores.
"""

from __future__ import annotations

import pytest
import torch
import transformers

from executor.engine import prompt_token_ids
from executor.models import build_model, config_from_spec
from profiles.models import get_model

SEED = 3


@pytest.fixture(scope="session", autouse=True)
def single_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def gpt2_config() -> transformers.GPT2Config:
    return transformers.GPT2Config(vocab_size=256, n_embd=64, n_layer=2, n_head=4, n_positions=512,
                                   bos_token_id=None, eos_token_id=None, pad_token_id=None)


def tiny_config(name: str):
    return gpt2_config() if name == "tiny-gpt2" else config_from_spec(get_model(name))


class Tiny:
    """A pooled-attention model and an identical plain-sdpa one for `generate` references."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.model = build_model(tiny_config(name), seed=SEED)
        self.reference = build_model(tiny_config(name), seed=SEED, attn_implementation="sdpa")
        self._cache: dict[tuple, list[int]] = {}

    def generate(self, prompt: list[int], num_tokens: int) -> list[int]:
        """transformers' own greedy generation, alone, EOS ignored (what every run must equal)."""
        key = (tuple(prompt), num_tokens)
        if key not in self._cache:
            ids = torch.tensor([prompt])
            out = self.reference.generate(
                ids, attention_mask=torch.ones_like(ids), max_new_tokens=num_tokens, do_sample=False,
                eos_token_id=None, pad_token_id=0,
            )
            self._cache[key] = out[0, len(prompt):].tolist()
        return self._cache[key]

    def expected(self, jobs, seed: int = 0) -> dict[int, list[int]]:
        vocab = self.model.config.vocab_size
        return {j.id: self.generate(prompt_token_ids(j.id, j.prompt_tokens, vocab, seed), j.output_tokens) for j in jobs}


_TINY: dict[str, Tiny] = {}


def tiny(name: str) -> Tiny:
    if name not in _TINY:
        _TINY[name] = Tiny(name)
    return _TINY[name]
