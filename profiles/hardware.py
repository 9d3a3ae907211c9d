"""Hardware catalog: datasheet figures plus the efficiency factors the roofline applies.

A `HardwareSpec` holds peak figures for one GPU (dense fp16/bf16 tensor throughput, HBM
bandwidth and capacity, PCIe and NVLink bandwidth per direction) and an `Efficiency`: how much
of those peaks real kernels reach. Invariants: every figure is positive for a roofline target;
`cpu` is `measured_only` (its speed depends on the host; profile it with `fastserve profile`),
and asking for its roofline raises `MeasuredOnlyError`.

Efficiencies for a100-* and h100-sxm were fitted by `benchmarks/calibrate_roofline.py --fit`
against Vidur's per-operator measurements of Llama-2-7B and 70B at TP 1, 2, 4 and 8
(`../shared/data/gpu-measurements/`): GEMM constants minimise the worst per-(model, TP) median
absolute error plus the mean one over num_tokens 1..4096 (Nelder-Mead); element-wise and network
constants minimise the mean absolute log error. A100-40GB shares the A100-80GB constants (same
GA100 chip) and H200 the H100 ones (same GH100 chip). L4 and A10G have no measurements here:
they borrow the A100 constants and say so in `Efficiency.source`.
"""

from __future__ import annotations

from dataclasses import dataclass, fields

GIB = 2**30


class UnknownHardwareError(ValueError):
    pass


class MeasuredOnlyError(ValueError):
    pass


@dataclass(frozen=True)
class Efficiency:
    """Fraction of peak that kernels reach, and fixed costs (see `profiles/roofline.py`).

    GEMM time = gemm_overhead_s + (t_c**p + t_m**p)**(1/p), a smooth max of the compute time
    t_c = flops / (peak_flops * compute(N)) and the memory time t_m = bytes / (hbm * memory),
    where compute(N) = compute_efficiency * N / (N + half_efficiency_tokens) saturates with the
    number of tokens N (small GEMMs cannot fill the GPU) and p = overlap_exponent (large p:
    compute and memory overlap fully; p = 1: they add).
    """
    compute_efficiency: float
    memory_efficiency: float
    half_efficiency_tokens: float
    overlap_exponent: float
    gemm_overhead_s: float
    elementwise_efficiency: float  # of HBM bandwidth, for norms, RoPE, activation, residual add
    elementwise_overhead_s: float
    all_reduce_latency_s: float  # ring all-reduce: latency + 2 (n-1)/n * bytes / bus bandwidth
    all_reduce_bus_bytes_per_s: float
    send_recv_latency_s: float  # pipeline stage boundary inside a node (NVLink or PCIe)
    send_recv_bytes_per_s: float
    internode_latency_s: float  # stage boundary across nodes (InfiniBand)
    internode_bytes_per_s: float
    pcie_efficiency: float = 0.8  # pinned cudaMemcpyAsync reaches ~25 of 32 GB/s on PCIe 4 x16
    pcie_latency_s: float = 10e-6
    source: str = ""

    def __post_init__(self) -> None:
        for f in fields(self):
            value = getattr(self, f.name)
            if f.name != "source" and not value > 0:
                raise ValueError(f"efficiency {f.name} must be positive, got {value!r}")
        for name in ("compute_efficiency", "memory_efficiency", "elementwise_efficiency", "pcie_efficiency"):
            if getattr(self, name) > 1:
                raise ValueError(f"efficiency {name} must be <= 1, got {getattr(self, name)}")


# Fitted on Vidur's A100 (A100-SXM4-80GB) measurements; see the module docstring.
A100_EFFICIENCY = Efficiency(
    compute_efficiency=0.7539, memory_efficiency=0.8427, half_efficiency_tokens=27.98,
    overlap_exponent=1.55, gemm_overhead_s=5.186e-6,
    elementwise_efficiency=0.4824, elementwise_overhead_s=2.606e-6,
    all_reduce_latency_s=48.45e-6, all_reduce_bus_bytes_per_s=172.9e9,
    send_recv_latency_s=13.86e-6, send_recv_bytes_per_s=305.8e9,
    # Vidur's A100 cluster reaches only 7.8 GB/s between nodes (a DGX A100 has 8x 200 Gb/s HDR
    # InfiniBand, 25 GB/s per GPU); we keep the measured figure: it is the only evidence here.
    internode_latency_s=28.41e-6, internode_bytes_per_s=7.765e9,
    source="fitted to Vidur A100 measurements (Llama-2-7B/70B, TP 1-8)",
)
# Fitted on Vidur's H100 (H100-SXM) measurements.
H100_EFFICIENCY = Efficiency(
    compute_efficiency=0.7729, memory_efficiency=0.9547, half_efficiency_tokens=149.9,
    overlap_exponent=9.768, gemm_overhead_s=7.039e-6,
    elementwise_efficiency=0.5363, elementwise_overhead_s=2.208e-6,
    all_reduce_latency_s=28.91e-6, all_reduce_bus_bytes_per_s=351.5e9,
    send_recv_latency_s=7.634e-6, send_recv_bytes_per_s=361.4e9,
    internode_latency_s=18.92e-6, internode_bytes_per_s=36.39e9,
    source="fitted to Vidur H100 measurements (Llama-2-7B/70B, TP 1-8)",
)


