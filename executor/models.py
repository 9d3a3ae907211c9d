"""Build the transformers causal LM that the executor runs, and describe its KV layout.

Two sources, never a download:
- a catalog architecture (`profiles.models.ModelSpec`) turned into a transformers config and given random weights. The weights are seeded: they are drawn
  inside `torch.random.fork_rng`, so the same seed gives the same model and the caller's global
  torch RNG is left untouched;
- a local checkpoint directory (`from_pretrained(path, local_files_only=True)`).

Families: Llama (also Mistral, Qwen2 and other Llama-style configs, GQA included), OPT, GPT-2.
The model runs with attention implementation `executor.attention.ATTENTION_NAME`, so the model
code itself stays untouched (tensor parallelism will shard its weights from the outside too).
dtype: fp32 on CPU; bf16 on CUDA when the GPU supports it, else fp16.
"""

from __future__ import annotations

import copy
import os
from dataclasses import dataclass
from pathlib import Path

import torch
import transformers

from profiles.models import ModelSpec

FAMILIES = ("llama", "opt", "gpt2")
DTYPES = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}


class ModelLoadError(ValueError):
    """The model cannot be built or loaded as asked."""


@dataclass(frozen=True, slots=True)
class KVLayout:
    """Shape of one token's KV on one rank: `num_layers` x (K, V) x `num_kv_heads` x `head_dim`."""

    num_layers: int
    num_kv_heads: int
    head_dim: int
    dtype: torch.dtype

    def __post_init__(self) -> None:
        for name in ("num_layers", "num_kv_heads", "head_dim"):
            if getattr(self, name) <= 0:
                raise ValueError(f"KVLayout.{name} must be positive, got {getattr(self, name)}")

    @property
    def bytes_per_token(self) -> int:
        element_bytes = torch.empty(0, dtype=self.dtype).element_size()
        return self.num_layers * 2 * self.num_kv_heads * self.head_dim * element_bytes


def resolve_dtype(name: str, device: torch.device) -> torch.dtype:
    """`auto`: fp32 on CPU (exact token tests), bf16 (else fp16) on CUDA."""
    if name == "auto":
        if device.type == "cuda":
            return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
        return torch.float32
    try:
        return DTYPES[name]
    except KeyError:
        raise ModelLoadError(f"unknown dtype {name!r}; choose auto or one of {', '.join(DTYPES)}") from None


def config_from_spec(spec: ModelSpec) -> transformers.PretrainedConfig:
    """A transformers config for a catalog architecture (no special tokens: EOS is ignored)."""
    tokens = {"bos_token_id": None, "eos_token_id": None, "pad_token_id": None,
              "tie_word_embeddings": spec.tie_word_embeddings}
    if spec.family == "llama":
        return transformers.LlamaConfig(
            vocab_size=spec.vocab_size, hidden_size=spec.hidden_size,
            intermediate_size=spec.intermediate_size, num_hidden_layers=spec.num_layers,
            num_attention_heads=spec.num_heads, num_key_value_heads=spec.num_kv_heads,
            head_dim=spec.head_dim, max_position_embeddings=spec.max_position_embeddings, **tokens,
        )
    if spec.family == "opt":
        if spec.num_kv_heads != spec.num_heads or spec.head_dim * spec.num_heads != spec.hidden_size:
            raise ModelLoadError(f"model {spec.name}: OPT has no GQA and head_dim = hidden_size / num_heads")
        return transformers.OPTConfig(
            vocab_size=spec.vocab_size, hidden_size=spec.hidden_size, ffn_dim=spec.intermediate_size,
            num_hidden_layers=spec.num_layers, num_attention_heads=spec.num_heads,
            max_position_embeddings=spec.max_position_embeddings, word_embed_proj_dim=spec.hidden_size,
            **tokens,
        )
    if spec.family == "gpt2":
        if spec.num_kv_heads != spec.num_heads or spec.head_dim * spec.num_heads != spec.hidden_size:
            raise ModelLoadError(f"model {spec.name}: GPT-2 has no GQA and head_dim = hidden_size / num_heads")
        return transformers.GPT2Config(
            vocab_size=spec.vocab_size, n_embd=spec.hidden_size, n_layer=spec.num_layers,
            n_head=spec.num_heads, n_inner=spec.intermediate_size,
            n_positions=spec.max_position_embeddings, **tokens,
        )
    raise ModelLoadError(f"model {spec.name}: family {spec.family!r} is not supported; use one of {', '.join(FAMILIES)}")


