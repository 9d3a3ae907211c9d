"""`fastserve profile`: measure a model on this machine, on the executor's own code path.

Every number comes from the same `ModelRunner.step` / `Swapper` calls the engine makes:
- prefill grid: one iteration prefilling `b` prompts of `n` tokens each;
- prefill_context grid: one iteration prefilling one chunk of `n` tokens of a job whose first
  `c` tokens' KV is already in the pool (chunked prefill: the chunk attends to it too); the
  context is written by an untimed prefill first, and each timed step rewrites the same chunk;
- mixed_chunk grid: what one chunk of `n` tokens after `c` adds to a decode iteration of
  `mixed_decode_jobs` jobs at `mixed_decode_context_tokens` (chunked prefill beside running
  decodes, the bulk of a chunked run): from `mixed_repeats` differences (swept like the other
  grids: the mean of each visit's median), each the
  decode pass with the chunk minus the decode pass alone, timed back to back, so that the
  machine's speed drift cancels from each (priced as a prefill grid point minus a fixed cost
  measured at another moment, the chunk's ~0.2 ms came out anywhere in -0.02-0.68 ms). Its
  chunk axis is 1 and the prefill_context grid's: a one-token chunk runs as a decode
  (executor/runner.py), and the chunks a budget's leftover makes are short;
- decode grid: one decode iteration of `b` jobs whose longest context is `c` tokens (the KV of
  the first c - 1 tokens sits in the pool, the new token's is written by the step). One job is
  at c and the others at c - 1: the pooled attention pads every job to the longest context and
  masks the padding whenever contexts differ, which they almost always do in serving; so the
  grid times that masked path and the profile says `decode_context = "max"` (the cost model
  looks decodes up at their longest context; at the mean it under-priced uneven batches by up
  to ~25 % on a tiny CPU model);
- engine overhead: the engine's own time outside the forward pass, measured by running the
  real engine with each policy of `OverheadConfig.policies` (executor/overhead.py), recorded as
  `engine_overhead` (pooled) and `engine_overhead_by_policy`. The same runs calibrate the grids
  to the engine (executor/calibration.py): `forward_scale`, the engine's typical (median)
  forward time of reused plans over the grids' prediction (tight-loop medians miss the caches
  the engine's own work evicts: ~3-5 % on tiny CPU models), `forward_scale_by_batch`, the same
  by batch size (the slowdown grows with the batch), `forward_noise`, how those passes
  spread around it (the mean, which the JCT sums, is ~2 % higher), `first_pass_s`, how much
  longer a new plan's first pass takes, and `mixed_shared_s`, what a mixed pass's prefill and
  decode parts share (a prefill joining running decodes, right after its admission: ~0.25 ms of
  a ~0.5 ms fixed cost on tiny-llama, CPU, where an extrapolation of the decode grid said all
  of it);
- swap curve: moving one job's KV of k tokens device -> host and back (CPU: synchronous
  copies; CUDA: the copy streams, timed to the event);
- KV capacity: CUDA: (total memory x utilization - weights - peak activations seen while
  profiling) / KV bytes per token; CPU: the device pool and the host pool each get
  `cpu_pool_fraction` of the RAM available now. The formulas are written into `notes`.
Each point: `warmups` untimed runs, then repetitions up to `max_repeats`, fewer when the
`budget_s` would be exceeded (never fewer than one), and the median. A tqdm bar shows progress.

The iteration grids are measured in `sweeps` interleaved sweeps, a point's value the mean of
its visits' medians (executor/profile_timing.py).
"""

from __future__ import annotations

import os
import platform
import re
from collections.abc import Callable
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

import torch
from tqdm import tqdm

from executor.calibration import calibrate
from executor.kv_store import KVStore
from executor.models import kv_layout, spec_of
from executor.overhead import OverheadConfig, measure_engine_overhead
from executor.profile_timing import Clock, Probe, Visit, swept_times
from executor.runner import ModelRunner, Segment
from executor.transfer import Swapper
from policy import KVCapacity
from profiles import LatencyCurve, LatencyGrid, Profile, cost_model