def _borrowed(eff: Efficiency, why: str, **changes) -> Efficiency:
    values = {f.name: getattr(eff, f.name) for f in fields(eff)}
    values.update(changes, source=why)
    return Efficiency(**values)


@dataclass(frozen=True)
class HardwareSpec:
    name: str
    description: str
    memory_bytes: int  # device memory as nvidia-smi reports it (memory.total)
    peak_flops: float  # dense fp16/bf16 tensor-core FLOP/s (datasheets quote 2x "with sparsity")
    hbm_bytes_per_s: float
    pcie_bytes_per_s: float  # host link, per direction
    nvlink_bytes_per_s: float  # GPU-GPU per direction; 0 without NVLink (collectives go over PCIe)
    gpus_per_node: int = 8
    efficiency: Efficiency | None = None
    measured_only: bool = False

    def __post_init__(self) -> None:
        if self.measured_only:
            return
        for name in ("memory_bytes", "peak_flops", "hbm_bytes_per_s", "pcie_bytes_per_s", "gpus_per_node"):
            if not getattr(self, name) > 0:
                raise ValueError(f"hardware {self.name}: {name} must be positive, got {getattr(self, name)!r}")
        if self.efficiency is None:
            raise ValueError(f"hardware {self.name}: a roofline target needs efficiency factors")

    def to_dict(self) -> dict:
        out = {f.name: getattr(self, f.name) for f in fields(self) if f.name != "efficiency"}
        if self.efficiency is not None:
            out["efficiency"] = {f.name: getattr(self.efficiency, f.name) for f in fields(self.efficiency)}
        return out


MIB = 2**20
HARDWARE: dict[str, HardwareSpec] = {h.name: h for h in (
    # NVIDIA A100 datasheet (nvidia-a100-datasheet-us-nvidia-1758950-r4): 312 TFLOPS fp16/bf16
    # tensor (624 sparse), 1,555 GB/s HBM2 (40GB) / 2,039 GB/s HBM2e (80GB), NVLink 600 GB/s
    # (both directions), PCIe Gen4 64 GB/s (both directions).
    HardwareSpec("a100-40gb", "NVIDIA A100-SXM4-40GB", 40960 * MIB, 312e12, 1555e9, 32e9, 300e9,
                 efficiency=_borrowed(A100_EFFICIENCY, "A100-80GB constants (same GA100 chip)")),
    HardwareSpec("a100-80gb", "NVIDIA A100-SXM4-80GB", 81920 * MIB, 312e12, 2039e9, 32e9, 300e9,
                 efficiency=A100_EFFICIENCY),
    # NVIDIA H100 datasheet (SXM5): 1,979 TFLOPS bf16 with sparsity -> 989.4 dense, 3.35 TB/s
    # HBM3, NVLink 900 GB/s (both directions), PCIe Gen5 128 GB/s (both directions).
    HardwareSpec("h100-sxm", "NVIDIA H100 80GB HBM3 (SXM5)", 81559 * MIB, 989.4e12, 3352e9, 64e9, 450e9,
                 efficiency=H100_EFFICIENCY),
    # NVIDIA H200 datasheet (SXM): same GH100 compute as H100, 141 GB HBM3e at 4.8 TB/s.
    HardwareSpec("h200", "NVIDIA H200 (SXM)", 143771 * MIB, 989.4e12, 4800e9, 64e9, 450e9,
                 efficiency=_borrowed(H100_EFFICIENCY, "H100 constants (same GH100 chip)")),
    # NVIDIA L4 datasheet: 242 TFLOPS fp16 tensor with sparsity -> 121 dense, 24 GB GDDR6 at
    # 300 GB/s, PCIe Gen4 x16 64 GB/s (both directions), no NVLink.
    HardwareSpec("l4", "NVIDIA L4", 23034 * MIB, 121e12, 300e9, 32e9, 0.0,
                 efficiency=_borrowed(A100_EFFICIENCY, "uncalibrated: A100 constants, PCIe collectives",
                                      all_reduce_bus_bytes_per_s=20e9, send_recv_bytes_per_s=20e9)),
    # A10G (AWS G5): NVIDIA publishes no datasheet; 24 GB GDDR6 at 600 GB/s like the A10, about
    # 70 TFLOPS fp16 tensor (baseten.co, "NVIDIA A10 vs A10G for ML model inference"), PCIe Gen4.
    HardwareSpec("a10g", "NVIDIA A10G", 23028 * MIB, 70e12, 600e9, 32e9, 0.0,
                 efficiency=_borrowed(A100_EFFICIENCY, "uncalibrated: A100 constants, PCIe collectives",
                                      all_reduce_bus_bytes_per_s=20e9, send_recv_bytes_per_s=20e9)),
    HardwareSpec("cpu", "host CPU (measured profiles only)", 0, 0.0, 0.0, 0.0, 0.0, gpus_per_node=1,
                 measured_only=True),
)}


def get_hardware(name: str) -> HardwareSpec:
    try:
        return HARDWARE[name]
    except KeyError:
        raise UnknownHardwareError(f"unknown hardware {name!r}; known: {', '.join(sorted(HARDWARE))}") from None


def roofline_hardware(name: str) -> HardwareSpec:
    """The spec of a roofline target; `cpu` is refused (measure it instead)."""
    hw = get_hardware(name)
    if hw.measured_only:
        raise MeasuredOnlyError(f"hardware {name!r} is measured-only: no roofline; profile it with "
                                f"`fastserve profile --device {name}` instead")
    return hw
