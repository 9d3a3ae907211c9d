"""TP = 2 and PP = 2 on gloo (this process is rank 0, one spawned worker): exact tokens.

The burst trace of test_engine_tokens (a device KV pool a tenth of what the requests need, a
small host pool) forces preemptions, swaps both ways and recomputes. Every request must produce
exactly the tokens of the single-process executor. Every rank's KV store is checked against
rank 0's after every command (`check_invariants`: the worker compares its block digest), so
the swaps move every rank's shard of the same blocks. One replica per (tp, pp) is shared by
the tests of this module (spawning takes seconds).

fp32 all-reduces sum the two halves of each row-parallel product in another order than one
matmul does; the logits differ in the last bits, which could flip a greedy argmax tie. None
occurs on this trace with these seeds (also checked outside the tests for fcfs, mlfq,
skip-join-mlfq and srpt in all three swap modes at TP = 2, PP = 2 and TP = 2 x PP = 2); the
assertion is exact equality, not "mostly equal".
"""

from __future__ import annotations

import pytest

from executor.distributed.launch import DistConfig, start
from executor.distributed.profile import COLLECTIVE_TOKENS, profile_replica
from executor.distributed.server import DistributedServer
from executor.engine import Engine, EngineConfig
from executor.kv_store import KVStore
from executor.models import kv_layout
from executor.profiler import ProfileConfig
from executor.runner import ModelRunner
from executor.serve import ModelConfig
from policy import SchedulerConfig, make_scheduler
from profiles import cost_model, load_profile
from tests.executor.conftest import SEED, tiny
from tests.executor.test_engine_tokens import MAX_SEQ, burst_trace

COST = cost_model(load_profile("tiny-llama_cpu_tp1"))


@pytest.fixture(scope="module", params=[(2, 1), (1, 2)], ids=["tp2", "pp2"])
def session(request):
    tp, pp = request.param
    s = start(ModelConfig("tiny-llama", seed=SEED), DistConfig(tp, pp, timeout_s=30))
    yield s
    s.close()


def _config(swap: str) -> SchedulerConfig:
    return SchedulerConfig(device_kv_tokens=160, host_kv_tokens=96, block_size_tokens=4, max_batch_size=6,
                           max_seq_tokens=MAX_SEQ, swap=swap, base_quantum_s=0.002)


def _single_process(policy: str, swap: str) -> dict[int, list[int]]:
    model = tiny("tiny-llama").model
    sched = make_scheduler(policy, _config(swap), COST)
    store = KVStore(kv_layout(model), sched.kv.capacity, MAX_SEQ)
    result = Engine(ModelRunner(model, store), store, EngineConfig(time_scale=0.01)).run(
        list(burst_trace().jobs()), sched, policy, sched.swap_mode)
    assert result.error is None
    return result.outputs


def _distributed(session, policy: str, swap: str, **engine):
    server = DistributedServer(session, EngineConfig(time_scale=0.01, check_invariants=True, **engine))
    result, _ = server.run(list(burst_trace().jobs()), policy, _config(swap), COST)
    return result


@pytest.mark.parametrize(("policy", "swap"), [("skip-join-mlfq", "proactive"), ("mlfq", "reactive"),
                                              ("srpt", "recompute"), ("vllm-fcfs", "reactive")])
def test_tokens_equal_the_single_process_executor(session, policy, swap):
    result = _distributed(session, policy, swap)
    assert result.error is None, result.error
    assert result.log.counts() == {"finished": 16, "rejected": 0, "unfinished": 0}
    assert result.outputs == _single_process(policy, swap)
    ints = result.log.ints
    assert sum(ints["num_preemptions"]) > 0
    if swap == "recompute":
        assert sum(ints["num_recomputes"]) > 0 and sum(ints["num_swaps"]) == 0
    else:
        assert sum(ints["num_swaps"]) >= 10
    it = result.iterations
    assert (it["swap_out_tokens"].sum() > 0) == (it["swap_in_tokens"].sum() > 0) == (swap != "recompute")
    assert it["batch_size"].sum() == sum(burst_trace().output_tokens)  # one row per forward pass


