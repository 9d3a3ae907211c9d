"""The work of one iteration, operator by operator: FLOPs and HBM bytes per tensor-parallel rank.

An iteration runs `num_tokens` tokens through the model: every prefill prompt's tokens plus one
token per decode job. Per decoder layer (vLLM's kernels, as Vidur profiles them):

    input_norm   elementwise  read + write N x h
    qkv          GEMM         N x h  @  h x (heads/tp + 2 kv_heads/tp) * head_dim
    rope         elementwise  read + write q and k             (llama only; OPT/GPT add learned
                                                                 positions once, at the embedding)
    attn_prefill attention    causal softmax(QK^T)V over each prompt: 2 * L * (L + 1) * head_dim
                              FLOPs per head; reads q, k, v, writes o and the new KV
    attn_context attention    a prefill chunk of n tokens after c tokens of KV (chunked prefill)
                              also attends to those: 4 * n * c * head_dim FLOPs per head; reads
                              the c tokens' KV
    attn_decode  attention    each job reads its whole KV (context c): 4 * c * head_dim FLOPs per head
    o            GEMM         N x heads/tp * head_dim  @  ... x h
    post_norm    elementwise  read + write N x h
    up           GEMM         N x h  @  h x I/tp (x2 for llama's gate and up)
    act          elementwise  read 2, write 1 N x I/tp (llama SiLU-and-mul); read + write (OPT/GPT)
    down         GEMM         N x I/tp  @  I/tp x h
    add          elementwise  residual: read 2, write 1 N x h (vLLM fuses the other into the norm)
    all_reduce   2 per layer when tp > 1 (after o and down), N x h each

Per iteration: the layers, plus embedding (read the rows and, for OPT/GPT, the learned
positions; write N x h; an all-reduce for the vocab-parallel table when tp > 1), the final norm
and the LM head (a GEMM over one row per sequence: logits are needed for the last token only).

A GEMM's bytes are its weights (read once per iteration: the batch shares them), its input and
its output; OPT and GPT linear layers add their bias. Invariant: `IterationWork` totals are the
sums of `count * op` over these operators.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from profiles.models import ModelSpec


@dataclass(frozen=True)
class Op:
    name: str
    kind: str  # "gemm" | "attention" | "elementwise" | "all_reduce"
    count: int  # instances per iteration (num_layers for per-layer operators)
    tokens: int  # rows the operator processes (a GEMM's M)
    flops: float  # per instance, per rank
    bytes: float  # HBM traffic per instance, per rank (all-reduce: the message size)
    weight_bytes: float = 0.0
    kv_bytes: float = 0.0


@dataclass(frozen=True)
class BatchShape:
    """What the cost of an iteration depends on: sums over its prompts and decode jobs."""
    num_prefills: int = 0
    prefill_tokens: int = 0  # sum of prompt lengths L
    prefill_pairs: int = 0  # sum of L * (L + 1): causal query-key pairs, doubled
    num_decodes: int = 0
    decode_context_tokens: int = 0  # sum of contexts c
    prefill_context_tokens: int = 0  # sum over prefill chunks of the KV tokens before them, c
    prefill_context_pairs: int = 0  # sum of n * c: chunk queries times earlier keys

    @classmethod
    def of(cls, prefill_tokens: Sequence[int] = (), decode_context_tokens: Sequence[int] = (),
           prefill_context_tokens: Sequence[int] = ()) -> BatchShape:
        ctx = tuple(prefill_context_tokens) or (0,) * len(prefill_tokens)
        return cls(len(prefill_tokens), sum(prefill_tokens), sum(L * (L + 1) for L in prefill_tokens),
                   len(decode_context_tokens), sum(decode_context_tokens),
                   sum(ctx), sum(n * c for n, c in zip(prefill_tokens, ctx, strict=True)))

    @classmethod
    def chunk(cls, chunk_tokens: int, context_tokens: int) -> BatchShape:
        """One prefill chunk of `chunk_tokens` after `context_tokens` of its job's KV."""
        return cls.of((chunk_tokens,), (), (context_tokens,))

    @classmethod
    def uniform(cls, num_prefills: int = 0, prompt_tokens: int = 0, num_decodes: int = 0,
                context_tokens: int = 0) -> BatchShape:
        return cls(num_prefills, num_prefills * prompt_tokens, num_prefills * prompt_tokens * (prompt_tokens + 1),
                   num_decodes, num_decodes * context_tokens)

    @property
    def num_tokens(self) -> int:
        return self.prefill_tokens + self.num_decodes

    @property
    def num_sequences(self) -> int:
        return self.num_prefills + self.num_decodes