@dataclass(frozen=True)
class ProfileConfig:
    prefill_batch_sizes: tuple[int, ...] = (1, 2, 4, 8)
    prompt_tokens: tuple[int, ...] = (1, 8, 32, 64, 128, 256, 512)
    decode_batch_sizes: tuple[int, ...] = (1, 2, 4, 8, 16, 32)
    context_tokens: tuple[int, ...] = (2, 16, 64, 128, 256, 512, 1024)
    swap_tokens: tuple[int, ...] = (16, 64, 256, 1024, 4096)
    chunk_tokens: tuple[int, ...] = (8, 32, 128)  # prefill_context grid: chunk lengths
    chunk_context_tokens: tuple[int, ...] = (0, 64, 256, 1024)  # and KV before them (from 0)
    mixed_decode_jobs: int = 8  # mixed_chunk grid: the decode pass a chunk joins
    mixed_decode_context_tokens: int = 64
    # samples per mixed_chunk point, each a difference of two passes: a chunk's share of the
    # pass is small (~0.2 of ~1.2 ms on tiny-opt, CPU), so its median needs many (~2 s in all)
    mixed_repeats: int = 60
    block_size_tokens: int = 16
    warmups: int = 2
    max_repeats: int = 7  # per point, over all sweeps
    sweeps: int = 3  # of the iteration grids, interleaved (see the module docstring)
    budget_s: float = 120.0
    memory_utilization: float = 0.9  # CUDA
    cpu_pool_fraction: float = 0.25  # CPU: of available RAM, for each of the two pools
    overhead: OverheadConfig | None = OverheadConfig()  # None: no engine-overhead runs

    def __post_init__(self) -> None:
        for name in ("prefill_batch_sizes", "prompt_tokens", "decode_batch_sizes", "context_tokens", "swap_tokens"):
            axis = getattr(self, name)
            if len(axis) < 2 or any(v <= 0 for v in axis) or list(axis) != sorted(set(axis)):
                raise ValueError(f"{name} must hold at least 2 increasing positive integers, got {axis}")
        ctx = self.chunk_context_tokens
        if len(self.chunk_tokens) < 2 or any(v <= 0 for v in self.chunk_tokens) or \
                list(self.chunk_tokens) != sorted(set(self.chunk_tokens)):
            raise ValueError(f"chunk_tokens must hold at least 2 increasing positive integers, got {self.chunk_tokens}")
        if len(ctx) < 2 or ctx[0] != 0 or list(ctx) != sorted(set(ctx)):
            raise ValueError(f"chunk_context_tokens must hold at least 2 increasing integers from 0, got {ctx}")
        if self.mixed_decode_jobs < 1 or self.mixed_decode_context_tokens < 2 or self.mixed_repeats < 1:
            raise ValueError("mixed_decode_jobs and mixed_repeats must be >= 1, mixed_decode_context_tokens >= 2")
        if self.block_size_tokens <= 0 or self.warmups < 0 or self.max_repeats < 1 or self.sweeps < 1:
            raise ValueError("block_size_tokens, max_repeats and sweeps must be positive, warmups >= 0")
        if not self.budget_s > 0:
            raise ValueError(f"budget_s must be > 0, got {self.budget_s}")
        if not 0 < self.memory_utilization <= 1 or not 0 < self.cpu_pool_fraction <= 0.5:
            raise ValueError("memory_utilization must be in (0, 1] and cpu_pool_fraction in (0, 0.5]")

    def capped(self, max_tokens: int) -> ProfileConfig:
        """The token axes without points past the model's context limit."""
        from dataclasses import replace

        prompt = tuple(n for n in self.prompt_tokens if n <= max_tokens)
        context = tuple(c for c in self.context_tokens if c <= max_tokens)
        chunks = tuple(n for n in self.chunk_tokens if n <= max_tokens // 2)
        chunk_context = tuple(c for c in self.chunk_context_tokens if chunks and c + chunks[-1] <= max_tokens)
        if len(prompt) < 2 or len(context) < 2 or len(chunks) < 2 or len(chunk_context) < 2:
            raise ValueError(f"fewer than 2 grid points fit the model's {max_tokens}-token context")
        overhead = self.overhead
        if overhead is not None:
            # the runs batch up to b + ceil(b / 2) jobs: keep them on the decode grid
            fits = tuple(b for b in overhead.batch_sizes if b + (b + 1) // 2 <= self.decode_batch_sizes[-1])
            overhead = replace(overhead, block_size_tokens=self.block_size_tokens, batch_sizes=fits or (1,))
        return replace(self, prompt_tokens=prompt, context_tokens=context, chunk_tokens=chunks,
                       chunk_context_tokens=chunk_context, overhead=overhead,
                       mixed_decode_context_tokens=min(self.mixed_decode_context_tokens, max_tokens))


def _mixed_chunk_tokens(cfg: ProfileConfig) -> tuple[int, ...]:
    """The mixed_chunk grid's chunk axis: 1 (a one-token chunk runs as a decode), then the
    prefill_context grid's."""
    return tuple(sorted({1, *cfg.chunk_tokens}))


def _sync_for(device: torch.device) -> Callable[[], None]:
    return (lambda: torch.cuda.synchronize(device)) if device.type == "cuda" else (lambda: None)


def profile_model(model, name: str, cfg: ProfileConfig, generated_by: str, hardware_name: str | None = None,
                  progress: bool = True) -> Profile:
    """Measure `model` (built by `executor.models.build_model`) into a `Profile` (tp = pp = 1)."""
    device = model.device
    spec = spec_of(model, name)
    cfg = cfg.capped(spec.max_position_embeddings)
    layout = kv_layout(model)
    bs = cfg.block_size_tokens
    blocks = lambda tokens: -(-tokens // bs)  # noqa: E731
    pool_blocks = max(
        cfg.prefill_batch_sizes[-1] * blocks(cfg.prompt_tokens[-1]),
        cfg.decode_batch_sizes[-1] * blocks(cfg.context_tokens[-1]),
        blocks(cfg.swap_tokens[-1]),
        blocks(cfg.chunk_tokens[-1] + cfg.chunk_context_tokens[-1])
        + cfg.mixed_decode_jobs * blocks(cfg.mixed_decode_context_tokens),
    )
    _check_pools_fit(device, pool_blocks * bs * layout.bytes_per_token,
                     blocks(cfg.swap_tokens[-1]) * bs * layout.bytes_per_token, cfg)
    store = KVStore(layout, KVCapacity(pool_blocks, blocks(cfg.swap_tokens[-1]), bs),
                    max(cfg.prompt_tokens[-1], cfg.context_tokens[-1], cfg.swap_tokens[-1],
                        cfg.chunk_tokens[-1] + cfg.chunk_context_tokens[-1]), device)
    runner, swapper, sync = ModelRunner(model, store), Swapper(store), _sync_for(device)
    mixed_chunks = _mixed_chunk_tokens(cfg)
    grid_points = (len(cfg.prefill_batch_sizes) * len(cfg.prompt_tokens)
                   + len(cfg.decode_batch_sizes) * len(cfg.context_tokens)
                   + len(cfg.chunk_tokens) * len(cfg.chunk_context_tokens)
                   + len(mixed_chunks) * len(cfg.chunk_context_tokens))
    num_points = (cfg.sweeps * grid_points + 2 * len(cfg.swap_tokens)
                  + (cfg.overhead.num_runs if cfg.overhead is not None else 0))
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    vocab = model.config.vocab_size
    num_runs = cfg.overhead.num_runs if cfg.overhead is not None else 0
    with tqdm(total=num_points - num_runs, desc=f"profile {name}", unit="point", disable=not progress) as bar:
        clock = Clock(cfg, num_points, sync, bar)

        def iteration_probe(batch: int, tokens: int, prefill: bool) -> Probe:
            def setup() -> Visit:
                for j in range(batch):
                    store.grow(j, blocks(tokens))
                # decode: job 0 at the full context, the others one token shorter (masked path)
                segs = [Segment(j, [(j + i) % vocab for i in range(tokens)], 0) if prefill
                        else Segment(j, [j % vocab], tokens - 1 - (j > 0 and tokens > 1)) for j in range(batch)]

                def clean_up() -> None:
                    for j in range(batch):
                        store.drop(j)
                return Visit(lambda: runner.step(segs), clean_up)
            return Probe(setup, cfg.max_repeats)

        def chunk_probe(n: int, c: int) -> Probe:
            def setup() -> Visit:
                store.grow(0, blocks(c + n))
                tokens = [i % vocab for i in range(c + n)]
                if c:
                    runner.step([Segment(0, tokens[:c], 0)])  # the earlier chunks' KV, untimed
                return Visit(lambda: runner.step([Segment(0, tokens[c:], c)]), lambda: store.drop(0))
            return Probe(setup, cfg.max_repeats)

        def mixed_probe(n: int, c: int) -> Probe:
            """The mixed_chunk grid's point: the decode pass with the chunk (job `jobs`) minus
            the decode pass alone."""
            jobs, context = cfg.mixed_decode_jobs, cfg.mixed_decode_context_tokens

            def setup() -> Visit:
                for j in range(jobs):
                    store.grow(j, blocks(context))
                store.grow(jobs, blocks(c + n))
                tokens = [i % vocab for i in range(c + n)]
                if c:
                    runner.step([Segment(jobs, tokens[:c], 0)])  # the earlier chunks' KV, untimed
                decodes = [Segment(j, [j % vocab], context - 1 - (j > 0)) for j in range(jobs)]
                mixed = [*decodes, Segment(jobs, tokens[c:], c)]

                def clean_up() -> None:
                    for j in range(jobs + 1):
                        store.drop(j)
                return Visit(lambda: runner.step(mixed), clean_up, base=lambda: runner.step(decodes))
            return Probe(setup, cfg.mixed_repeats)

        probes = {**{("prefill", b, n): iteration_probe(b, n, True)
                     for b in cfg.prefill_batch_sizes for n in cfg.prompt_tokens},
                  **{("decode", b, c): iteration_probe(b, c, False)
                     for b in cfg.decode_batch_sizes for c in cfg.context_tokens},
                  **{("chunk", n, c): chunk_probe(n, c) for n in cfg.chunk_tokens for c in cfg.chunk_context_tokens},
                  **{("mixed", n, c): mixed_probe(n, c) for n in mixed_chunks for c in cfg.chunk_context_tokens}}
        medians = swept_times(clock, probes, cfg.sweeps, cfg.warmups)
        prefill = tuple(tuple(medians["prefill", b, n] for n in cfg.prompt_tokens) for b in cfg.prefill_batch_sizes)
        decode = tuple(tuple(medians["decode", b, c] for c in cfg.context_tokens) for b in cfg.decode_batch_sizes)
        chunked = tuple(tuple(medians["chunk", n, c] for c in cfg.chunk_context_tokens) for n in cfg.chunk_tokens)
        # a marginal lost in the noise (<= 0) is kept at 1 us: the schema wants latencies > 0
        added = tuple(tuple(max(medians["mixed", n, c], 1e-6) for c in cfg.chunk_context_tokens)
                      for n in mixed_chunks)
        out_s, in_s = [], []
        for tokens in cfg.swap_tokens:
            store.grow(0, blocks(tokens))

            def move(direction: str, num_blocks: int = blocks(tokens)) -> None:
                t = swapper.swap_out(0, num_blocks) if direction == "out" else swapper.swap_in(0, num_blocks)
                t.wait()
                (store.end_swap_out if direction == "out" else store.end_swap_in)(0)

            out_s.append(clock.median_s(lambda: move("out"), reset=lambda: move("in")))  # ends on device
            move("out")
            in_s.append(clock.median_s(lambda: move("in"), reset=lambda: move("out")))  # ends on host
            move("in")
            store.drop(0)
        common = dict(
            model=spec, hardware=_hardware(device, hardware_name), software=_software(), tp=1, pp=1,
            prefill=LatencyGrid(cfg.prefill_batch_sizes, cfg.prompt_tokens, prefill),
            decode=LatencyGrid(cfg.decode_batch_sizes, cfg.context_tokens, decode),
            prefill_context=LatencyGrid(cfg.chunk_tokens, cfg.chunk_context_tokens, chunked),
            mixed_chunk=LatencyGrid(mixed_chunks, cfg.chunk_context_tokens, added),
            swap_out=LatencyCurve(tuple(t * layout.bytes_per_token for t in cfg.swap_tokens), tuple(out_s)),
            swap_in=LatencyCurve(tuple(t * layout.bytes_per_token for t in cfg.swap_tokens), tuple(in_s)),
            kv_bytes_per_token=layout.bytes_per_token, source="measured", generated_by=generated_by,
            mixed_batch="fused", decode_context="max",
            # CPU copies run in the engine's thread (executor/transfer.py): they block compute
            transfers="async" if torch.device(device).type == "cuda" else "sync")
        overhead = engine_rows = None
        # said in the profile, so that a reader of the JSON knows the simulator prices its forward
        # passes alone
        overhead_note = "not measured (fastserve profile --overhead-rounds 0)"
        policy_overhead = {}
        if cfg.overhead is not None:
            # the grids so far are the cost estimate of the policies that need one (skip-join)
            estimate = cost_model(Profile(**common, device_kv_tokens=1, host_kv_tokens=0))
            # a bar of their own: each run serves requests through the live engine, so its ETA
            # is not the grid points' (on a 7B model on one H200: 10-30 s a run)
            with tqdm(total=num_runs, desc=f"engine overhead {name} (--overhead-rounds, --overhead-policy)",
                      unit="run", disable=not progress) as runs_bar:
                policy_overhead, overhead, overhead_note, engine_rows = measure_engine_overhead(
                    model, cfg.overhead, decode[0][0], on_run=lambda: runs_bar.update(1), cost=estimate)
    device_tokens, host_tokens, capacity_note = _kv_capacity(model, store, cfg, layout.bytes_per_token)
    profile = Profile(
        **common, device_kv_tokens=device_tokens, host_kv_tokens=host_tokens, overhead=overhead,
        policy_overhead=policy_overhead,
        notes={
            "method": "executor ModelRunner.step / Swapper on this machine; median of repetitions after "
                      f"{cfg.warmups} warm-ups, at most {cfg.max_repeats} repetitions (iteration grids: over "
                      f"{cfg.sweeps} interleaved sweeps, the mean of each visit's median), budget {cfg.budget_s:g} s",
            "kv_capacity": capacity_note, "block_size_tokens": bs, "torch_threads": torch.get_num_threads(),
            **({"engine_overhead": overhead_note} if overhead_note else {}),
        },
    )
    return calibrate(profile, engine_rows) if engine_rows is not None else profile


def _check_pools_fit(device: torch.device, device_bytes: int, host_bytes: int, cfg: ProfileConfig) -> None:
    """Refuse, before allocating them, KV pools the grid needs but the machine lacks."""
    gib = 2 ** 30
    if device.type == "cuda":
        free = torch.cuda.mem_get_info(device)[0]
        where = f"free on {device}"
    else:
        free, where = _available_ram_bytes(), "of available RAM"
        device_bytes += host_bytes  # both pools live in RAM
    if device_bytes > free:
        raise ValueError(
            f"the grid needs {device_bytes / gib:.1f} GiB of KV (decode {cfg.decode_batch_sizes[-1]} jobs x "
            f"{cfg.context_tokens[-1]} tokens, prefill {cfg.prefill_batch_sizes[-1]} x {cfg.prompt_tokens[-1]}, "
            f"swap {cfg.swap_tokens[-1]}), more than the {free / gib:.1f} GiB {where}; use smaller "
            "--decode-batch-sizes, --context-tokens, --prefill-batch-sizes, --prompt-tokens or --swap-tokens")


def _available_ram_bytes() -> int:
    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_AVPHYS_PAGES")


def _kv_capacity(model, store: KVStore, cfg: ProfileConfig, bytes_per_token: int) -> tuple[int, int, str]:
    ram = _available_ram_bytes() + store.host_pool.numel() * store.host_pool.element_size()
    if model.device.type != "cuda":
        ram += store.device_pool.numel() * store.device_pool.element_size()
        tokens = int(ram * cfg.cpu_pool_fraction) // bytes_per_token
        return tokens, tokens, (f"CPU: device and host pools each {cfg.cpu_pool_fraction:g} x available RAM "
                                f"({ram} bytes) / {bytes_per_token} bytes per token")
    device = model.device
    total = torch.cuda.mem_get_info(device)[1]
    weights = sum(p.numel() * p.element_size() for p in model.parameters())
    pool = store.device_pool.numel() * store.device_pool.element_size()
    activations = max(0, torch.cuda.max_memory_allocated(device) - weights - pool)
    device_bytes = int(total * cfg.memory_utilization) - weights - activations
    if device_bytes <= bytes_per_token:
        raise ValueError(f"no GPU memory left for KV: {total} total, {weights} weights, {activations} activations")
    host_tokens = int(ram * 0.5) // bytes_per_token
    note = (f"CUDA: ({cfg.memory_utilization:g} x {total} total - {weights} weights - {activations} peak "
            f"activations) / {bytes_per_token} bytes per token; host: 0.5 x available RAM ({ram} bytes), pinned")
    return device_bytes // bytes_per_token, host_tokens, note


def _hardware(device: torch.device, name: str | None) -> dict:
    if device.type == "cuda":
        props = torch.cuda.get_device_properties(device)
        default = props.name.lower().replace("nvidia ", "").replace(" ", "-")
        return {"name": name or default, "device": props.name, "memory_bytes": props.total_memory,
                "cuda": torch.version.cuda, "host_cpu": platform.processor() or platform.machine()}
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next((line.split(":", 1)[1].strip() for line in f if line.startswith("model name")), cpu)
    except OSError:
        pass
    return {"name": name or "cpu", "device": cpu, "num_cpus": os.cpu_count(),
            "torch_threads": torch.get_num_threads(), "memory_bytes": os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")}


def _software() -> dict:
    versions = {"python": platform.python_version()}
    for pkg in ("fastserve", "torch", "transformers", "numpy"):
        try:
            versions[pkg] = metadata.version(pkg)
        except metadata.PackageNotFoundError:
            versions[pkg] = _source_tree_version() if pkg == "fastserve" else "unknown"
    return versions


def _source_tree_version() -> str:
    """fastserve run from a checkout it was not installed from (PYTHONPATH, as on a borrowed GPU
    machine): the version its pyproject.toml declares."""
    pyproject = Path(__file__).resolve().parents[1] / "pyproject.toml"
    try:
        found = re.search(r'^version = "([^"]+)"', pyproject.read_text(), re.MULTILINE)
    except OSError:
        found = None
    return f"{found.group(1)} (source tree)" if found else "unknown"
