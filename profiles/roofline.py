"""Roofline cost: iteration time from the FLOPs and bytes of each operator, for GPUs we cannot run.

Per operator and rank (counts from profiles/ops.py, figures from profiles/hardware.py):

    GEMM, attention  t = overhead + (t_c**p + t_m**p)**(1/p)
                     t_c = flops / (peak_flops * compute(N)),  t_m = bytes / (hbm * memory_eff)
                     compute(N) = compute_eff * N / (N + half_efficiency_tokens) for GEMMs; the
                     attention kernels use compute_eff (no attention data here to fit them)
    elementwise      t = elementwise_overhead + bytes / (hbm * elementwise_eff)
    all-reduce       t = latency + 2 (tp - 1) / tp * bytes / bus bandwidth   (ring, per layer x2)

The weights are read once per iteration whatever the batch (they are in every GEMM's bytes
once), the KV once per decode job and layer. An iteration's time is the sum over operators:
kernels run one after another on a GPU's stream, and tensor-parallel ranks run in lock step.

Pipeline parallelism (pp stages) splits the layers; the grids hold one micro-batch through all
stages (all layers), and stage boundaries are costed separately (`send_recv` curve: activations
of N tokens, N x hidden x dtype bytes, at the intra-node link, or the inter-node one when the
replica spans nodes, tp x pp > gpus_per_node).

Swaps go over each GPU's own PCIe link: the replica's KV bytes / (tp x pp) per link, in
parallel, at pcie_efficiency x the per-direction PCIe figure.

`roofline_profile` samples these formulas on grids dense enough that the cost model's
piecewise-linear interpolation stays within ~1% of the formulas (tested).
"""

from __future__ import annotations

import platform
from importlib.metadata import PackageNotFoundError, version

from profiles.capacity import MemoryConfig, kv_budget
from profiles.hardware import Efficiency, HardwareSpec, roofline_hardware
from profiles.models import ModelSpec, get_model
from profiles.ops import BatchShape, Op, check_tp, iteration_ops
from profiles.schema import LatencyCurve, LatencyGrid, Profile

PREFILL_BATCH_SIZES = (1, 2, 3, 4, 6, 8, 12, 16, 24, 32, 48, 64)
DECODE_BATCH_SIZES = (1, 2, 3, 4, 6, 8, 12, 16, 24, 32, 48, 64, 96, 128, 192, 256, 384, 512)
SWAP_BYTES = tuple(4**k for k in range(5, 21))  # 1 KiB .. 1 TiB
SEND_RECV_BYTES = tuple(4**k for k in range(5, 18))  # 1 KiB .. 16 GiB
MAX_CHUNK_TOKENS = 8192  # prefill_context grid: chunk budgets beyond this are not chunking