@dataclass(frozen=True)
class IterationWork:
    flops: float
    bytes: float
    weight_bytes: float
    kv_bytes: float
    all_reduce_bytes: float


def kv_heads_per_rank(model: ModelSpec, tp: int) -> int:
    """KV heads each rank holds; with fewer KV heads than ranks they are replicated."""
    return -(-model.num_kv_heads // tp)


def check_tp(model: ModelSpec, tp: int) -> None:
    if tp < 1 or model.num_heads % tp:
        raise ValueError(f"tp {tp} must divide {model.name}'s {model.num_heads} attention heads")
    if model.intermediate_size % tp:
        raise ValueError(f"tp {tp} must divide {model.name}'s intermediate size {model.intermediate_size}")


def iteration_ops(model: ModelSpec, tp: int, batch: BatchShape) -> list[Op]:
    check_tp(model, tp)
    n, dt, h, hd, L = batch.num_tokens, model.dtype_bytes, model.hidden_size, model.head_dim, model.num_layers
    if n == 0:
        return []
    heads, kv_heads, inter = model.num_heads // tp, kv_heads_per_rank(model, tp), model.intermediate_size // tp
    bias = model.has_biases  # OPT and GPT linear layers; the LM head has none

    def gemm(name: str, m: int, k: int, out: int, count: int, has_bias: bool = bias) -> Op:
        weights = (k * out + (out if has_bias else 0)) * dt
        return Op(name, "gemm", count, m, 2.0 * m * k * out, weights + (m * k + m * out) * dt, weights)

    def elementwise(name: str, count: int, elements: int) -> Op:
        return Op(name, "elementwise", count, n, 0.0, float(elements * dt))

    ops = [elementwise("input_norm", L, 2 * n * h),
           gemm("qkv", n, h, (heads + 2 * kv_heads) * hd, L)]
    if model.family == "llama":
        ops.append(elementwise("rope", L, 2 * n * (heads + kv_heads) * hd))
    if batch.num_prefills:
        kv_write = batch.prefill_tokens * 2 * kv_heads * hd * dt
        io = batch.prefill_tokens * (2 * heads + 2 * kv_heads) * hd * dt  # read q, k, v; write o
        ops.append(Op("attn_prefill", "attention", L, batch.prefill_tokens,
                      2.0 * batch.prefill_pairs * hd * heads, float(io + kv_write), kv_bytes=float(kv_write)))
    if batch.prefill_context_pairs:
        kv_read = batch.prefill_context_tokens * 2 * kv_heads * hd * dt
        ops.append(Op("attn_context", "attention", L, batch.prefill_tokens,
                      4.0 * batch.prefill_context_pairs * hd * heads, float(kv_read), kv_bytes=float(kv_read)))
    if batch.num_decodes:
        kv_read = batch.decode_context_tokens * 2 * kv_heads * hd * dt
        io = batch.num_decodes * (2 * heads + 2 * kv_heads) * hd * dt  # q in, o out, new k and v
        ops.append(Op("attn_decode", "attention", L, batch.num_decodes,
                      4.0 * batch.decode_context_tokens * hd * heads, float(kv_read + io),
                      kv_bytes=float(kv_read + batch.num_decodes * 2 * kv_heads * hd * dt)))
    mlp_out = (2 if model.gated_mlp else 1) * inter
    ops += [gemm("o", n, heads * hd, h, L),
            elementwise("post_norm", L, 2 * n * h),
            gemm("up", n, h, mlp_out, L),
            elementwise("act", L, (3 if model.gated_mlp else 2) * n * inter),
            gemm("down", n, inter, h, L),
            elementwise("add", L, 3 * n * h)]
    ops += [elementwise("embed", 1, (2 if model.family == "llama" else 3) * n * h),
            elementwise("final_norm", 1, 2 * n * h),
            gemm("lm_head", batch.num_sequences, h, -(-model.vocab_size // tp), 1, has_bias=False)]
    if tp > 1:
        ops.append(Op("all_reduce", "all_reduce", 2 * L + 1, n, 0.0, float(n * h * dt)))
    return ops


def iteration_work(ops: Sequence[Op]) -> IterationWork:
    def total(attr: str, kinds=("gemm", "attention", "elementwise")) -> float:
        return sum(op.count * getattr(op, attr) for op in ops if op.kind in kinds)
    return IterationWork(flops=total("flops"), bytes=total("bytes"), weight_bytes=total("weight_bytes"),
                         kv_bytes=total("kv_bytes"), all_reduce_bytes=total("bytes", ("all_reduce",)))
