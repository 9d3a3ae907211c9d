"""Tensor and pipeline parallelism for the live executor, on torch.distributed.

A replica is tp x pp processes (gloo on CPU, NCCL on CUDA). Rank 0 runs the policy and the
engine; every other rank replays rank 0's command stream on its own shard. One file each:
    topology.py  ranks -> (stage, tp position), the command tree, the layer split
    parts.py     where each transformers family keeps its layers, embeddings and norms
    tp.py        Megatron-style tensor parallelism applied from outside the model code
    pp.py        a pipeline stage cut from an unmodified model
    rank.py      one rank's model shard, KV layout and forward pass
    comm.py      process groups, commands, activations, tokens; failures as DistributedError
    replay.py    rank 0's KV store ops, recorded and replayed on every rank
    driver.py    rank 0's runners: tensor parallel (lock step) and pipelined (launch / land)
    pipeline.py  rank 0's engine with several micro-batches in flight (pp > 1)
    worker.py    the loop of every other rank, and the spawned worker's entry point
    launch.py    torchrun, or spawning local workers on loopback; shutdown and failures
    server.py    `LiveServer`'s interface for a replica (what `fastserve serve --tp/--pp` uses)
    profile.py   `fastserve profile --tp/--pp`: grids, swaps, all-reduce and send/recv costs
"""