def token_axis(max_tokens: int) -> tuple[int, ...]:
    """1, 2, 3, 4, 6, 8, 12, ...: powers of two and their midpoints (x1.5), up to max_tokens."""
    points, k = {max_tokens}, 1
    while k < max_tokens:
        points.update(p for p in (k, 3 * k // 2) if 1 <= p < max_tokens)
        k *= 2
    return tuple(sorted(points))


def op_time_s(op: Op, hw: HardwareSpec, tp: int) -> float:
    """Time of one instance of `op` on one rank."""
    e: Efficiency = hw.efficiency
    if op.kind in ("gemm", "attention"):
        compute = e.compute_efficiency
        if op.kind == "gemm":
            compute *= op.tokens / (op.tokens + e.half_efficiency_tokens)
        t_c = op.flops / (hw.peak_flops * compute)
        t_m = op.bytes / (hw.hbm_bytes_per_s * e.memory_efficiency)
        p = e.overlap_exponent
        return e.gemm_overhead_s + (t_c**p + t_m**p) ** (1.0 / p)
    if op.kind == "elementwise":
        return e.elementwise_overhead_s + op.bytes / (hw.hbm_bytes_per_s * e.elementwise_efficiency)
    if op.kind == "all_reduce":
        return e.all_reduce_latency_s + 2.0 * (tp - 1) / tp * op.bytes / e.all_reduce_bus_bytes_per_s
    raise ValueError(f"unknown operator kind {op.kind!r}")


def iteration_time_s(model: ModelSpec, hw: HardwareSpec, tp: int, batch: BatchShape) -> float:
    return sum(op.count * op_time_s(op, hw, tp) for op in iteration_ops(model, tp, batch))


def send_recv_s(hw: HardwareSpec, tp: int, pp: int, size_bytes: float) -> float:
    e = hw.efficiency
    if tp * pp > hw.gpus_per_node:  # conservative: every boundary costed at the inter-node rate
        return e.internode_latency_s + size_bytes / e.internode_bytes_per_s
    return e.send_recv_latency_s + size_bytes / e.send_recv_bytes_per_s


def swap_time_s(hw: HardwareSpec, tp: int, pp: int, size_bytes: float) -> float:
    e = hw.efficiency
    return e.pcie_latency_s + size_bytes / (tp * pp) / (hw.pcie_bytes_per_s * e.pcie_efficiency)


def software_versions() -> dict:
    out = {"python": platform.python_version()}
    for pkg in ("fastserve", "numpy"):
        try:
            out[pkg] = version(pkg)
        except PackageNotFoundError:
            out[pkg] = "unknown"
    return out


def roofline_profile(model: str | ModelSpec, gpu: str | HardwareSpec, tp: int = 1, pp: int = 1,
                     memory: MemoryConfig | None = None, generated_by: str | None = None,
                     max_tokens: int | None = None) -> Profile:
    """A roofline `Profile` of `model` on tp x pp GPUs of kind `gpu`."""
    spec = get_model(model) if isinstance(model, str) else model
    hw = roofline_hardware(gpu) if isinstance(gpu, str) else gpu
    if pp < 1 or pp > spec.num_layers:
        raise ValueError(f"pp must be in 1..{spec.num_layers} (the layers of {spec.name}), got {pp}")
    check_tp(spec, tp)
    memory = memory or MemoryConfig()
    budget = kv_budget(spec, hw, tp, pp, memory)
    tokens = token_axis(max_tokens or spec.max_position_embeddings)

    def grid(batch_sizes, shape_of) -> LatencyGrid:
        rows = tuple(tuple(iteration_time_s(spec, hw, tp, shape_of(b, n)) for n in tokens) for b in batch_sizes)
        return LatencyGrid(batch_sizes, tokens, rows)

    chunks = token_axis(min(max(tokens), MAX_CHUNK_TOKENS))
    contexts = (0, *tokens)
    prefill_context = LatencyGrid(chunks, contexts, tuple(
        tuple(iteration_time_s(spec, hw, tp, BatchShape.chunk(n, c)) for c in contexts) for n in chunks))
    swap = LatencyCurve(SWAP_BYTES, tuple(swap_time_s(hw, tp, pp, s) for s in SWAP_BYTES))
    send_recv = all_reduce = None
    if pp > 1:
        send_recv = LatencyCurve(SEND_RECV_BYTES, tuple(send_recv_s(hw, tp, pp, s) for s in SEND_RECV_BYTES))
    if tp > 1:
        all_reduce = LatencyCurve(SEND_RECV_BYTES, tuple(
            op_time_s(Op("all_reduce", "all_reduce", 1, 0, 0.0, float(s)), hw, tp) for s in SEND_RECV_BYTES))
    args = f"--model {spec.name} --gpu {hw.name} --tp {tp} --pp {pp}"
    return Profile(
        model=spec, hardware={**hw.to_dict(), "num_gpus": tp * pp},
        software=software_versions(), tp=tp, pp=pp,
        prefill=grid(PREFILL_BATCH_SIZES, lambda b, n: BatchShape.uniform(num_prefills=b, prompt_tokens=n)),
        decode=grid(DECODE_BATCH_SIZES, lambda b, n: BatchShape.uniform(num_decodes=b, context_tokens=n)),
        swap_out=swap, swap_in=swap,
        kv_bytes_per_token=spec.kv_bytes_per_token,
        device_kv_tokens=budget.device_tokens, host_kv_tokens=budget.host_tokens,
        source="roofline", generated_by=generated_by or f"fastserve profiles roofline {args}",
        send_recv=send_recv, all_reduce=all_reduce, mixed_batch="fused", prefill_context=prefill_context,
        notes={"memory": {f: getattr(memory, f) for f in memory.__dataclass_fields__},
               "kv_budget": budget.to_dict(),
               "grids": "iteration time of the whole pipeline (all layers), no stage transfers; "
                        "see profiles/roofline.py"},
    )
