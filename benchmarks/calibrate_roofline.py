"""Calibration report of the roofline against Vidur's A100/H100 operator measurements.

    python benchmarks/calibrate_roofline.py            # error tables for the catalog's constants
    python benchmarks/calibrate_roofline.py --fit      # refit the efficiency constants (needs scipy)

Prints the median absolute error |predicted / measured - 1| per (GPU, model, TP) for the GEMM
group (QKV, O, MLP up, MLP down; target < 10%), the element-wise group (no target) and the
whole layer without attention (target < 20%), then per operator, then the network models.
`--fit` minimises, per GPU, the worst plus the mean per-(model, TP) GEMM median error over the
five GEMM constants (Nelder-Mead from the catalog's values), fits the element-wise and network
constants by mean absolute log error, prints them in the form profiles/hardware.py takes, and
reports the errors the fitted constants give.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys

import numpy as np
import pandas as pd

from profiles import calibration as cal
from profiles.hardware import get_hardware


def report(errors: pd.DataFrame) -> int:
    table = cal.error_table(errors)
    with pd.option_context("display.width", 200, "display.max_columns", 20, "display.float_format", "{:.1%}".format):
        print("Median absolute error per (GPU, model, TP), num_tokens 1..4096")
        print(table.to_string())
        print("\nPer operator (Vidur names)")
        print(cal.operator_table(errors).to_string())
        print("\nNetwork models")
        print(cal.network_errors().to_string(index=False))
    failures = cal.target_failures(table)
    worst = {g: table[g].max() for g in ("gemm", "layer")}
    print(f"\nworst GEMM median {worst['gemm']:.1%} (target < 10%), worst layer median "
          f"{worst['layer']:.1%} (target < 20%): {'PASS' if not failures else 'FAIL'}")
    for line in failures:
        print("  " + line)
    return 1 if failures else 0


def _op_arrays(errors: pd.DataFrame, gpu: str, group: str):
    """flops, bytes, tokens and measured time of every operator of `group` on one GPU, plus the
    row indices of each (model, TP)."""
    from profiles.ops import BatchShape, iteration_ops
    names = cal.GEMM_OPS if group == "gemm" else cal.ELEMENTWISE_OPS
    sel = errors[(errors.gpu == gpu) & (errors.group == group)].reset_index(drop=True)
    specs = {m: cal.model_spec(pd.read_csv(cal.measurements_dir() / gpu / m / "mlp.csv", nrows=1).iloc[0].to_dict())
             for m in cal.MODELS}
    flops, size, tokens = (np.empty(len(sel)) for _ in range(3))
    cache = {}
    for i, r in enumerate(sel.itertuples(index=False)):
        key = (r.model, r.tp, r.num_tokens)
        if key not in cache:
            shape = BatchShape.uniform(num_prefills=1, prompt_tokens=r.num_tokens)
            cache[key] = {op.name: op for op in iteration_ops(specs[r.model], r.tp, shape)}
        op = cache[key][names[r.operator]]
        flops[i], size[i], tokens[i] = op.flops, op.bytes, op.tokens
    keys = (sel.model + "/" + sel.tp.astype(str)).to_numpy()
    return flops, size, tokens, sel.measured_s.to_numpy(), [np.flatnonzero(keys == k) for k in np.unique(keys)]


def _nelder_mead(loss, starts):
    from scipy.optimize import minimize
    opts = {"maxiter": 20000, "xatol": 1e-6, "fatol": 1e-9}
    return min((minimize(loss, s, method="Nelder-Mead", options=opts) for s in starts), key=lambda r: r.fun).x


def _log_fit(predict, y, start):
    return _nelder_mead(lambda x: 1e9 if min(x) <= 0 else np.mean(np.abs(np.log(predict(x) / y))), [start])


def _fit_gemm(hw, e, flops, size, tokens, measured, groups) -> tuple[float, ...]:
    def medians(x):
        ec, em, half, p, t0 = x
        t_c = flops / (hw.peak_flops * ec * tokens / (tokens + half))
        t_m = size / (hw.hbm_bytes_per_s * em)
        err = np.abs((t0 * 1e-6 + (t_c**p + t_m**p) ** (1 / p)) / measured - 1)
        return np.array([np.median(err[g]) for g in groups])

    def loss(x):
        if not (0 < x[0] <= 1 and 0 < x[1] <= 1 and x[2] >= 0 and x[3] >= 1 and x[4] > 0):
            return 1e9
        m = medians(x)
        return m.max() + m.mean()

    x0 = [e.compute_efficiency, e.memory_efficiency, e.half_efficiency_tokens, e.overlap_exponent,
          e.gemm_overhead_s * 1e6]
    return tuple(_nelder_mead(loss, (x0, [0.75, 0.9, 50.0, 2.0, 5.0], [0.75, 0.9, 100.0, 6.0, 6.0])))


def _fit_gpu(errors: pd.DataFrame, gpu: str, hw):
    e = hw.efficiency
    ec, em, half, p, t0 = _fit_gemm(hw, e, *_op_arrays(errors, gpu, "gemm"))
    _, ew_bytes, _, ew_y, _ = _op_arrays(errors, gpu, "elementwise")
    ew_t0, ew_eff = _log_fit(lambda x: x[0] * 1e-6 + ew_bytes / (hw.hbm_bytes_per_s * x[1]), ew_y,
                             [e.elementwise_overhead_s * 1e6, e.elementwise_efficiency])
    net = {}
    for name, (sizes, workers, y) in cal.network_samples(gpu).items():
        factor = 2.0 * (workers - 1) / workers if name == "all_reduce" else 1.0
        lat, bw = _log_fit(lambda x, s=sizes, f=factor: x[0] * 1e-6 + f * s / (x[1] * 1e9), y, [20.0, 100.0])
        net[name] = (float(lat) * 1e-6, float(bw) * 1e9)
    return dataclasses.replace(
        e, compute_efficiency=float(ec), memory_efficiency=float(em), half_efficiency_tokens=float(half),
        overlap_exponent=float(p), gemm_overhead_s=float(t0) * 1e-6,
        elementwise_overhead_s=float(ew_t0) * 1e-6, elementwise_efficiency=float(ew_eff),
        all_reduce_latency_s=net["all_reduce"][0], all_reduce_bus_bytes_per_s=net["all_reduce"][1],
        send_recv_latency_s=net["send_recv"][0], send_recv_bytes_per_s=net["send_recv"][1],
        internode_latency_s=net["internode"][0], internode_bytes_per_s=net["internode"][1])


def fit(errors: pd.DataFrame) -> dict:
    """Fitted hardware specs for "a100" and "h100"; prints the constants for profiles/hardware.py."""
    specs = {}
    for gpu, hw_name in cal.GPUS.items():
        hw = get_hardware(hw_name)
        eff = _fit_gpu(errors, gpu, hw)
        shown = ", ".join(f"{f.name}={getattr(eff, f.name):.4g}" for f in dataclasses.fields(eff) if f.name != "source")
        print(f"{gpu} fitted: {shown}")
        specs[gpu] = dataclasses.replace(hw, efficiency=eff)
    return specs


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--fit", action="store_true", help="refit the efficiency constants and report with them")
    args = parser.parse_args(argv)
    if not cal.measurements_dir().exists():
        print(f"no measurements at {cal.measurements_dir()}: nothing to calibrate against", file=sys.stderr)
        return 2
    errors = cal.operator_errors()
    if args.fit:
        errors = cal.operator_errors(hardware=fit(errors))
    return report(errors)


if __name__ == "__main__":
    sys.exit(main())
