"""KV-cache capacity of a replica (tp x pp GPUs) for roofline profiles, in tokens.

Per GPU, as vLLM sizes its cache:

    device KV bytes = memory_bytes * memory_utilization - weight bytes - activation reserve
    device_tokens   = device KV bytes // KV bytes per token per GPU

- weight bytes per GPU: ceil(layers / pp) layers' parameters / tp, plus the embedding and LM
  head / tp (charged to every stage: the worst stage, first or last, holds one of them);
- activation reserve: a fixed runtime reserve (CUDA context, cuBLAS workspace, NCCL buffers;
  1 GiB by default) plus the peak activations of one forward pass over `max_batch_tokens`
  tokens: the residual stream and norm output (4 x hidden), QKV, the MLP intermediate (x3:
  gate, up and their product for llama) per rank, and fp32 logits over the vocabulary slice;
- KV bytes per token per GPU: 2 (K and V) x ceil(layers / pp) x ceil(kv_heads / tp) x head_dim
  x dtype bytes. A token's KV is spread over every GPU, so the replica holds as many tokens
  as one GPU does.

Host: `host_kv_bytes_per_gpu` of pinned host memory per GPU holds swapped-out KV. The default
is 64 GiB: half of what a DGX A100 (1 TiB for 8 GPUs, 128 GiB each) offers per GPU, leaving the
rest to the OS and the serving process. `fastserve profiles roofline --host-kv-gb` overrides it.
"""

from __future__ import annotations

from dataclasses import dataclass

from profiles.hardware import GIB, HardwareSpec
from profiles.models import ModelSpec
from profiles.ops import kv_heads_per_rank

DEFAULT_HOST_KV_GIB_PER_GPU = 64.0


class ModelDoesNotFitError(ValueError):
    pass


@dataclass(frozen=True)
class MemoryConfig:
    memory_utilization: float = 0.9  # vLLM's gpu_memory_utilization default
    max_batch_tokens: int = 2048  # the FastServe artifact's tokens per batch
    runtime_reserve_bytes: int = GIB
    host_kv_bytes_per_gpu: int = int(DEFAULT_HOST_KV_GIB_PER_GPU * GIB)

    def __post_init__(self) -> None:
        if not 0 < self.memory_utilization <= 1:
            raise ValueError(f"memory_utilization must be in (0, 1], got {self.memory_utilization}")
        if self.max_batch_tokens <= 0:
            raise ValueError(f"max_batch_tokens must be positive, got {self.max_batch_tokens}")
        if self.runtime_reserve_bytes < 0 or self.host_kv_bytes_per_gpu < 0:
            raise ValueError("runtime_reserve_bytes and host_kv_bytes_per_gpu must be >= 0")


@dataclass(frozen=True)
class KVBudget:
    weight_bytes_per_gpu: int
    activation_reserve_bytes: int
    device_kv_bytes_per_gpu: int
    kv_bytes_per_token_per_gpu: int
    device_tokens: int
    host_tokens: int

    def to_dict(self) -> dict:
        return {f: getattr(self, f) for f in self.__dataclass_fields__}


def kv_budget(model: ModelSpec, hw: HardwareSpec, tp: int, pp: int, memory: MemoryConfig) -> KVBudget:
    dt = model.dtype_bytes
    layers_per_stage = -(-model.num_layers // pp)
    weight_bytes = (layers_per_stage * model.layer_params + model.embedding_params) * dt // tp
    t, h = memory.max_batch_tokens, model.hidden_size
    qkv = (model.num_heads // tp + 2 * kv_heads_per_rank(model, tp)) * model.head_dim
    per_token = (4 * h + qkv + 3 * model.intermediate_size // tp) * dt + 4 * -(-model.vocab_size // tp)
    reserve = memory.runtime_reserve_bytes + t * per_token
    available = int(hw.memory_bytes * memory.memory_utilization) - weight_bytes - reserve
    kv_per_token = 2 * layers_per_stage * kv_heads_per_rank(model, tp) * model.head_dim * dt
    if available < kv_per_token:
        raise ModelDoesNotFitError(
            f"{model.name} does not fit on {hw.name} at tp={tp} pp={pp}: weights need "
            f"{weight_bytes / GIB:.1f} GiB and activations {reserve / GIB:.1f} GiB per GPU, of "
            f"{hw.memory_bytes * memory.memory_utilization / GIB:.1f} GiB usable; raise tp or pp")
    return KVBudget(weight_bytes, reserve, available, kv_per_token, available // kv_per_token,
                    memory.host_kv_bytes_per_gpu // kv_per_token)
