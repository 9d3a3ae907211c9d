"""The packed forward pass over the KV pool equals transformers' own generation, token for token."""

from __future__ import annotations

import pytest
import torch

from executor.attention import BATCH_KWARG, pooled_attention
from executor.blocks import KVStoreError
from executor.kv_store import KVStore
from executor.models import kv_layout
from executor.runner import ModelRunner, Segment
from policy import KVCapacity
from tests.executor.conftest import tiny

MODELS = ("tiny-llama", "tiny-opt", "tiny-gpt2")


def _prompts(seed: int, lengths, vocab: int) -> list[list[int]]:
    g = torch.Generator().manual_seed(seed)
    return [torch.randint(0, vocab, (n,), generator=g).tolist() for n in lengths]


@pytest.mark.parametrize("name", MODELS)
@pytest.mark.parametrize("block_size", [1, 4])
def test_staggered_mixed_batches_match_generate(name, block_size):
    """Jobs join at different iterations, so batches mix prefills with decodes of uneven contexts."""
    t = tiny(name)
    store = KVStore(kv_layout(t.model), KVCapacity(256 // block_size * 4, 0, block_size), 256)
    runner = ModelRunner(t.model, store)
    prompts = _prompts(1, (5, 9, 1, 13, 2), t.model.config.vocab_size)
    joins = {0: [0, 1], 2: [2], 3: [3, 4]}  # iteration -> jobs that prefill then
    num_new = 10
    tokens = [list(p) for p in prompts]
    active: list[int] = []
    for it in range(num_new + 3):
        segs = [Segment(j, tokens[j][-1:], len(tokens[j]) - 1) for j in active
                if len(tokens[j]) - len(prompts[j]) < num_new]
        segs += [Segment(j, tokens[j], 0) for j in joins.get(it, [])]
        for s in segs:
            store.grow(s.job_id, -(-(s.start_pos + len(s.token_ids)) // block_size))
        for s, tok in zip(segs, runner.step(segs), strict=True):
            tokens[s.job_id].append(tok)
        active += joins.get(it, [])
    for j, p in enumerate(prompts):
        assert tokens[j][len(p):] == t.generate(p, num_new), f"job {j}"


def test_recompute_prefill_of_prompt_plus_generated_matches():
    """A recomputed job prefills prompt + generated tokens and goes on exactly as before."""
    t = tiny("tiny-llama")
    store = KVStore(kv_layout(t.model), KVCapacity(64, 0, 4), 256)
    runner = ModelRunner(t.model, store)
    prompt = _prompts(2, (7,), 256)[0]
    expected = t.generate(prompt, 8)
    tokens = list(prompt)
    store.grow(0, 2)
    tokens += runner.step([Segment(0, tokens, 0)])
    for _ in range(3):
        store.grow(0, -(-len(tokens) // 4))
        tokens += runner.step([Segment(0, tokens[-1:], len(tokens) - 1)])
    store.drop(0)  # the policy dropped its KV
    store.grow(0, -(-len(tokens) // 4))
    tokens += runner.step([Segment(0, tokens, 0)])
    while len(tokens) < len(prompt) + 8:
        store.grow(0, -(-len(tokens) // 4))
        tokens += runner.step([Segment(0, tokens[-1:], len(tokens) - 1)])
    assert tokens[len(prompt):] == expected


@pytest.mark.parametrize("name", MODELS)
def test_chunked_prefills_beside_decodes_match_generate(name):
    """Prompts fed in chunks of up to 4 tokens (one of a single token, run as a decode), two
    chunks in one batch, beside other jobs' decodes: each chunk attends to its earlier chunks'
    KV in the pool (block size 4, so chunks end mid-block)."""
    t = tiny(name)
    store = KVStore(kv_layout(t.model), KVCapacity(64, 0, 4), 256)
    runner = ModelRunner(t.model, store)
    prompts = _prompts(3, (6, 13, 9), t.model.config.vocab_size)
    num_new = 6
    tokens = [list(p) for p in prompts]
    done = [0, 0, 0]  # prompt tokens fed so far
    while any(len(tokens[j]) - len(p) < num_new for j, p in enumerate(prompts)):
        segs = []
        for j, p in enumerate(prompts):
            if done[j] < len(p):  # job 1's chunks: 4, 4, 4, 1
                take = min(4, len(p) - done[j])
                segs.append(Segment(j, tokens[j][done[j]:done[j] + take], done[j]))
            elif len(tokens[j]) - len(p) < num_new:
                segs.append(Segment(j, tokens[j][-1:], len(tokens[j]) - 1))
        for s in segs:
            store.grow(s.job_id, -(-(s.start_pos + len(s.token_ids)) // 4))
        for s, tok in zip(segs, runner.step(segs), strict=True):
            j = s.job_id
            if done[j] < len(prompts[j]):
                done[j] += len(s.token_ids)
                if done[j] < len(prompts[j]):
                    continue  # a chunk with more to come: its token is not the next one
            tokens[j].append(tok)
    for j, p in enumerate(prompts):
        assert tokens[j][len(p):] == t.generate(p, num_new), f"job {j}"


def test_writing_past_the_jobs_blocks_is_an_error():
    t = tiny("tiny-llama")
    store = KVStore(kv_layout(t.model), KVCapacity(8, 0, 4), 32)
    runner = ModelRunner(t.model, store)
    store.grow(0, 1)
    with pytest.raises(KVStoreError, match="job 0: writes position 4 but holds 1 device blocks of 4 tokens"):
        runner.step([Segment(0, [1, 2, 3, 4, 5], 0)])


def test_segment_validation():
    with pytest.raises(ValueError, match="at least one token"):
        Segment(3, [], 0)
    with pytest.raises(ValueError, match="start_pos must be >= 0"):
        Segment(3, [1, 2], -1)


def test_pooled_attention_outside_the_executor_says_so():
    q = torch.zeros(1, 4, 2, 16)
    with pytest.raises(RuntimeError, match="runs only inside the executor"):
        pooled_attention(torch.nn.Module(), q, q, q, None)
    assert BATCH_KWARG == "fastserve_batch"


def test_empty_step_runs_nothing():
    t = tiny("tiny-opt")
    store = KVStore(kv_layout(t.model), KVCapacity(4, 0, 4), 16)
    assert ModelRunner(t.model, store).step([]) == []
