"""Fit the "sharegpt-like" length distribution and write `traces/sharegpt_params.py`.

The project may not ship the ShareGPT table, so it ships a summary fitted to it once:

- each marginal (prompt tokens, output tokens) as a quantile table on a fixed grid of normal
  scores z = Phi^-1(p), for p = 0.001, 0.005, 0.01, 0.02, ..., 0.98, 0.99, 0.995, 0.999, plus
  the minimum and maximum at z = Phi^-1(0.5 / n) and its negative (n = table rows);
- the dependence between the two as a Gaussian copula: `rho` is the Pearson correlation of
  the van der Waerden normal scores Phi^-1(rank / (n + 1)) of the two columns.

`QuantileLengths` samples correlated standard normals and maps each through its quantile table
(linear interpolation in z, then rounding to whole tokens). Run once with

    python -m traces.fit_sharegpt ../shared/data/traces/sharegpt_lengths_llama2.csv \
        -o traces/sharegpt_params.py

`tests/traces/test_traces_real.py` re-fits and checks the shipped numbers are reproduced.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from statistics import NormalDist

import numpy as np
import pandas as pd

from traces.io import load_lengths

# The table is documented as read from ../shared beside the repository root, wherever it was.
SHARED_PREFIX = "../shared/data/traces/"
P_GRID = (0.001, 0.005, *(round(0.01 * k, 2) for k in range(1, 100)), 0.995, 0.999)


def fit(path: str | Path, fmt: str = "lengths") -> dict:
    """The fitted numbers, rounded exactly as they are written into the module."""
    prompt_tokens, output_tokens = load_lengths(path, fmt=fmt)
    n = len(prompt_tokens)
    normal = NormalDist()
    z_end = -normal.inv_cdf(0.5 / n)
    z_grid = [-z_end, *(normal.inv_cdf(p) for p in P_GRID), z_end]

    def quantiles(tokens: np.ndarray) -> list[float]:
        inner = np.quantile(tokens, P_GRID)
        return [round(float(v), 1) for v in (tokens.min(), *inner, tokens.max())]

    def normal_scores(tokens: np.ndarray) -> np.ndarray:
        ranks = pd.Series(tokens).rank(method="average").to_numpy()
        return np.array([normal.inv_cdf(r / (n + 1)) for r in ranks])

    rho = float(np.corrcoef(normal_scores(prompt_tokens), normal_scores(output_tokens))[0, 1])
    return {
        "num_rows": n,
        "z_grid": [round(z, 6) for z in z_grid],
        "prompt_quantiles": quantiles(prompt_tokens),
        "output_quantiles": quantiles(output_tokens),
        "rho": round(rho, 4),
    }


def _tuple(values: list[float], per_line: int = 8) -> str:
    rows = [
        ", ".join(repr(v) for v in values[i : i + per_line])
        for i in range(0, len(values), per_line)
    ]
    return "(\n" + "".join(f"    {row},\n" for row in rows) + ")"


def render(fitted: dict, source_name: str) -> str:
    return f'''"""Fitted parameters of the "sharegpt-like" length distribution. GENERATED: do not edit.

Made by (see traces/fit_sharegpt.py for the method):

    python -m traces.fit_sharegpt {source_name} \\
        -o traces/sharegpt_params.py

Quantile tables of prompt and output tokens on a grid of normal scores, and the normal-score
correlation between them (a Gaussian copula), fitted to {fitted["num_rows"]:,} ShareGPT
conversations tokenized for Llama-2 (Sarathi-Serve's table, Apache-2.0). The table itself is
not shipped.
"""
''' + params_body(fitted)


def params_body(fitted: dict) -> str:
    """The generated module's constants, after its docstring (shared with traces/fit_chat.py)."""
    return f'''
# fmt: off
NUM_ROWS = {fitted["num_rows"]}
RHO = {fitted["rho"]!r}
Z_GRID = {_tuple(fitted["z_grid"])}
PROMPT_QUANTILES = {_tuple(fitted["prompt_quantiles"])}
OUTPUT_QUANTILES = {_tuple(fitted["output_quantiles"])}
'''


def write_module(text: str, out: str | None) -> None:
    """Write the generated module to `out`, or to stdout without one."""
    if out:
        Path(out).write_text(text, encoding="utf-8")
    else:
        sys.stdout.write(text)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("table", help="CSV with num_prefill_tokens,num_decode_tokens")
    parser.add_argument("-o", "--out", help="module to write (default: stdout)")
    args = parser.parse_args(argv)
    write_module(render(fit(args.table), f"{SHARED_PREFIX}{Path(args.table).name}"), args.out)


if __name__ == "__main__":
    main()
