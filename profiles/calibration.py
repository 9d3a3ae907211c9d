"""Roofline against real GPU measurements: per-operator error tables (Vidur's A100/H100 data).

Reads `../shared/data/gpu-measurements/{a100,h100}/Llama-2-{7b,70b}-hf/mlp.csv` (per-layer
operator medians in ms, num_tokens 1..4096, TP 1, 2, 4, 8) and `.../network/*.csv`, predicts
each with `profiles.roofline.op_time_s`, and reports the absolute relative error
|predicted / measured - 1|. Groups: `gemm` (QKV, O, MLP up, MLP down; target median < 10% at
every (GPU, model, TP)), `elementwise` (norms, RoPE, activation, residual add; no target), and
`layer` (one decoder layer without attention: the sum of those nine operators; target < 20%).
Vidur's a100 data is from A100-SXM4-80GB, its h100 data from H100-SXM.

Uses pandas; imported only by the calibration script and its test.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from profiles.hardware import HardwareSpec, get_hardware
from profiles.models import ModelSpec
from profiles.ops import BatchShape, Op, iteration_ops
from profiles.roofline import op_time_s

GPUS = {"a100": "a100-80gb", "h100": "h100-sxm"}
MODELS = ("Llama-2-7b-hf", "Llama-2-70b-hf")
# Vidur operator -> profiles/ops.py operator
GEMM_OPS = {"attn_pre_proj": "qkv", "attn_post_proj": "o", "mlp_up_proj": "up", "mlp_down_proj": "down"}
ELEMENTWISE_OPS = {"input_layernorm": "input_norm", "attn_rope": "rope", "post_attention_layernorm": "post_norm",
                   "mlp_act": "act", "add": "add"}
TARGETS = {"gemm": 0.10, "layer": 0.20}


def measurements_dir() -> Path:
    """`../shared/data/gpu-measurements` beside the repository root."""
    return Path(__file__).resolve().parent.parent.parent / "shared" / "data" / "gpu-measurements"


def model_spec(rec: dict) -> ModelSpec:
    h, heads = int(rec["n_embd"]), int(rec["n_head"])
    return ModelSpec("vidur-llama", "llama", 1, h, heads, int(rec["n_kv_head"]), h // heads,
                     int(rec["n_expanded_embd"]), int(rec["vocab_size"]), 4096)


def operator_errors(root: Path | None = None, hardware: dict[str, HardwareSpec] | None = None) -> pd.DataFrame:
    """One row per (gpu, model, tp, num_tokens, operator): measured_s, predicted_s, abs_error.

    Operator `layer` is the sum of the nine per-layer operators. `hardware` maps "a100"/"h100"
    to the spec to test (default: the catalog's); the fitting script passes candidates.
    """
    root = root or measurements_dir()
    rows = []
    for gpu, hw_name in GPUS.items():
        hw = (hardware or {}).get(gpu) or get_hardware(hw_name)
        for model in MODELS:
            df = pd.read_csv(root / gpu / model / "mlp.csv")
            for rec in df.to_dict("records"):
                tp, n = int(rec["num_tensor_parallel_workers"]), int(rec["num_tokens"])
                shape = BatchShape.uniform(num_prefills=1, prompt_tokens=n)
                ops: dict[str, Op] = {op.name: op for op in iteration_ops(model_spec(rec), tp, shape)}
                layer_measured = layer_predicted = 0.0
                for vidur, ours in (GEMM_OPS | ELEMENTWISE_OPS).items():
                    measured = rec[f"time_stats.{vidur}.median"] * 1e-3
                    predicted = op_time_s(ops[ours], hw, tp)
                    group = "gemm" if vidur in GEMM_OPS else "elementwise"
                    rows.append((gpu, model, tp, n, group, vidur, measured, predicted))
                    layer_measured += measured
                    layer_predicted += predicted
                rows.append((gpu, model, tp, n, "layer", "layer", layer_measured, layer_predicted))
    out = pd.DataFrame(rows, columns=["gpu", "model", "tp", "num_tokens", "group", "operator",
                                      "measured_s", "predicted_s"])
    out["abs_error"] = (out.predicted_s / out.measured_s - 1.0).abs()
    return out


def error_table(errors: pd.DataFrame) -> pd.DataFrame:
    """Median absolute error per (gpu, model, tp) and group, pooled over operators and num_tokens."""
    return (errors.groupby(["gpu", "model", "tp", "group"])["abs_error"].median()
            .unstack("group")[["gemm", "elementwise", "layer"]])


def operator_table(errors: pd.DataFrame) -> pd.DataFrame:
    """Median absolute error per (gpu, model, tp) and operator."""
    return errors.groupby(["gpu", "model", "tp", "operator"])["abs_error"].median().unstack("operator")


def target_failures(table: pd.DataFrame) -> list[str]:
    return [f"{gpu} {model} tp={tp} {group}: median error {table.loc[(gpu, model, tp), group]:.1%} "
            f">= {limit:.0%}"
            for group, limit in TARGETS.items()
            for gpu, model, tp in table.index if not table.loc[(gpu, model, tp), group] < limit]


def network_samples(gpu: str, root: Path | None = None) -> dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """(size bytes, workers, median seconds) for all_reduce within one node, send_recv within one
    node ("send_recv") and across two ("internode")."""
    root = root or measurements_dir()
    ar = pd.read_csv(root / gpu / "network" / "all_reduce.csv")
    ar = ar[ar.devices_per_node == ar.num_workers]  # one node: NVLink
    sr = pd.read_csv(root / gpu / "network" / "send_recv.csv")
    out = {"all_reduce": (ar, "all_reduce")}
    out["send_recv"] = (sr[sr.devices_per_node == 2], "send_recv")
    out["internode"] = (sr[sr.devices_per_node == 1], "send_recv")
    return {name: (df["size"].to_numpy(float), df.num_workers.to_numpy(float),
                   df[f"time_stats.{col}.median"].to_numpy() * 1e-3) for name, (df, col) in out.items()}


def network_errors(root: Path | None = None) -> pd.DataFrame:
    """Median absolute error of the all-reduce and send/recv models, per GPU, link and workers."""
    rows = []
    for gpu, hw_name in GPUS.items():
        e = get_hardware(hw_name).efficiency
        for name, (size, workers, measured) in network_samples(gpu, root).items():
            if name == "all_reduce":
                pred = e.all_reduce_latency_s + 2.0 * (workers - 1) / workers * size / e.all_reduce_bus_bytes_per_s
            elif name == "send_recv":
                pred = e.send_recv_latency_s + size / e.send_recv_bytes_per_s
            else:
                pred = e.internode_latency_s + size / e.internode_bytes_per_s
            err = np.abs(pred / measured - 1.0)
            rows += [(gpu, name, int(w), float(np.median(err[workers == w]))) for w in np.unique(workers)]
    return pd.DataFrame(rows, columns=["gpu", "link", "num_workers", "median_abs_error"])
