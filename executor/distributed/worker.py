"""A worker rank (every rank but 0): replay rank 0's command stream on this rank's shard.

Commands arrive from this rank's upstream (`Topology.upstream`) and are passed on downstream
before they are acted on, so every rank sees the same stream in the same order:
    run       a policy's run starts: build this rank's KV store with the run's capacity
    step      apply the KV store ops, then this rank's part of one forward pass:
              pp = 1: the whole (tensor-sharded) model, in step with the other tp ranks
              pp > 1: receive the hidden state from the previous stage (not on stage 0), run the
              stage, send the hidden state on, or on the last stage send the tokens to rank 0
    end       apply the last ops (the store's reset) and drop the store
    measure   a profiling measurement (`executor.distributed.profile`)
    shutdown  leave the loop
With `digest` set (rank 0's `check_invariants`), the rank checks that its store holds the same
blocks as rank 0's after the ops, and fails the run otherwise.

`python -m executor.distributed.worker SPEC` is how `fastserve serve/profile --tp/--pp` starts a
local worker (`executor.distributed.launch`); under torchrun the CLI calls `serve_commands`.
"""

from __future__ import annotations

import json
import sys

import torch

from executor.distributed.comm import DistributedError, Link
from executor.distributed.rank import (
    RankModel,
    StageRunner,
    num_packed_tokens,
    segments_from_wire,
    store_for,
)
from executor.distributed.replay import Replica, digest
from executor.runner import ModelRunner
from policy import KVCapacity


def serve_commands(link: Link, rank_model: RankModel) -> None:
    topo = link.topo
    replica: Replica | None = None
    runner: ModelRunner | None = None
    while True:
        msg = link.recv_message(topo.upstream, forward_to=topo.downstream)
        kind = msg["kind"]
        if kind == "run":
            replica = Replica(store_for(rank_model, KVCapacity(*msg["capacity"]), msg["max_seq_tokens"]))
            runner = StageRunner(rank_model, replica.store) if topo.pp > 1 else ModelRunner(rank_model.model, replica.store)
        if msg.get("ops"):
            replica.apply(msg["ops"])
        if msg.get("digest") is not None and digest(replica.store) != msg["digest"]:
            raise DistributedError(f"rank {topo.rank}: KV store differs from rank 0's after the same operations")
        if kind == "step":
            _step(link, rank_model, runner, segments_from_wire(msg["segments"]))
        elif kind == "end":
            replica = runner = None
        elif kind == "measure":
            from executor.distributed.profile import measure_on_rank

            measure_on_rank(link, rank_model, replica, msg)
        elif kind == "shutdown":
            link.drain()
            return
        elif kind != "run":
            raise DistributedError(f"rank {topo.rank}: unknown command {kind!r}")
        link.reap()


def _step(link: Link, rank_model: RankModel, runner: ModelRunner, segments) -> None:
    topo = link.topo
    if topo.pp == 1:  # tensor parallel only: the all-reduces pair with the other tp ranks
        runner.step(segments)
        return
    hidden = None
    if not topo.is_first_stage:
        shape = (1, num_packed_tokens(segments), rank_model.hidden_size)
        hidden = link.recv_tensor(shape, rank_model.layout.dtype, topo.upstream)
    out = runner.forward(segments, hidden)
    if not topo.is_last_stage:
        link.send_tensor(out, topo.next_stage_rank)
    elif topo.tp_rank == 0:
        link.send_tensor(torch.tensor(runner.sample(segments, out), dtype=torch.int64), 0, control=True)


def main(argv: list[str] | None = None) -> int:
    """Entry point of a spawned worker; prints one line and exits 1 on failure."""
    from executor.distributed.launch import WorkerSpec, run_spawned_worker

    argv = sys.argv[1:] if argv is None else argv
    spec = WorkerSpec.from_json(json.loads(argv[0]))
    try:
        run_spawned_worker(spec)
    except KeyboardInterrupt:
        return 130
    except Exception as exc:  # noqa: BLE001 - one line on stderr; rank 0 reports the run's error
        print(f"fastserve worker rank {spec.rank}: {type(exc).__name__}: {exc}", file=sys.stderr, flush=True)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
