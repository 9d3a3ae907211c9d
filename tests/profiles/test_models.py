import pytest

from profiles.models import DTYPE_BYTES, MODELS, ModelSpec, UnknownModelError, get_model

REQUIRED = {"opt-13b", "opt-66b", "opt-175b", "gpt3-175b", "llama-2-7b", "llama-2-13b", "llama-2-70b",
            "llama-3-8b", "llama-3-70b", "tiny-llama", "tiny-opt"}


def test_catalog_has_every_required_model():
    assert set(MODELS) >= REQUIRED


def test_unknown_model_error_lists_known_names():
    with pytest.raises(UnknownModelError, match=r"unknown model 'gpt-5'; known models: gpt3-175b, llama-2-13b, "):
        get_model("gpt-5")


@pytest.mark.parametrize(("name", "kv_bytes"), [
    ("opt-13b", 2 * 40 * 40 * 128 * 2),  # 819,200: 0.78 MiB per token
    ("llama-2-70b", 2 * 80 * 8 * 128 * 2),  # GQA: 8 KV heads
    ("llama-3-8b", 2 * 32 * 8 * 128 * 2),
    ("tiny-llama", 2 * 2 * 2 * 16 * 4),  # fp32
    ("tiny-opt", 2 * 2 * 4 * 16 * 4),
])
def test_kv_bytes_per_token(name, kv_bytes):
    assert get_model(name).kv_bytes_per_token == kv_bytes


@pytest.mark.parametrize(("name", "billions"), [
    ("opt-13b", 12.85), ("opt-66b", 65.7), ("opt-175b", 174.6), ("llama-2-7b", 6.74),
    ("llama-2-13b", 13.0), ("llama-2-70b", 69.0), ("llama-3-8b", 8.03), ("llama-3-70b", 70.6),
])
def test_parameter_counts_match_published_sizes(name, billions):
    assert get_model(name).num_params / 1e9 == pytest.approx(billions, rel=0.01)


def _transformers_count(spec: ModelSpec) -> int:
    """Parameters of the transformers model this spec describes, built on the meta device."""
    torch = pytest.importorskip("torch")
    import transformers as tf

    if spec.family == "llama":
        cls, cfg = tf.LlamaForCausalLM, tf.LlamaConfig(
            vocab_size=spec.vocab_size, hidden_size=spec.hidden_size, intermediate_size=spec.intermediate_size,
            num_hidden_layers=spec.num_layers, num_attention_heads=spec.num_heads,
            num_key_value_heads=spec.num_kv_heads, max_position_embeddings=spec.max_position_embeddings,
            tie_word_embeddings=spec.tie_word_embeddings)
    elif spec.family == "opt":
        cls, cfg = tf.OPTForCausalLM, tf.OPTConfig(
            vocab_size=spec.vocab_size, hidden_size=spec.hidden_size, ffn_dim=spec.intermediate_size,
            num_hidden_layers=spec.num_layers, num_attention_heads=spec.num_heads,
            max_position_embeddings=spec.max_position_embeddings, word_embed_proj_dim=spec.hidden_size,
            tie_word_embeddings=spec.tie_word_embeddings)
    else:
        cls, cfg = tf.GPT2LMHeadModel, tf.GPT2Config(
            vocab_size=spec.vocab_size, n_embd=spec.hidden_size, n_inner=spec.intermediate_size,
            n_layer=spec.num_layers, n_head=spec.num_heads, n_positions=spec.max_position_embeddings,
            tie_word_embeddings=spec.tie_word_embeddings)
    with torch.device("meta"):  # shapes only: a 175B model costs no memory
        return sum(p.numel() for p in cls(cfg).parameters())


@pytest.mark.parametrize("name", ["opt-13b", "tiny-opt", "llama-2-7b", "llama-3-8b", "gpt3-175b", "tiny-llama"])
def test_parameter_counts_equal_the_transformers_models(name):
    assert get_model(name).num_params == _transformers_count(get_model(name))


def test_tiny_models_are_small_fp32():
    llama, opt = get_model("tiny-llama"), get_model("tiny-opt")
    assert (llama.family, llama.num_layers, llama.hidden_size, llama.num_heads, llama.num_kv_heads,
            llama.intermediate_size, llama.vocab_size, llama.max_position_embeddings, llama.dtype) == \
        ("llama", 2, 64, 4, 2, 128, 256, 512, "float32")
    assert (opt.family, opt.num_layers, opt.hidden_size, opt.num_heads, opt.num_kv_heads,
            opt.intermediate_size, opt.vocab_size, opt.max_position_embeddings, opt.dtype) == \
        ("opt", 2, 64, 4, 4, 128, 256, 512, "float32")


@pytest.mark.parametrize(("change", "message"), [
    ({"family": "bert"}, "family must be one of"),
    ({"dtype": "int8"}, "dtype must be one of"),
    ({"num_layers": 0}, "num_layers must be a positive integer, got 0"),
    ({"head_dim": 8}, "num_heads \\* head_dim = 32 != hidden_size 64"),
    ({"num_kv_heads": 3}, "num_kv_heads 3 must divide num_heads 4"),
])
def test_spec_validation(change, message):
    fields = get_model("tiny-llama").to_dict() | change
    with pytest.raises(ValueError, match=message):
        ModelSpec(**fields)


def test_dtype_bytes():
    assert DTYPE_BYTES == {"float16": 2, "bfloat16": 2, "float32": 4}
