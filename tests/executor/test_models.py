"""Model building: seeded random weights, local checkpoints only, supported families, dtypes."""

from __future__ import annotations

import pytest
import torch
import transformers

from executor.kv_store import KVStore
from executor.models import (
    KVLayout,
    ModelLoadError,
    build_model,
    config_from_spec,
    kv_layout,
    resolve_dtype,
    spec_of,
)
from executor.runner import ModelRunner, Segment
from policy import KVCapacity
from profiles.models import ModelSpec, get_model
from tests.executor.conftest import gpt2_config, tiny


def test_same_seed_same_weights_and_the_global_rng_is_untouched():
    torch.manual_seed(123)
    before = torch.random.get_rng_state()
    a = build_model(config_from_spec(get_model("tiny-llama")), seed=5)
    assert torch.equal(torch.random.get_rng_state(), before)
    b = build_model(config_from_spec(get_model("tiny-llama")), seed=5)
    c = build_model(config_from_spec(get_model("tiny-llama")), seed=6)
    sa, sb, sc = a.state_dict(), b.state_dict(), c.state_dict()
    assert all(torch.equal(sa[k], sb[k]) for k in sa)
    assert not all(torch.equal(sa[k], sc[k]) for k in sa)


@pytest.mark.parametrize("name", ["tiny-llama", "tiny-opt"])
def test_catalog_models_round_trip_to_their_spec(name):
    model = tiny(name).model
    assert spec_of(model, name) == get_model(name)
    assert model.config._attn_implementation == "fastserve_paged" and model.dtype == torch.float32


def test_gqa_layout_and_gpt2_spec():
    assert kv_layout(tiny("tiny-llama").model) == KVLayout(2, 2, 16, torch.float32)
    with pytest.raises(ModelLoadError, match="2 KV heads cannot be split over 4 tensor-parallel ranks"):
        kv_layout(tiny("tiny-llama").model, tp_size=4)
    spec = spec_of(tiny("tiny-gpt2").model, "g")
    assert (spec.family, spec.num_heads, spec.num_kv_heads, spec.head_dim, spec.intermediate_size) == ("gpt2", 4, 4, 16, 256)


def test_local_checkpoint_gives_the_same_tokens(tmp_path):
    t = tiny("tiny-opt")
    t.reference.save_pretrained(tmp_path / "ckpt")
    loaded = build_model(checkpoint=tmp_path / "ckpt")
    assert loaded.config._attn_implementation == "fastserve_paged"
    store = KVStore(kv_layout(loaded), KVCapacity(16, 0, 8), 64)
    runner = ModelRunner(loaded, store)
    prompt = [5, 17, 99, 3, 250, 8]
    tokens = list(prompt)
    for _ in range(6):
        store.grow(0, -(-len(tokens) // 8))
        seg = Segment(0, tokens, 0) if len(tokens) == len(prompt) else Segment(0, tokens[-1:], len(tokens) - 1)
        tokens += runner.step([seg])
    assert tokens[len(prompt):] == t.generate(prompt, 6)


def test_checkpoint_must_be_a_local_directory(tmp_path):
    with pytest.raises(ModelLoadError, match="no config.json there"):
        build_model(checkpoint=tmp_path)
    with pytest.raises(ModelLoadError, match="exactly one of a config or a checkpoint"):
        build_model()


def test_unsupported_configs_are_refused():
    mistral = transformers.MistralConfig(vocab_size=64, hidden_size=32, intermediate_size=64, num_hidden_layers=1,
                                         num_attention_heads=2, num_key_value_heads=1, sliding_window=16)
    with pytest.raises(ModelLoadError, match="sliding-window attention"):
        build_model(mistral)
    upcast = gpt2_config()
    upcast.reorder_and_upcast_attn = True
    with pytest.raises(ModelLoadError, match="reorder_and_upcast_attn"):
        build_model(upcast)
    bad = ModelSpec("odd", "opt", 1, 64, 4, 2, 16, 128, 256, 512)
    with pytest.raises(ModelLoadError, match="OPT has no GQA"):
        config_from_spec(bad)


def test_dtype_choice():
    assert resolve_dtype("auto", torch.device("cpu")) is torch.float32
    assert resolve_dtype("bfloat16", torch.device("cpu")) is torch.bfloat16
    with pytest.raises(ModelLoadError, match="unknown dtype 'fp8'"):
        resolve_dtype("fp8", torch.device("cpu"))
    with pytest.raises(ValueError, match="KVLayout.head_dim must be positive"):
        KVLayout(1, 1, 0, torch.float32)
