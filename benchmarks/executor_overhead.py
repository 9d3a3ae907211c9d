"""Executor overhead: pooled decode iterations vs a bare transformers forward, and engine bookkeeping.

1. Decode-iteration time of `ModelRunner.step` (packed tokens, paged KV pool, block-table
   gathers) against the same model called the plain transformers way (`sdpa` attention, its own
   `DynamicCache` holding the same context), at the same batch size and context. Both keep the
   context fixed: the executor rewrites the same slot, the bare model crops its cache back.
   Target: ratio <= 1.2.
2. Engine bookkeeping at batch 16: the share of each engine loop period (start of one iteration
   to the start of the next: scheduling, block accounting, token appends, records) spent outside
   the model forward. Target: < 5 %.

    python benchmarks/executor_overhead.py [--model tiny-llama] [--device cpu] [--threads 1]
"""

from __future__ import annotations

import argparse
import dataclasses
import inspect
import statistics
import time

import torch

from executor.engine import Engine, EngineConfig
from executor.kv_store import KVStore
from executor.models import build_model, config_from_spec, kv_layout
from executor.runner import ModelRunner, Segment
from policy import KVCapacity, SchedulerConfig, make_scheduler
from profiles.models import get_model
from traces import Trace


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _interleaved_medians_s(fns, device, repeats: int, afters) -> list[float]:
    """Median time of each fn, the fns timed in turn (so machine noise hits them alike)."""
    samples: list[list[float]] = [[] for _ in fns]
    for i in range(repeats + 3):
        for fn, after, out in zip(fns, afters, samples, strict=True):
            _sync(device)
            t = time.perf_counter()
            fn()
            _sync(device)
            if i >= 3:  # warm-ups
                out.append(time.perf_counter() - t)
            if after is not None:
                after()
    return [statistics.median(s) for s in samples]


@torch.inference_mode()
def decode_ratio(spec, device: str, batch: int, context: int, repeats: int, block_size: int) -> tuple[float, float]:
    pooled = build_model(config_from_spec(spec), device=device)
    bare = build_model(config_from_spec(spec), device=device, attn_implementation="sdpa")
    dev = pooled.device
    blocks = -(-context // block_size)
    store = KVStore(kv_layout(pooled), KVCapacity(batch * blocks, 0, block_size), context, dev)
    runner = ModelRunner(pooled, store)
    for j in range(batch):
        store.grow(j, blocks)
    segments = [Segment(j, [j % spec.vocab_size], context - 1) for j in range(batch)]

    cache_kwarg = "cache" if "cache" in inspect.signature(bare.forward).parameters else "past_key_values"
    prefix = torch.randint(0, spec.vocab_size, (batch, context - 1), device=dev)
    cache = getattr(bare(input_ids=prefix, use_cache=True), cache_kwarg)
    step_ids = torch.randint(0, spec.vocab_size, (batch, 1), device=dev)

    def bare_step():
        out = bare(input_ids=step_ids, use_cache=True, logits_to_keep=1, **{cache_kwarg: cache})
        out.logits.argmax(-1).tolist()  # the executor returns Python tokens too

    executor_s, bare_s = _interleaved_medians_s(
        [lambda: runner.step(segments), bare_step], dev, repeats,
        [None, lambda: cache.crop(-1)],  # the bare model drops the step's token again
    )
    return executor_s, bare_s


def bookkeeping_share(spec, device: str, batch: int, num_tokens: int, block_size: int) -> tuple[float, float, int]:
    model = build_model(config_from_spec(spec), device=device)
    trace = Trace([0.0] * batch, [32] * batch, [num_tokens] * batch)
    cfg = SchedulerConfig(device_kv_tokens=batch * (32 + num_tokens) * 2, host_kv_tokens=0,
                          block_size_tokens=block_size, max_batch_size=batch, max_seq_tokens=32 + num_tokens)
    sched = make_scheduler("mlfq", cfg)
    store = KVStore(kv_layout(model), sched.kv.capacity, cfg.max_seq_tokens, model.device)
    result = Engine(ModelRunner(model, store), store, EngineConfig(time_scale=0)).run(
        list(trace.jobs()), sched, "mlfq", sched.swap_mode)
    it = result.iterations
    full = it[it["batch_size"] == batch]
    periods = full["start_s"].diff().shift(-1)  # start of this iteration to the start of the next
    forward = full["forward_s"]
    steady = periods.notna()
    share = ((periods - forward)[steady] / periods[steady]).median()
    return float(share), float(periods[steady].median()), int(steady.sum())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="tiny-llama", help="catalog model (random weights)")
    ap.add_argument("--device", default="cpu", help="torch device (cpu, cuda, cuda:1, ...).")
    ap.add_argument("--threads", type=int, default=1, help="torch intra-op threads on CPU")
    ap.add_argument("--repeats", type=int, default=50, help="Timed repetitions per cell.")
    ap.add_argument("--block-size", type=int, default=16, help="KV block size in tokens.")
    args = ap.parse_args()
    if args.device == "cpu":
        torch.set_num_threads(args.threads)
    # the catalog's tiny models stop at 512 positions; timing does not depend on the limit
    spec = dataclasses.replace(get_model(args.model), max_position_embeddings=2048)
    print(f"model {spec.name} on {args.device} ({torch.get_num_threads()} threads), block {args.block_size}")
    print(f"{'batch':>5} {'context':>7} {'executor ms':>12} {'bare ms':>9} {'ratio':>6}")
    for batch in (1, 8, 32):
        for context in (128, 1024):
            ex, bare = decode_ratio(spec, args.device, batch, context, args.repeats, args.block_size)
            print(f"{batch:>5} {context:>7} {ex * 1e3:>12.3f} {bare * 1e3:>9.3f} {ex / bare:>6.2f}")
    share, period_s, n = bookkeeping_share(spec, args.device, 16, 200, args.block_size)
    print(f"engine bookkeeping at batch 16: {share * 100:.1f}% of a {period_s * 1e3:.3f} ms loop period "
          f"(median of {n} iterations; target < 5%)")
    if share >= 0.05:
        raise SystemExit("target missed: engine bookkeeping >= 5% of the loop period")


if __name__ == "__main__":
    main()
