"""Where the pieces of each supported transformers family sit, for sharding from the outside.

Tensor and pipeline parallelism never edit model code (gpt-fast's rule): they swap weights and
submodules of an unmodified transformers model. This table says where those submodules are:

- `base`: the decoder stack under the causal LM (`model` for Llama, `model.decoder` for OPT);
  calling it returns the last hidden state, and it accepts `inputs_embeds` in place of token ids;
- `layers`: the decoder layers' ModuleList on the base;
- `before_layers`: modules the base applies on top of the token embeddings before the first
  layer (OPT's learned positions and its optional input projection), to be neutralised on
  stages that receive hidden states instead of token ids;
- `after_layers`: modules applied after the last layer (final norm, OPT's output projection);
- `tp_plan`: column- or row-parallel linear layers, in transformers' own plan vocabulary
  (module patterns under `base`, "colwise" / "rowwise"). Llama-style configs ship such a plan
  (`config.base_model_tp_plan`) and it is used as is; OPT ships none, so this table holds one;
- `head_attrs`: attributes of the attention module that count its heads (OPT reshapes with
  `self.num_heads`; Llama uses -1 and needs none).
GPT-2 (fused Conv1D qkv) is not supported for tp > 1 or pp > 1: `family_parts` says so.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from executor.models import ModelLoadError


@dataclass(frozen=True)
class FamilyParts:
    base: str
    layers: str
    embed: str
    before_layers: tuple[str, ...]
    after_layers: tuple[str, ...]
    tp_plan: dict[str, str] | None
    head_attrs: tuple[str, ...]


_OPT_PLAN = {
    "layers.*.self_attn.q_proj": "colwise",
    "layers.*.self_attn.k_proj": "colwise",
    "layers.*.self_attn.v_proj": "colwise",
    "layers.*.self_attn.out_proj": "rowwise",
    "layers.*.fc1": "colwise",
    "layers.*.fc2": "rowwise",
}

_PARTS = {
    "llama": FamilyParts("model", "layers", "embed_tokens", (), ("norm",), None, ()),
    "opt": FamilyParts("model.decoder", "layers", "embed_tokens", ("embed_positions", "project_in"),
                       ("final_layer_norm", "project_out"), _OPT_PLAN, ("num_heads",)),
}
_FAMILY_OF = {"llama": "llama", "mistral": "llama", "qwen2": "llama", "opt": "opt"}


def family_parts(config) -> FamilyParts:
    """The parts table of a transformers config's family, or a one-line `ModelLoadError`."""
    model_type = config.model_type
    family = _FAMILY_OF.get(model_type)
    if family is None:
        raise ModelLoadError(
            f"tensor/pipeline parallelism supports the llama (llama, mistral, qwen2) and opt families, "
            f"not model_type {model_type!r}"
        )
    return _PARTS[family]


def submodule(root: torch.nn.Module, path: str) -> torch.nn.Module | None:
    for name in path.split("."):
        root = getattr(root, name)
    return root


def set_submodule(root: torch.nn.Module, path: str, module: torch.nn.Module | None) -> None:
    *parents, name = path.split(".")
    for p in parents:
        root = getattr(root, p)
    setattr(root, name, module)
