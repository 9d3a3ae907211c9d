"""Swap throughput of the executor's KV store against a plain tensor copy of the same bytes.

A job's KV (all layers, K and V) moves device -> host (`swap_out`) and back (`swap_in`) through
`executor.transfer.Swapper`, exactly as the engine moves it. The job's device blocks are either
one contiguous run, or interleaved with another job's (as decode growth leaves them). The
reference is `dst.copy_(src)` of two contiguous tensors holding the same number of bytes
(on CUDA: device -> pinned host memory and back). Target: achieved / plain >= 0.8.

    python benchmarks/swap_throughput.py [--device cpu|cuda] [--threads 1]
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from executor.kv_store import KVStore
from executor.models import KVLayout
from executor.transfer import Swapper
from policy import KVCapacity

LAYOUTS = {
    # KV shape per token of a Llama-3-8B-like model (32 layers, 8 KV heads of 128, fp16): 128 KiB
    "llama-3-8b-like": KVLayout(32, 8, 128, torch.float16),
    # the CPU test model (2 layers, 2 KV heads of 16, fp32): 512 B
    "tiny-llama": KVLayout(2, 2, 16, torch.float32),
}


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _timed_s(fn, device: torch.device) -> float:
    _sync(device)
    t = time.perf_counter()
    fn()
    _sync(device)
    return time.perf_counter() - t


def measure(layout: KVLayout, num_tokens: int, block_size: int, fragmented: bool, device: torch.device,
            repeats: int) -> tuple[int, float, float, float, float]:
    """Medians of (swap out, swap in, plain copy out, plain copy in), timed in turn each round so
    that machine noise hits all four alike."""
    blocks = -(-num_tokens // block_size)
    store = KVStore(layout, KVCapacity(2 * blocks + 2, blocks, block_size), num_tokens, device)
    # real data everywhere: zero-filled (calloc) pages read faster than memory does
    store.device_pool.uniform_()
    store.host_pool.uniform_()
    swapper = Swapper(store)
    if fragmented:  # two jobs growing in turn own alternate blocks
        for i in range(1, blocks + 1):
            store.grow(0, i)
            store.grow(1, i)
    else:
        store.grow(0, blocks)

    def out():
        swapper.swap_out(0, blocks).wait()
        store.end_swap_out(0)

    def back():
        swapper.swap_in(0, blocks).wait()
        store.end_swap_in(0)

    nbytes = blocks * store.bytes_per_block
    src = torch.randint(0, 255, (nbytes,), dtype=torch.uint8, device=device)
    host = torch.randint(0, 255, (nbytes,), dtype=torch.uint8)
    host = host.pin_memory() if device.type == "cuda" else host
    fns = (out, back, lambda: host.copy_(src, non_blocking=True), lambda: src.copy_(host, non_blocking=True))
    samples: list[list[float]] = [[] for _ in fns]
    for i in range(repeats + 2):
        for fn, kept in zip(fns, samples, strict=True):
            t = _timed_s(fn, device)
            if i >= 2:  # warm-ups
                kept.append(t)
    out_s, in_s, plain_out_s, plain_in_s = (statistics.median(k) for k in samples)
    return nbytes, out_s, in_s, plain_out_s, plain_in_s


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default="cpu", help="torch device (cpu, cuda, ...); CUDA uses pinned host memory and copy streams.")
    ap.add_argument("--threads", type=int, default=1, help="torch intra-op threads on CPU")
    ap.add_argument("--block-size", type=int, default=16, help="KV block size in tokens.")
    ap.add_argument("--repeats", type=int, default=15, help="Timed repetitions per size.")
    args = ap.parse_args()
    device = torch.device(args.device)
    if device.type == "cpu":
        torch.set_num_threads(args.threads)
    print(f"swaps on {device} ({torch.get_num_threads()} threads), block {args.block_size} tokens")
    print(f"{'layout':>16} {'tokens':>6} {'blocks':>10} {'MiB':>7} {'out GB/s':>9} {'plain':>6} {'ratio':>5}"
          f" {'in GB/s':>8} {'plain':>6} {'ratio':>5}")
    worst: dict[str, float] = {}
    for name, layout in LAYOUTS.items():
        # one job's KV: a short, a medium and a long context (tiny-llama's limit is 512 tokens)
        sizes = (64, 256, 1024) if layout.bytes_per_token > 4096 else (64, 256, 512)
        for num_tokens in sizes:
            for fragmented in (False, True):
                nbytes, o, i, po, pi = measure(layout, num_tokens, args.block_size, fragmented, device, args.repeats)
                r_out, r_in = po / o, pi / i
                worst[name] = min(worst.get(name, float("inf")), r_out, r_in)
                print(f"{name:>16} {num_tokens:>6} {'interleaved' if fragmented else 'one run':>10} "
                      f"{nbytes / 2**20:>7.1f} {nbytes / o / 1e9:>9.2f} {nbytes / po / 1e9:>6.2f} {r_out:>5.2f}"
                      f" {nbytes / i / 1e9:>8.2f} {nbytes / pi / 1e9:>6.2f} {r_in:>5.2f}")
    for name, ratio in worst.items():
        print(f"{name}: worst achieved / plain-copy throughput {ratio:.2f} (target >= 0.8)")
    missed = [name for name, ratio in worst.items() if ratio < 0.8]
    if missed:
        raise SystemExit(f"target missed: {', '.join(missed)}")


if __name__ == "__main__":
    main()
