"""How fast traces synthesize, save and load: 1,000,000 requests by default.

    python benchmarks/trace_load_bench.py [--num-requests N] [--jsonl]

Synthesizes a sharegpt-like Gamma trace, saves it as CSV and Parquet (and JSONL with --jsonl)
in a temporary folder, and times `traces.load` of each, best of `--repeat` runs. Loading is
vectorised (pandas readers, whole-column numpy validation), so a million rows take seconds.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import traces


def _best_s(fn, repeat: int) -> tuple[float, object]:
    best_s, result = float("inf"), None
    for _ in range(repeat):
        start = time.perf_counter()
        result = fn()
        best_s = min(best_s, time.perf_counter() - start)
    return best_s, result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--num-requests", type=int, default=1_000_000, help="Rows of the synthetic trace written and loaded.")
    parser.add_argument("--repeat", type=int, default=3, help="best of this many loads")
    parser.add_argument("--jsonl", action="store_true", help="also time JSONL")
    args = parser.parse_args()

    synth_s, trace = _best_s(
        lambda: traces.synthesize(args.num_requests, "gamma:rate=4,cv=3", "sharegpt-multiturn-like", 1), 1
    )
    print(
        f"synthesize {len(trace):,} requests: {synth_s:.2f} s ({len(trace) / synth_s / 1e6:.2f} M req/s)"
    )
    with tempfile.TemporaryDirectory() as tmp:
        for ext in ("csv", "parquet", *(("jsonl",) if args.jsonl else ())):
            path = Path(tmp) / f"trace.{ext}"
            save_s, _ = _best_s(lambda path=path: traces.save(trace, path), 1)
            load_s, loaded = _best_s(lambda path=path: traces.load(path), args.repeat)
            if loaded != trace:
                raise SystemExit(f"{ext}: round trip changed the trace")
            print(
                f"{ext:>8}: {path.stat().st_size / 2**20:6.1f} MiB, save {save_s:.2f} s, "
                f"load {load_s:.2f} s ({len(trace) / load_s / 1e6:.2f} M req/s), round trip exact"
            )


if __name__ == "__main__":
    main()
