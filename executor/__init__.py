"""The live executor: real forward passes of a transformers model over a paged KV pool.

Driven by the same `policy` schedulers as the simulator. Pieces, one file each:
    models.py     build a model (catalog config with seeded random weights, or a local checkpoint)
    attention.py  attention over the KV pool, plugged into transformers' AttentionInterface
    kv_store.py   device pool + host swap pool, per-job blocks, capacity checks, audit
    blocks.py     physical block allocation
    transfer.py   swap copies (synchronous on CPU; copy streams + events on CUDA)
    runner.py     one packed forward pass over prefills and decodes, greedy sampling
    engine.py     wall-clock trace replay through one policy
    records.py    per-iteration rows and per-request spans
    profiler.py   `fastserve profile`: measured latency grids, swap curves, KV capacity
    overhead.py   the engine's own time per iteration and per plan, measured by running it per policy
    calibration.py  the grids fitted to the engine's passes: typical scale, clock noise, first pass
    serve.py      model + store + engine for one run configuration (what `fastserve serve` uses)
    distributed/  tensor and pipeline parallelism on torch.distributed: the model sharded from
                  the outside, each rank a `KVStore` of its shard, rank 0 running the policy and
                  the engine, the other ranks replaying its store operations and forward passes
"""