def _check_supported(config: transformers.PretrainedConfig, where: str) -> None:
    # The pooled attention attends over the whole context; a sliding window would differ.
    window = getattr(config, "sliding_window", None)
    if window is not None and getattr(config, "use_sliding_window", True):
        raise ModelLoadError(f"{where}: sliding-window attention (window {window}) is not supported")
    if config.model_type == "gpt2" and getattr(config, "reorder_and_upcast_attn", False):
        raise ModelLoadError(f"{where}: GPT-2 reorder_and_upcast_attn is not supported")


def build_model(
    config: transformers.PretrainedConfig | None = None,
    *,
    checkpoint: str | os.PathLike | None = None,
    device: str | torch.device = "cpu",
    dtype: str | torch.dtype = "auto",
    seed: int = 0,
    attn_implementation: str | None = None,
) -> transformers.PreTrainedModel:
    """A causal LM in eval mode on `device`: random seeded weights from `config`, or `checkpoint`."""
    from executor.attention import ATTENTION_NAME, register

    register()
    device = torch.device(device)
    torch_dtype = dtype if isinstance(dtype, torch.dtype) else resolve_dtype(dtype, device)
    attn = attn_implementation or ATTENTION_NAME
    if (config is None) == (checkpoint is None):
        raise ModelLoadError("build_model: give exactly one of a config or a checkpoint path")
    if checkpoint is not None:
        path = Path(checkpoint)
        if not (path / "config.json").is_file():
            raise ModelLoadError(f"checkpoint {path}: no config.json there (only local paths are loaded)")
        _check_supported(transformers.AutoConfig.from_pretrained(path, local_files_only=True), str(path))
        model = transformers.AutoModelForCausalLM.from_pretrained(
            path, local_files_only=True, dtype=torch_dtype, attn_implementation=attn,
        )
        return model.to(device).eval()
    _check_supported(config, f"config {config.model_type}")
    config = copy.deepcopy(config)  # the model keeps (and mutates) its config; never share it
    devices = [device.index or 0] if device.type == "cuda" else []
    with torch.random.fork_rng(devices=devices), torch.device(device):
        torch.manual_seed(seed)
        model = transformers.AutoModelForCausalLM.from_config(config, dtype=torch_dtype, attn_implementation=attn)
    return model.eval()


def kv_layout(model: transformers.PreTrainedModel, tp_size: int = 1) -> KVLayout:
    """The per-rank KV shape of `model` (KV heads split over `tp_size` tensor-parallel ranks)."""
    cfg = model.config
    num_heads = cfg.num_attention_heads
    num_kv_heads = getattr(cfg, "num_key_value_heads", None) or num_heads
    head_dim = getattr(cfg, "head_dim", None) or cfg.hidden_size // num_heads
    if num_kv_heads % tp_size:
        raise ModelLoadError(f"{num_kv_heads} KV heads cannot be split over {tp_size} tensor-parallel ranks")
    return KVLayout(cfg.num_hidden_layers, num_kv_heads // tp_size, head_dim, model.dtype)


def max_context_tokens(model: transformers.PreTrainedModel) -> int:
    return int(model.config.max_position_embeddings)


_FAMILY_OF = {"llama": "llama", "mistral": "llama", "qwen2": "llama", "opt": "opt", "gpt2": "gpt2"}


def spec_of(model: transformers.PreTrainedModel, name: str) -> ModelSpec:
    """The catalog description of a built or loaded model (profiles record it)."""
    cfg = model.config
    family = _FAMILY_OF.get(cfg.model_type)
    if family is None:
        raise ModelLoadError(f"model {name}: model_type {cfg.model_type!r} is not one of {', '.join(_FAMILY_OF)}")
    layout = kv_layout(model)
    num_heads = cfg.num_attention_heads
    intermediate = getattr(cfg, "intermediate_size", None) or getattr(cfg, "ffn_dim", None) or getattr(cfg, "n_inner", None)
    dtype = next(k for k, v in DTYPES.items() if v == model.dtype)
    return ModelSpec(
        name=name, family=family, num_layers=layout.num_layers, hidden_size=cfg.hidden_size,
        num_heads=num_heads, num_kv_heads=layout.num_kv_heads, head_dim=layout.head_dim,
        intermediate_size=int(intermediate or 4 * cfg.hidden_size), vocab_size=cfg.vocab_size,
        max_position_embeddings=max_context_tokens(model), dtype=dtype,
        tie_word_embeddings=bool(getattr(cfg, "tie_word_embeddings", False)),
    )
