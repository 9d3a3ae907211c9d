"""Tensor and pipeline parallelism in one process: the topology, the Megatron split, the stages.

- The command tree reaches every rank exactly once, and stages partition the layers.
- Megatron algebra: with a one-process group (all-reduce = identity), the tp shards of an
  attention block or MLP sum to the unsharded output (plus one extra bias per extra shard, since
  each shard adds the bias once after its all-reduce).
- Stages chained by hand (stage 0's hidden state fed to stage 1, each with its own KV store of
  its own layers) give the single-process runner's tokens, prefill and decode, for Llama (rotary)
  and OPT (learned positions, added on stage 0 only).
"""

from __future__ import annotations

import datetime

import pytest
import torch
import torch.distributed as dist
from hypothesis import given
from hypothesis import strategies as st

from executor.distributed.pp import StageModel
from executor.distributed.rank import RankModel, StageRunner
from executor.distributed.topology import Topology, layer_range
from executor.distributed.tp import apply_tp, tp_plan
from executor.kv_store import KVStore
from executor.models import KVLayout, ModelLoadError, build_model, kv_layout
from executor.runner import ModelRunner, Segment
from policy import KVCapacity
from tests.executor.conftest import SEED, gpt2_config, tiny_config


@given(st.integers(1, 4), st.integers(1, 4))
def test_every_rank_gets_the_command_stream_once(tp, pp):
    seen = {0: 1}
    frontier = [0]
    while frontier:
        rank = frontier.pop()
        for child in Topology(tp, pp, rank).downstream:
            assert Topology(tp, pp, child).upstream == rank
            seen[child] = seen.get(child, 0) + 1
            frontier.append(child)
    assert seen == dict.fromkeys(range(tp * pp), 1)
    last = Topology(tp, pp, tp * pp - 1)
    assert last.is_last_stage and last.token_sender == (pp - 1) * tp


@given(st.integers(1, 40), st.data())
def test_stages_partition_the_layers(num_layers, data):
    pp = data.draw(st.integers(1, num_layers))
    ranges = [layer_range(num_layers, pp, s) for s in range(pp)]
    assert [i for r in ranges for i in r] == list(range(num_layers))
    assert max(map(len, ranges)) - min(map(len, ranges)) <= 1


def test_bad_parallelism_is_refused_with_one_line():
    with pytest.raises(ValueError, match="pp must be in 1..2"):
        layer_range(2, 3, 0)
    model = build_model(tiny_config("tiny-llama"), seed=SEED)
    with pytest.raises(ModelLoadError, match="2 KV heads cannot be split over 4"):
        kv_layout(model, 4)
    with pytest.raises(ModelLoadError, match="supports the llama .* and opt families, not model_type 'gpt2'"):
        tp_plan(gpt2_config())


@pytest.fixture()
def one_process_group():
    store = dist.HashStore()
    dist.init_process_group("gloo", store=store, rank=0, world_size=1, timeout=datetime.timedelta(seconds=10))
    yield dist.group.WORLD
    dist.destroy_process_group()


def _models(name: str, tp: int, group):
    full = build_model(tiny_config(name), seed=SEED, attn_implementation="sdpa")
    shards = []
    for rank in range(tp):
        m = build_model(tiny_config(name), seed=SEED, attn_implementation="sdpa")
        apply_tp(m, rank, tp, group)
        shards.append(m)
    return full, shards


@pytest.mark.parametrize("name", ["tiny-llama", "tiny-opt"])
def test_tensor_parallel_shards_sum_to_the_full_block(name, one_process_group):
    full, shards = _models(name, 2, one_process_group)
    torch.manual_seed(0)
    x = torch.randn(1, 7, 64)
    positions = torch.arange(7)[None]
    with torch.inference_mode():
        for i in range(2):
            layers = [(m.model.layers if name == "tiny-llama" else m.model.decoder.layers)[i] for m in (full, *shards)]
            if name == "tiny-llama":
                rope = full.model.rotary_emb(x, positions)
                attn = [lay.self_attn(x, position_embeddings=rope, attention_mask=None)[0] for lay in layers]
                mlp = [lay.mlp(x) for lay in layers]
                bias_attn = bias_mlp = 0.0
            else:
                attn = [lay.self_attn(x, attention_mask=None)[0] for lay in layers]
                mlp = [lay.fc2(torch.relu(lay.fc1(x))) for lay in layers]
                bias_attn, bias_mlp = layers[0].self_attn.out_proj.bias, layers[0].fc2.bias
            torch.testing.assert_close(attn[1] + attn[2] - bias_attn, attn[0], atol=1e-5, rtol=1e-4)
            torch.testing.assert_close(mlp[1] + mlp[2] - bias_mlp, mlp[0], atol=1e-5, rtol=1e-4)
    # each rank keeps half the heads (GQA: 2 query heads with their 1 KV head) and half the MLP
    q = shards[1].model.layers[0].self_attn.q_proj if name == "tiny-llama" else shards[1].model.decoder.layers[0].self_attn.q_proj
    assert q.weight.shape == (32, 64)
    assert kv_layout(shards[1], 2).num_kv_heads == (1 if name == "tiny-llama" else 2)


def _store(layout: KVLayout) -> KVStore:
    return KVStore(layout, KVCapacity(32, 0, 4), 128)


@pytest.mark.parametrize("name", ["tiny-llama", "tiny-opt"])
def test_chained_stages_generate_the_single_process_tokens(name):
    full = build_model(tiny_config(name), seed=SEED)
    reference = ModelRunner(full, _store(kv_layout(full)))
    stages = []
    for s in range(2):
        model = build_model(tiny_config(name), seed=SEED)
        stage = StageModel(model, s, 2)
        whole = kv_layout(model)
        layout = KVLayout(stage.num_layers, whole.num_kv_heads, whole.head_dim, whole.dtype)
        stages.append(StageRunner(RankModel(model, stage, layout, whole), _store(layout)))
    assert stages[0].stage.model.lm_head is None and stages[1].stage.base.embed_tokens is None
    assert [r.store.layout.num_layers for r in stages] == [1, 1]  # each stage's store: its own layer
    prompts = {0: [5, 17, 99, 3, 250, 8, 61, 12, 7], 1: [44, 2, 180]}
    tokens = {j: list(p) for j, p in prompts.items()}
    for step in range(6):
        segments = []
        for j, seq in tokens.items():
            for runner in (reference, *stages):
                if runner.store.num_device_blocks(j) < -(-len(seq) // 4):
                    runner.store.grow(j, -(-len(seq) // 4))
            segments.append(Segment(j, seq, 0) if step == 0 else Segment(j, seq[-1:], len(seq) - 1))
        expected = reference.step(segments)
        hidden = stages[0].forward(segments, None)
        assert hidden.shape == (1, sum(len(s.token_ids) for s in segments), 64)
        got = stages[1].sample(segments, stages[1].forward(segments, hidden))
        assert got == expected, f"step {step}"
        for seq, token in zip(tokens.values(), got, strict=True):
            seq.append(token)
