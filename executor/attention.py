"""Attention over the KV pool, plugged into unmodified transformers models.

transformers' `AttentionInterface` lets a model call a registered function in place of its
attention kernel; the model code (projections, rotary or learned positions, MLP) is untouched.
The runner sets `attn_implementation=ATTENTION_NAME` and passes a `BatchLayout` as the
`fastserve_batch` keyword of the model call; transformers forwards it to every layer's call
here (with no attention mask, since no mask function is registered under this name).

How prefill and decode share one iteration: every job's new tokens are packed into ONE
sequence of batch 1, decode tokens first (one per decoding job), then each prefill's tokens
as a contiguous segment; `position_ids` give each token its position inside its own job, so
rotary and learned position embeddings are exact. Per layer:
1. the new K/V of every packed token are written into the job's pool slots (one `index_put_`);
2. decode tokens: the jobs' blocks are gathered from the pool, padded to the longest context
   (masked when contexts differ) and attended in one SDPA call; GQA folds the query heads of
   each KV head into the query-length axis ([B, kv_heads, group, dim]), so K/V are not repeated;
3. each prefill segment attends causally over its own fresh K/V, one SDPA call each. A segment
   that starts at position s > 0 (a chunk of a chunked prefill) attends over its job's blocks
   instead: positions [0, s + n), the earlier chunks' KV plus its own just written, with query i
   (position s + i) seeing keys up to s + i.
The output rows keep the packed order, as the model expects.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from transformers import AttentionInterface

from executor.kv_store import KVStore

ATTENTION_NAME = "fastserve_paged"
BATCH_KWARG = "fastserve_batch"


@dataclass(slots=True)
class BatchLayout:
    """Where one iteration's packed tokens live in the pool; shared by every layer."""

    store: KVStore
    write_blocks: torch.Tensor  # [T] pool block of each packed token
    write_offsets: torch.Tensor  # [T] slot inside that block
    num_decode: int  # the first num_decode packed tokens are decode steps
    decode_blocks: torch.Tensor | None  # [B * max_blocks] each decode job's blocks, padded, flattened
    decode_context_tokens: int  # longest decode context, new token included
    decode_mask: torch.Tensor | None  # [B, 1, 1, context] True = attend; None when all equal
    prefill_segments: tuple[tuple[int, int], ...]  # (start in packed sequence, length)
    # per prefill segment: None from position 0, else (its job's blocks [ceil((s + n) / bs)],
    # s + n, mask [n, s + n] True = attend) for a chunk after s tokens of KV
    prefill_context: tuple[tuple[torch.Tensor, int, torch.Tensor] | None, ...] = ()

    def attend(self, layer: int, query: torch.Tensor, key: torch.Tensor, value: torch.Tensor,
               scale: float | None) -> torch.Tensor:
        # query [1, H, T, D]; key, value [1, H_kv, T, D]
        k_pool, v_pool = self.store.layer_views(layer)  # [blocks, block_size, H_kv, D]
        k_pool[self.write_blocks, self.write_offsets] = key[0].transpose(0, 1)
        v_pool[self.write_blocks, self.write_offsets] = value[0].transpose(0, 1)
        _, num_heads, _, head_dim = query.shape
        num_kv_heads = key.shape[1]
        group = num_heads // num_kv_heads
        parts = []
        if self.num_decode:
            b, ctx = self.num_decode, self.decode_context_tokens
            q = query[0, :, :b].transpose(0, 1).reshape(b, num_kv_heads, group, head_dim)
            # index_select, not k_pool[ids]: on a strided view it is a row memcpy, ~8x faster
            k = k_pool.index_select(0, self.decode_blocks).view(b, -1, num_kv_heads, head_dim)[:, :ctx].transpose(1, 2)
            v = v_pool.index_select(0, self.decode_blocks).view(b, -1, num_kv_heads, head_dim)[:, :ctx].transpose(1, 2)
            out = F.scaled_dot_product_attention(q, k, v, attn_mask=self.decode_mask, scale=scale)
            parts.append(out.reshape(b, num_heads, head_dim))  # [B, H, D]
        contexts = self.prefill_context or (None,) * len(self.prefill_segments)
        for (start, n), context in zip(self.prefill_segments, contexts, strict=True):
            s = slice(start, start + n)
            if context is None:
                out = F.scaled_dot_product_attention(
                    query[:, :, s], key[:, :, s], value[:, :, s], is_causal=True, scale=scale, enable_gqa=group > 1,
                )
            else:
                blocks, length, mask = context
                k = k_pool.index_select(0, blocks).view(-1, num_kv_heads, head_dim)[:length].transpose(0, 1)[None]
                v = v_pool.index_select(0, blocks).view(-1, num_kv_heads, head_dim)[:length].transpose(0, 1)[None]
                out = F.scaled_dot_product_attention(
                    query[:, :, s], k, v, attn_mask=mask, scale=scale, enable_gqa=group > 1,
                )  # [1, H, n, D] over the job's [1, H_kv, s + n, D]
            parts.append(out[0].transpose(0, 1))  # [n, H, D]
        out = parts[0] if len(parts) == 1 else torch.cat(parts)
        return out.unsqueeze(0)  # [1, T, H, D]


def pooled_attention(module, query, key, value, attention_mask, scaling=None, dropout=0.0, **kwargs):
    layout = kwargs.get(BATCH_KWARG)
    if layout is None:
        raise RuntimeError(
            f"attention '{ATTENTION_NAME}' runs only inside the executor (no {BATCH_KWARG} given); "
            "build a model with attn_implementation='sdpa' to call it directly"
        )
    return layout.attend(module.layer_idx, query, key, value, scaling), None


def register() -> None:
    """Idempotent: make `ATTENTION_NAME` known to transformers."""
    AttentionInterface.register(ATTENTION_NAME, pooled_attention)
