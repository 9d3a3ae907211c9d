"""NCCL paths: TP = 2 and PP = 2 over two GPUs (fp32) give the single-GPU executor's tokens.

Activations and all-reduces go over NCCL, commands and tokens over gloo, swaps over each GPU's
copy streams into its pinned host pool. Skipped without two CUDA devices.
"""

from __future__ import annotations

import pytest
import torch
import torch.distributed as dist

from executor.distributed.launch import DistConfig, start
from executor.distributed.server import DistributedServer
from executor.engine import EngineConfig
from executor.serve import LiveServer, ModelConfig, load_model
from policy import SchedulerConfig
from profiles import cost_model, load_profile
from tests.executor.conftest import SEED
from tests.executor.test_engine_tokens import MAX_SEQ, burst_trace

pytestmark = [
    pytest.mark.cuda,
    pytest.mark.skipif(torch.cuda.device_count() < 2, reason="needs two CUDA devices"),
]


@pytest.mark.parametrize(("tp", "pp"), [(2, 1), (1, 2)])
def test_nccl_replica_generates_the_single_gpu_tokens(tp, pp):
    model = ModelConfig("tiny-llama", device="cuda", dtype="float32", seed=SEED)
    cfg = SchedulerConfig(device_kv_tokens=160, host_kv_tokens=96, block_size_tokens=4, max_batch_size=6,
                          max_seq_tokens=MAX_SEQ, swap="proactive", base_quantum_s=0.002)
    cost = cost_model(load_profile("tiny-llama_cpu_tp1"))
    engine = EngineConfig(time_scale=0.01, check_invariants=True)
    single, _ = LiveServer(load_model(model), engine).run(burst_trace().jobs(), "skip-join-mlfq", cfg, cost)
    session = start(model, DistConfig(tp, pp, timeout_s=60))
    try:
        assert dist.get_backend() == "nccl" and session.groups.device == torch.device("cuda:0")
        result, _ = DistributedServer(session, engine).run(burst_trace().jobs(), "skip-join-mlfq", cfg, cost)
    finally:
        session.close()
    assert result.error is None, result.error
    assert sum(result.log.ints["num_swaps"]) > 0
    assert result.outputs == single.outputs
