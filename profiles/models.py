"""Model catalog: the architecture facts that the roofline and the KV accounting need.

One `ModelSpec` per model, from the published configs (Hugging Face `config.json` of each
checkpoint; OPT and GPT-3 from their papers). Invariants, checked in `__post_init__`:
`num_heads * head_dim == hidden_size`, `num_kv_heads` divides `num_heads` (grouped-query
attention), every size positive, `dtype` one of `DTYPE_BYTES`.

`tiny-llama` and `tiny-opt` are not real checkpoints: the executor builds them with random
weights on CPU for tests, so they are small and fp32.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Family = Literal["llama", "opt", "gpt2"]
FAMILIES = ("llama", "opt", "gpt2")
DTYPE_BYTES = {"float16": 2, "bfloat16": 2, "float32": 4}


class UnknownModelError(ValueError):
    pass


@dataclass(frozen=True)
class ModelSpec:
    name: str
    family: Family  # llama: RMSNorm, RoPE, gated SiLU MLP, no biases; opt/gpt2: LayerNorm, learned positions, biases
    num_layers: int
    hidden_size: int
    num_heads: int
    num_kv_heads: int
    head_dim: int
    intermediate_size: int
    vocab_size: int
    max_position_embeddings: int
    dtype: str = "float16"
    tie_word_embeddings: bool = False  # OPT and GPT share the LM head with the token embedding

    def __post_init__(self) -> None:
        if self.family not in FAMILIES:
            raise ValueError(f"model {self.name}: family must be one of {FAMILIES}, got {self.family!r}")
        if self.dtype not in DTYPE_BYTES:
            raise ValueError(f"model {self.name}: dtype must be one of {sorted(DTYPE_BYTES)}, got {self.dtype!r}")
        for field in ("num_layers", "hidden_size", "num_heads", "num_kv_heads", "head_dim",
                      "intermediate_size", "vocab_size", "max_position_embeddings"):
            value = getattr(self, field)
            if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
                raise ValueError(f"model {self.name}: {field} must be a positive integer, got {value!r}")
        if self.num_heads * self.head_dim != self.hidden_size:
            raise ValueError(f"model {self.name}: num_heads * head_dim = {self.num_heads * self.head_dim} "
                             f"!= hidden_size {self.hidden_size}")
        if self.num_heads % self.num_kv_heads:
            raise ValueError(f"model {self.name}: num_kv_heads {self.num_kv_heads} must divide num_heads {self.num_heads}")

    @property
    def dtype_bytes(self) -> int:
        return DTYPE_BYTES[self.dtype]

    @property
    def gated_mlp(self) -> bool:
        """Llama's MLP has gate and up projections (3 matrices); OPT and GPT have 2."""
        return self.family == "llama"

    @property
    def has_biases(self) -> bool:
        return self.family != "llama"

    @property
    def kv_bytes_per_token(self) -> int:
        """K and V of every layer for one token: 2 * layers * kv_heads * head_dim * dtype bytes."""
        return 2 * self.num_layers * self.num_kv_heads * self.head_dim * self.dtype_bytes

    @property
    def layer_params(self) -> int:
        """Parameters of one decoder layer (projections, MLP, norms, biases)."""
        h, hd = self.hidden_size, self.head_dim
        qkv_out = (self.num_heads + 2 * self.num_kv_heads) * hd
        mlp_mats = 3 if self.gated_mlp else 2
        params = h * qkv_out + self.num_heads * hd * h + mlp_mats * h * self.intermediate_size
        if self.has_biases:  # linear biases plus LayerNorm weight and bias (x2 norms)
            params += qkv_out + h + self.intermediate_size + h + 4 * h
        else:  # two RMSNorm weights
            params += 2 * h
        return params

    @property
    def embedding_params(self) -> int:
        """Token embedding, learned positions (opt/gpt2), final norm and an untied LM head."""
        params = self.vocab_size * self.hidden_size
        if self.family != "llama":
            # OPT's learned positions start at row 2 (its padding offset): two more rows.
            rows = self.max_position_embeddings + (2 if self.family == "opt" else 0)
            params += rows * self.hidden_size + 2 * self.hidden_size
        else:
            params += self.hidden_size
        if not self.tie_word_embeddings:
            params += self.vocab_size * self.hidden_size
        return params

    @property
    def num_params(self) -> int:
        return self.num_layers * self.layer_params + self.embedding_params

    def to_dict(self) -> dict:
        return {f: getattr(self, f) for f in self.__dataclass_fields__}


def _m(name, family, layers, hidden, heads, kv_heads, inter, vocab, max_pos, dtype="float16", tie=False):
    return ModelSpec(name, family, layers, hidden, heads, kv_heads, hidden // heads, inter, vocab,
                     max_pos, dtype, tie)


# Sources: Hugging Face config.json of facebook/opt-{13b,66b}, meta-llama/Llama-2-{7b,13b,70b}-hf,
# meta-llama/Meta-Llama-3-{8B,70B}; OPT-175B from Zhang et al. 2022 (Table 1); GPT-3 175B from
# Brown et al. 2020 (Table 2.1: 96 layers, d_model 12288, 96 heads, context 2048; GPT-2 BPE vocab).
MODELS: dict[str, ModelSpec] = {m.name: m for m in (
    _m("opt-13b", "opt", 40, 5120, 40, 40, 20480, 50272, 2048, tie=True),
    _m("opt-66b", "opt", 64, 9216, 72, 72, 36864, 50272, 2048, tie=True),
    _m("opt-175b", "opt", 96, 12288, 96, 96, 49152, 50272, 2048, tie=True),
    _m("gpt3-175b", "gpt2", 96, 12288, 96, 96, 49152, 50257, 2048, tie=True),
    _m("llama-2-7b", "llama", 32, 4096, 32, 32, 11008, 32000, 4096),
    _m("llama-2-13b", "llama", 40, 5120, 40, 40, 13824, 32000, 4096),
    _m("llama-2-70b", "llama", 80, 8192, 64, 8, 28672, 32000, 4096),
    _m("llama-3-8b", "llama", 32, 4096, 32, 8, 14336, 128256, 8192),
    _m("llama-3-70b", "llama", 80, 8192, 64, 8, 28672, 128256, 8192),
    # CPU test models (random weights): 2 layers, hidden 64, head_dim 16.
    _m("tiny-llama", "llama", 2, 64, 4, 2, 128, 256, 512, dtype="float32"),
    _m("tiny-opt", "opt", 2, 64, 4, 4, 128, 256, 512, dtype="float32", tie=True),
)}


def get_model(name: str) -> ModelSpec:
    try:
        return MODELS[name]
    except KeyError:
        raise UnknownModelError(f"unknown model {name!r}; known models: {', '.join(sorted(MODELS))}") from None
