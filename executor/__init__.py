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
    serve.py      model + store + engine for one run configuration (what `fastserve serve` uses)
Tensor parallelism (a later issue) shards the model from the outside and gives each rank its
own `KVStore` of its KV heads; rank 0 runs the policy and the engine's plan translation.
"""
