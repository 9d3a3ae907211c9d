"""`fastserve profile --tp T --pp P`: measure a tp x pp replica into a profile for the simulator.

Rank 0 drives, the other ranks follow the command stream (`worker.serve_commands`):
- prefill and decode grids: the same points and segments as `executor.profiler.profile_model`
  (decode: one job at the full context, the others one token shorter), each timed on rank 0 as
  one whole distributed iteration: the command, every rank's shard, the all-reduces, and for
  pp > 1 the stage-to-stage sends and the tokens' way back. For pp > 1 the schema wants the
  grids without the stage-boundary transfers (the simulator adds `send_recv` per boundary and
  divides the rest by pp), so (pp - 1) x the measured send/recv of that iteration's activations
  is subtracted; a single micro-batch's simulated latency is then the measured one;
- swap curves: every rank moves its own shard at the same time (a `measure` command), as the
  engine's swaps do; a size's latency is the slowest rank's median, its bytes the replica's;
- `all_reduce` (tp > 1): rank 0's median time to all-reduce an activation of n tokens over its
  tp group; `send_recv` (pp > 1): half the median round trip of n tokens' activations between
  the first ranks of stages 0 and 1;
- KV capacity: CPU: as `profile_model`, per replica byte of KV (the ranks share the RAM);
  CUDA: each rank's free memory over its own KV bytes per token, the smallest rank's; the host
  pool is each rank's half of the RAM split over the node's ranks.
The engine-overhead fit of `profile_model` is not made here (the profile leaves it out).
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable

import torch
import torch.distributed as dist
from tqdm import tqdm

from executor.distributed.comm import Link
from executor.distributed.driver import Driver, PipelineRunner, ReplicatedRunner
from executor.distributed.launch import Session
from executor.distributed.rank import RankModel, StageRunner, store_for
from executor.distributed.replay import RecordingStore, Replica
from executor.kv_store import KVStore
from executor.models import spec_of
from executor.profile_timing import Clock
from executor.profiler import (
    ProfileConfig,
    _check_pools_fit,
    _hardware,
    _kv_capacity,
    _software,
    _sync_for,
)
from executor.runner import ModelRunner, Segment
from executor.transfer import Swapper
from policy import KVCapacity
from profiles import LatencyCurve, LatencyGrid, Profile

COLLECTIVE_TOKENS = (1, 8, 64, 512, 4096)  # activation sizes of the all_reduce / send_recv curves


def _median_s(fn: Callable[[], None], warmups: int, repeats: int, sync: Callable[[], None],
              reset: Callable[[], None] | None = None) -> float:
    samples = []
    for i in range(warmups + repeats):
        sync()
        t = time.perf_counter()
        fn()
        sync()
        if i >= warmups:
            samples.append(time.perf_counter() - t)
        if reset is not None:
            reset()
    return statistics.median(samples)


def measure_swaps(store: KVStore, tokens: tuple[int, ...], warmups: int, repeats: int) -> tuple[list, list]:
    """This rank's median swap-out and swap-in times of one job of each size (its own shard)."""
    swapper, sync, bs = Swapper(store), _sync_for(store.device), store.block_size
    out_s, in_s = [], []
    for n in tokens:
        num_blocks = -(-n // bs)
        store.grow(0, num_blocks)

        def move(direction: str, num_blocks: int = num_blocks) -> None:
            t = swapper.swap_out(0, num_blocks) if direction == "out" else swapper.swap_in(0, num_blocks)
            t.wait()
            (store.end_swap_out if direction == "out" else store.end_swap_in)(0)

        out_s.append(_median_s(lambda: move("out"), warmups, repeats, sync, reset=lambda: move("in")))
        move("out")
        in_s.append(_median_s(lambda: move("in"), warmups, repeats, sync, reset=lambda: move("out")))
        move("in")
        store.drop(0)
    return out_s, in_s


def _activation(rank_model: RankModel, tokens: int, device: torch.device) -> torch.Tensor:
    return torch.zeros((tokens, rank_model.hidden_size), dtype=rank_model.layout.dtype, device=device)


def measure_all_reduce(link: Link, rank_model: RankModel, warmups: int, repeats: int) -> list[float]:
    sync = _sync_for(link.groups.device)
    out = []
    for n in COLLECTIVE_TOKENS:
        x = _activation(rank_model, n, link.groups.device)
        out.append(_median_s(lambda x=x: dist.all_reduce(x, group=link.groups.tp), warmups, repeats, sync))
    return out


def measure_send_recv(link: Link, rank_model: RankModel, warmups: int, repeats: int) -> list[float]:
    """Rank 0 and the first rank of stage 1 bounce activations; rank 0 gets one-way times."""
    topo, sync = link.topo, _sync_for(link.groups.device)
    peer = topo.rank_of(1, 0) if topo.rank == 0 else 0
    out = []
    for n in COLLECTIVE_TOKENS:
        x = _activation(rank_model, n, link.groups.device)
        if topo.rank == 0:
            out.append(_median_s(lambda x=x: (dist.send(x, peer), dist.recv(x, peer)), warmups, repeats, sync) / 2)
        else:
            for _ in range(warmups + repeats):
                dist.recv(x, peer)
                dist.send(x, peer)
    return out


def measure_on_rank(link: Link, rank_model: RankModel, replica: Replica, msg: dict) -> None:
    """A worker's side of a `measure` command (rank 0 runs the same measurement itself)."""
    topo, warmups, repeats = link.topo, msg["warmups"], msg["repeats"]
    if msg["what"] == "swap":
        out_s, in_s = measure_swaps(replica.store, tuple(msg["tokens"]), warmups, repeats)
        device_tokens = host_tokens = None
        if replica.store.device.type == "cuda":
            cfg = ProfileConfig(**msg["config"])
            device_tokens, host_tokens, _ = _kv_capacity(rank_model.model, replica.store, cfg,
                                                         rank_model.layout.bytes_per_token)
        link.send_message({"out_s": out_s, "in_s": in_s, "device_tokens": device_tokens,
                           "host_tokens": host_tokens}, [0])
    elif msg["what"] == "all_reduce" and topo.tp > 1:
        measure_all_reduce(link, rank_model, warmups, repeats)
    elif msg["what"] == "send_recv" and topo.rank == topo.rank_of(1, 0):
        measure_send_recv(link, rank_model, warmups, repeats)


def profile_replica(session: Session, name: str, cfg: ProfileConfig, generated_by: str,
                    hardware_name: str | None = None, progress: bool = True) -> Profile:
    """Measure the replica of `session` (rank 0) into a `Profile` with its tp and pp."""
    topo, link, rank_model = session.topo, session.link, session.rank_model
    model, device = rank_model.model, session.groups.device
    spec = spec_of(model, name)
    cfg = cfg.capped(spec.max_position_embeddings)
    bs = cfg.block_size_tokens
    blocks = lambda tokens: -(-tokens // bs)  # noqa: E731
    pool_blocks = max(cfg.prefill_batch_sizes[-1] * blocks(cfg.prompt_tokens[-1]),
                      cfg.decode_batch_sizes[-1] * blocks(cfg.context_tokens[-1]), blocks(cfg.swap_tokens[-1]))
    capacity = KVCapacity(pool_blocks, blocks(cfg.swap_tokens[-1]), bs)
    block_bytes = bs * rank_model.layout.bytes_per_token  # this rank's shard
    # ranks on the CPU share its RAM; on CUDA each rank holds a like shard on a like device of
    # its own, so rank 0's free memory stands for every rank's
    ranks_here = topo.tp * topo.pp if device.type == "cpu" else 1
    _check_pools_fit(device, pool_blocks * block_bytes * ranks_here,
                     capacity.host_blocks * block_bytes * ranks_here, cfg)
    max_seq = max(cfg.prompt_tokens[-1], cfg.context_tokens[-1], cfg.swap_tokens[-1])
    driver, store = Driver(link), store_for(rank_model, capacity, max_seq)
    recording = RecordingStore(store)
    driver.send({"kind": "run", "max_seq_tokens": max_seq,
                 "capacity": [capacity.device_blocks, capacity.host_blocks, capacity.block_size_tokens]})
    if topo.pp == 1:
        step = ReplicatedRunner(driver, ModelRunner(model, store), recording).step
    else:
        pipeline = PipelineRunner(driver, StageRunner(rank_model, store), recording)

        def step(segs: list[Segment]) -> list[int]:
            pipeline.launch(segs)
            return pipeline.step(segs)
    warmups, repeats = cfg.warmups, cfg.max_repeats
    sync = _sync_for(device)
    num_points = (len(cfg.prefill_batch_sizes) * len(cfg.prompt_tokens)
                  + len(cfg.decode_batch_sizes) * len(cfg.context_tokens))
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    vocab = model.config.vocab_size
    with tqdm(total=num_points + 3, desc=f"profile {name} tp{topo.tp} pp{topo.pp}", unit="point",
              disable=not progress) as bar:
        all_reduce = send_recv = None
        if topo.pp > 1:  # first: the grids subtract it
            driver.send({"kind": "measure", "what": "send_recv", "warmups": warmups, "repeats": repeats})
            send_recv = measure_send_recv(link, rank_model, warmups, repeats)
        bar.update(1)
        if topo.tp > 1:
            driver.send({"kind": "measure", "what": "all_reduce", "warmups": warmups, "repeats": repeats})
            all_reduce = measure_all_reduce(link, rank_model, warmups, repeats)
        bar.update(1)
        activation_bytes = rank_model.hidden_size * rank_model.layout.dtype.itemsize
        curve_bytes = tuple(n * activation_bytes for n in COLLECTIVE_TOKENS)
        clock = Clock(cfg, num_points, sync, bar)

        def iteration_s(batch: int, tokens: int, prefill: bool) -> float:
            for j in range(batch):
                recording.grow(j, blocks(tokens))
            segs = [Segment(j, [(j + i) % vocab for i in range(tokens)], 0) if prefill
                    else Segment(j, [j % vocab], tokens - 1 - (j > 0 and tokens > 1)) for j in range(batch)]
            t = clock.median_s(lambda: step(segs))
            for j in range(batch):
                recording.drop(j)
            if send_recv is None:
                return t
            boundary = _interp(curve_bytes, send_recv, (batch * tokens if prefill else batch) * activation_bytes)
            return max(t - (topo.pp - 1) * boundary, 0.5 * t)  # never below half: noise guard

        prefill = tuple(tuple(iteration_s(b, n, True) for n in cfg.prompt_tokens) for b in cfg.prefill_batch_sizes)
        decode = tuple(tuple(iteration_s(b, c, False) for c in cfg.context_tokens) for b in cfg.decode_batch_sizes)
        driver.send({"kind": "measure", "what": "swap", "tokens": list(cfg.swap_tokens), "warmups": warmups,
                     "repeats": repeats, "ops": recording.take_ops(), "config": _config_json(cfg)})
        out_s, in_s = measure_swaps(store, cfg.swap_tokens, warmups, repeats)
        replies = [link.recv_reply(rank) for rank in range(1, topo.world_size)]
        bar.update(1)
    for reply in replies:  # the ranks move their shards in parallel: the slowest one counts
        out_s = [max(a, b) for a, b in zip(out_s, reply["out_s"], strict=True)]
        in_s = [max(a, b) for a, b in zip(in_s, reply["in_s"], strict=True)]
    driver.send({"kind": "end", "ops": recording.take_ops()})
    replica_bpt = rank_model.replica_layout.bytes_per_token
    device_tokens, host_tokens, note = _capacity(rank_model, store, cfg, replies, topo.world_size)
    swap_bytes = tuple(t * replica_bpt for t in cfg.swap_tokens)
    return Profile(
        model=spec, hardware={**_hardware(device, hardware_name), "num_devices": topo.world_size},
        software=_software(), tp=topo.tp, pp=topo.pp,
        prefill=LatencyGrid(cfg.prefill_batch_sizes, cfg.prompt_tokens, prefill),
        decode=LatencyGrid(cfg.decode_batch_sizes, cfg.context_tokens, decode),
        swap_out=LatencyCurve(swap_bytes, tuple(out_s)), swap_in=LatencyCurve(swap_bytes, tuple(in_s)),
        kv_bytes_per_token=replica_bpt, device_kv_tokens=device_tokens, host_kv_tokens=host_tokens,
        source="measured", generated_by=generated_by, mixed_batch="fused", decode_context="max",
        transfers="async" if torch.device(device).type == "cuda" else "sync",
        send_recv=LatencyCurve(curve_bytes, tuple(send_recv)) if send_recv else None,
        all_reduce=LatencyCurve(curve_bytes, tuple(all_reduce)) if all_reduce else None,
        notes={
            "method": f"executor, {topo.tp} x {topo.pp} ranks on torch.distributed ({dist.get_backend()}); "
                      "grids: one whole distributed iteration timed on rank 0, minus (pp - 1) stage "
                      f"transfers; median of repetitions after {cfg.warmups} warm-ups, at most "
                      f"{cfg.max_repeats}, budget {cfg.budget_s:g} s; swaps: every rank its shard at once, "
                      "the slowest rank",
            "kv_capacity": note, "block_size_tokens": bs, "torch_threads": torch.get_num_threads(),
        },
    )


def _interp(xs: tuple[int, ...], ys: list[float], x: float) -> float:
    """Piecewise linear, extrapolated from the end segments."""
    i = max(1, min(len(xs) - 1, next((k for k, v in enumerate(xs) if v >= x), len(xs) - 1)))
    x0, x1, y0, y1 = xs[i - 1], xs[i], ys[i - 1], ys[i]
    return max(0.0, y0 + (y1 - y0) * (x - x0) / (x1 - x0))


def _config_json(cfg: ProfileConfig) -> dict:
    return {"memory_utilization": cfg.memory_utilization, "cpu_pool_fraction": cfg.cpu_pool_fraction}


def _capacity(rank_model: RankModel, store: KVStore, cfg: ProfileConfig, replies: list[dict],
              world_size: int) -> tuple[int, int, str]:
    if store.device.type != "cuda":
        return _kv_capacity(rank_model.model, store, cfg, rank_model.replica_layout.bytes_per_token)
    mine = _kv_capacity(rank_model.model, store, cfg, rank_model.layout.bytes_per_token)
    device = min([mine[0]] + [r["device_tokens"] for r in replies])
    host = min([mine[1]] + [r["host_tokens"] for r in replies]) // world_size
    return device, host, (f"CUDA, per rank: {mine[2]}; the replica: the smallest rank's device tokens, "
                          f"and its host tokens / {world_size} ranks (one node's RAM is shared)")
