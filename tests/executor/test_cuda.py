"""GPU-only paths: pinned host pool, copy streams with events, the engine on CUDA (fp32 for exact tokens)."""

from __future__ import annotations

import pytest
import torch

from executor.engine import Engine, EngineConfig, prompt_token_ids
from executor.kv_store import KVStore
from executor.models import KVLayout, build_model, config_from_spec, kv_layout
from executor.runner import ModelRunner
from executor.transfer import Swapper
from policy import KVCapacity, SchedulerConfig, make_scheduler
from profiles.models import get_model
from tests.executor.conftest import SEED
from tests.executor.test_engine_tokens import MAX_SEQ, burst_trace

pytestmark = [
    pytest.mark.cuda,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device"),
]


def test_swaps_run_on_copy_streams_into_pinned_memory():
    layout = KVLayout(2, 2, 8, torch.float16)
    store = KVStore(layout, KVCapacity(32, 32, 4), 64, "cuda")
    assert store.host_pool.is_pinned() and store.device_pool.is_cuda
    swapper = Swapper(store)
    store.grow(0, 1)
    store.grow(1, 5)  # blocks 1..5; make its source fragmented by freeing job 0 and regrowing
    data = torch.randn(5, *store.device_pool.shape[1:], device="cuda", dtype=torch.float16)
    store.device_pool[1:6] = data
    t = swapper.swap_out(1, 5)
    assert t.event is not None and t.staging is not None
    t.wait()
    assert t.done()
    store.end_swap_out(1)
    store.device_pool.zero_()
    store.grow(2, 2)
    t = swapper.swap_in(1, 6)
    swapper.compute_waits_for(t)
    blocks = store.jobs[1].device_blocks[:5]
    assert torch.equal(store.device_pool[blocks], data)  # ordered after the copy by the wait
    t.wait()
    store.end_swap_in(1)


@pytest.mark.parametrize("policy, swap", [("mlfq", "proactive"), ("skip-join-mlfq", "reactive"), ("srpt", "recompute")])
def test_engine_on_cuda_generates_exact_tokens(policy, swap):
    from profiles import cost_model, load_profile

    model = build_model(config_from_spec(get_model("tiny-llama")), device="cuda", dtype="float32", seed=SEED)
    cfg = SchedulerConfig(device_kv_tokens=160, host_kv_tokens=96, block_size_tokens=4, max_batch_size=6,
                          max_seq_tokens=MAX_SEQ, swap=swap, base_quantum_s=0.002)
    sched = make_scheduler(policy, cfg, cost_model(load_profile("tiny-llama_cpu_tp1")))
    store = KVStore(kv_layout(model), sched.kv.capacity, MAX_SEQ, "cuda")
    engine = Engine(ModelRunner(model, store), store, EngineConfig(time_scale=0.01, check_invariants=True))
    jobs = list(burst_trace().jobs())
    result = engine.run(jobs, sched, policy, swap)
    assert result.error is None and store.is_empty
    reference = build_model(config_from_spec(get_model("tiny-llama")), device="cuda", dtype="float32", seed=SEED,
                            attn_implementation="sdpa")
    for job in jobs:  # transformers' own generation on the same device
        ids = torch.tensor([prompt_token_ids(job.id, job.prompt_tokens, model.config.vocab_size, 0)], device="cuda")
        out = reference.generate(ids, attention_mask=torch.ones_like(ids), max_new_tokens=job.output_tokens,
                                 do_sample=False, eos_token_id=None, pad_token_id=0)
        assert result.outputs[job.id] == out[0, ids.shape[1]:].tolist(), f"request {job.id}"
    assert sum(result.log.ints["num_preemptions"]) > 0