def test_each_rank_holds_its_shard(session):
    layout = session.rank_model.layout  # rank 0's KV: its stage's layers x its KV heads
    tp, pp = session.topo.tp, session.topo.pp
    assert (layout.num_layers, layout.num_kv_heads) == (2 // pp, 2 // tp)
    assert session.rank_model.replica_layout.bytes_per_token == 2 * 2 * 2 * 16 * 4
    assert layout.bytes_per_token * tp * pp == session.rank_model.replica_layout.bytes_per_token


def test_pipeline_has_micro_batches_in_flight_and_no_job_in_two(session):
    if session.topo.pp == 1:
        pytest.skip("tensor parallelism only: one batch at a time")
    result = _distributed(session, "skip-join-mlfq", "proactive", record_spans=True)
    assert result.error is None, result.error
    it = result.iterations.sort_values("start_s")
    starts, ends = it["start_s"].to_numpy(), it["end_s"].to_numpy()
    in_flight = [int(((starts <= s) & (ends > s)).sum()) for s in starts]  # at each launch
    assert max(in_flight) == 2 and sum(n > 1 for n in in_flight) >= 10
    running = result.spans[result.spans["kind"] == "running"]
    output = dict(zip(result.log.ints["request_id"], result.log.ints["output_tokens"], strict=True))
    for rid, spans in running.groupby("request_id"):
        spans = spans.sort_values("start_s")
        # one span per micro-batch the job was in (one token each), never two at once
        assert len(spans) == output[rid]
        assert (spans["start_s"].to_numpy()[1:] >= spans["end_s"].to_numpy()[:-1]).all(), f"request {rid}"


def test_profile_of_the_replica(session):
    tp, pp = session.topo.tp, session.topo.pp
    cfg = ProfileConfig(prefill_batch_sizes=(1, 2), prompt_tokens=(8, 32), decode_batch_sizes=(1, 4),
                        context_tokens=(16, 64), swap_tokens=(16, 64), warmups=1, max_repeats=2, budget_s=2)
    p = profile_replica(session, "tiny-llama", cfg, "pytest", progress=False)
    assert (p.tp, p.pp) == (tp, pp)
    assert p.name == ("tiny-llama_cpu_tp2" if tp == 2 else "tiny-llama_cpu_tp1_pp2")
    assert p.kv_bytes_per_token == 512 and p.swap_out.size_bytes == (16 * 512, 64 * 512)
    assert p.prefill.batch_sizes == (1, 2) and p.decode.tokens == (16, 64)
    curve_bytes = tuple(n * 64 * 4 for n in COLLECTIVE_TOKENS)
    assert (p.all_reduce is not None) == (tp > 1) and (p.send_recv is not None) == (pp > 1)
    assert (p.all_reduce or p.send_recv).size_bytes == curve_bytes
    assert p.hardware["num_devices"] == 2 and p.device_kv_tokens > 0
    # the replica still serves after profiling (the stores were emptied on every rank)
    assert _distributed(session, "mlfq", "proactive").error is None


def test_a_grid_whose_kv_the_ranks_lack_is_refused_before_any_rank_allocates(session, monkeypatch):
    import executor.profiler as profiler

    # both ranks on this CPU: 2 x (4,096 x 64 tokens of device KV + 64 of host) x 256 bytes a
    # token's shard = 128.06 MiB, against 100 MiB
    monkeypatch.setattr(profiler, "_available_ram_bytes", lambda: 100 * 2 ** 20)
    cfg = ProfileConfig(prefill_batch_sizes=(1, 2), prompt_tokens=(8, 32), decode_batch_sizes=(1, 4096),
                        context_tokens=(16, 64), swap_tokens=(16, 64), warmups=1, max_repeats=2, budget_s=2)
    with pytest.raises(ValueError, match=r"^the grid needs 0\.1 GiB of KV \(decode 4096 jobs x 64 tokens, prefill 2 x "
                                         r"32, swap 64\), more than the 0\.1 GiB of available RAM; use smaller"):
        profile_replica(session, "tiny-llama", cfg, "pytest", progress=False)
    assert _distributed(session, "mlfq", "proactive").error is None  # nothing was sent to the ranks
