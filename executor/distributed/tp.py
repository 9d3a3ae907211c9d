"""Megatron-style tensor parallelism applied to an unmodified transformers model (`apply_tp`).

Each rank keeps 1/tp of every attention block and MLP (Shoeybi et al. 2019, section 3):
- column-parallel linears (q, k, v projections; MLP up/gate or fc1) keep a contiguous slice of
  output rows: rank j holds heads [j*H/tp, (j+1)*H/tp) and KV heads [j*Hkv/tp, ...). With GQA
  the query heads of one KV head stay together on one rank, because both splits are contiguous
  and the group size divides evenly;
- row-parallel linears (attention output, MLP down or fc2) keep the matching input columns; a
  forward hook sums the partial products over the tp group (one all-reduce per block), then
  adds the bias once;
- everything else (embeddings, norms, rotary tables, LM head) is replicated, so after each
  all-reduce every rank holds the same hidden state, and the pooled attention
  (`executor.attention`) sees only this rank's heads: `key.shape[1]` is the local KV head
  count, which is what this rank's `KVStore` holds (`kv_layout(model, tp)`).
Which linears are column or row parallel comes from transformers' own plan where the config
ships one (`base_model_tp_plan`, Llama-style models), else from `executor.distributed.parts`.
Only the sharding mechanics are ours: transformers' runtime TP (DTensor, `tp_plan="auto"`)
loads shards while reading a checkpoint, while the executor builds seeded random weights, and it
assumes the tp group is the whole world, which pipeline stages break.

The model's config is left as it was (global head counts); `kv_layout(model, tp)` divides.
"""

from __future__ import annotations

import re

import torch
import torch.distributed as dist

from executor.distributed.comm import Health
from executor.distributed.parts import family_parts, submodule
from executor.models import ModelLoadError

STYLES = ("colwise", "rowwise")


def tp_plan(config) -> dict[str, str]:
    """Module pattern (under the base model) -> "colwise" / "rowwise", for a transformers config."""
    parts = family_parts(config)
    plan = getattr(config, "base_model_tp_plan", None) or parts.tp_plan
    if not plan:
        raise ModelLoadError(f"model_type {config.model_type!r}: no tensor-parallel plan")
    unknown = sorted({style for style in plan.values() if style not in STYLES})
    if unknown:
        raise ModelLoadError(
            f"model_type {config.model_type!r}: tensor-parallel styles {unknown} are not supported "
            f"(only {', '.join(STYLES)})"
        )
    return dict(plan)


def check_divisible(cfg, tp: int) -> None:
    """Heads, KV heads and MLP columns of a transformers config split evenly over `tp` ranks."""
    heads = cfg.num_attention_heads
    kv_heads = getattr(cfg, "num_key_value_heads", None) or heads
    inter = getattr(cfg, "intermediate_size", None) or getattr(cfg, "ffn_dim", None)
    for name, value in (("attention heads", heads), ("KV heads", kv_heads), ("MLP columns", inter)):
        if value % tp:
            raise ModelLoadError(f"{value} {name} cannot be split over {tp} tensor-parallel ranks")


def _pattern(key: str) -> re.Pattern:
    return re.compile("^" + re.escape(key).replace(r"\*", r"\d+") + "$")


def _slice(t: torch.Tensor, dim: int, rank: int, size: int) -> torch.Tensor:
    n = t.shape[dim] // size
    return t.narrow(dim, rank * n, n).clone()  # clone: let the full tensor be freed


class RowParallelReduce:
    """Forward hook of a row-parallel linear: sum the partial outputs, then add the bias once."""

    def __init__(self, group, name: str, health: Health) -> None:
        self.group, self.name, self.health = group, name, health

    def __call__(self, module: torch.nn.Module, args, output: torch.Tensor) -> torch.Tensor:
        try:
            dist.all_reduce(output, group=self.group)
        except (RuntimeError, ValueError) as exc:
            raise self.health.error(f"tensor-parallel all-reduce after {self.name}", exc) from None
        bias = module.tp_bias
        return output if bias is None else output + bias


def apply_tp(model, tp_rank: int, tp: int, group, health: Health | None = None) -> list[str]:
    """Shard `model` in place for rank `tp_rank` of `tp`; returns the sharded module names.
    `health` explains a failed all-reduce (a dead peer's exit status)."""
    if tp == 1:
        return []
    check_divisible(model.config, tp)
    parts = family_parts(model.config)
    base = submodule(model, parts.base)
    patterns = [(_pattern(k), style) for k, style in tp_plan(model.config).items()]
    sharded = []
    for name, module in base.named_modules():
        style = next((s for p, s in patterns if p.match(name)), None)
        if style is None:
            continue
        if not isinstance(module, torch.nn.Linear):
            raise ModelLoadError(f"{name}: tensor parallelism shards nn.Linear only, found {type(module).__name__}")
        with torch.no_grad():
            if style == "colwise":
                module.weight = torch.nn.Parameter(_slice(module.weight, 0, tp_rank, tp), requires_grad=False)
                if module.bias is not None:
                    module.bias = torch.nn.Parameter(_slice(module.bias, 0, tp_rank, tp), requires_grad=False)
                module.out_features = module.weight.shape[0]
            else:
                module.weight = torch.nn.Parameter(_slice(module.weight, 1, tp_rank, tp), requires_grad=False)
                bias = module.bias
                module.bias = None  # added once, after the all-reduce
                module.register_buffer("tp_bias", None if bias is None else bias.detach().clone())
                module.in_features = module.weight.shape[1]
                module.register_forward_hook(RowParallelReduce(group, name, health or Health()))
        sharded.append(name)
    if not sharded:
        raise ModelLoadError(f"model_type {model.config.model_type!r}: the tensor-parallel plan matched no module")
    for layer in submodule(base, parts.layers):
        for attr in parts.head_attrs:
            attn = layer.self_attn
            setattr(attn, attr, getattr(attn, attr) // tp)
    return sharded
