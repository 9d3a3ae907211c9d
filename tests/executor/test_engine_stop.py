"""Stopping cleanly: errors and Ctrl-C keep what finished; rejections; spans; capacity checks."""

from __future__ import annotations

import pytest

from executor.engine import Engine, EngineConfig
from executor.kv_store import KVCapacityMismatch, KVStore
from executor.models import kv_layout
from executor.runner import ModelRunner
from policy import KVCapacity, SchedulerConfig, make_scheduler
from tests.executor.conftest import tiny
from traces import Trace


class FailingRunner(ModelRunner):
    """Raises `exc` the first time job `job_id` is in a batch (a test double, not shipped)."""

    def __init__(self, model, store, job_id: int, exc: BaseException) -> None:
        super().__init__(model, store)
        self.job_id, self.exc = job_id, exc

    def step(self, segments):
        if any(s.job_id == self.job_id for s in segments):
            raise self.exc
        return super().step(segments)


def _trace() -> Trace:
    # request 13 is too long for the model; 12 arrives late (trace 50 s = 0.5 s wall), so it is
    # still pending when a run stops at request 11
    return Trace([0.0, 0.0, 0.0, 50.0], [10, 12, 700, 8], [3, 30, 5, 4], [10, 11, 13, 12])


def _engine(runner_cls=ModelRunner, *runner_args, **cfg):
    t = tiny("tiny-llama")
    sched = make_scheduler("vllm-fcfs", SchedulerConfig(device_kv_tokens=256, host_kv_tokens=64, max_seq_tokens=512,
                                                        block_size_tokens=4, **cfg))
    store = KVStore(kv_layout(t.model), sched.kv.capacity, 512)
    engine = Engine(runner_cls(t.model, store, *runner_args), store, EngineConfig(time_scale=0.01, record_spans=True))
    return engine, sched, store


def _rows(result):
    ids = list(result.log.ints["request_id"])
    return {rid: (status, reason) for rid, status, reason in zip(ids, result.log.status, result.log.reason, strict=True)}


def test_an_error_in_one_request_keeps_what_finished():
    # batches of one: request 10 runs to its end before 11 starts and fails
    engine, sched, store = _engine(FailingRunner, 11, RuntimeError("CUDA error: device-side assert"), max_batch_size=1)
    result = engine.run(list(_trace().jobs()), sched, "vllm-fcfs", sched.swap_mode)
    assert result.error == "RuntimeError: CUDA error: device-side assert" and not result.interrupted
    rows = _rows(result)
    assert rows[10] == ("finished", "")
    assert rows[11] == ("unfinished", "run stopped: RuntimeError: CUDA error: device-side assert")
    assert rows[12] == ("unfinished", "not yet arrived; run stopped: RuntimeError: CUDA error: device-side assert")
    assert rows[13][0] == "rejected" and "exceeds max_seq_tokens = 512" in rows[13][1]
    assert len(result.log) == 4 and store.is_empty
    assert result.outputs[10] == tiny("tiny-llama").expected(list(_trace().jobs())[:1])[10]


def test_ctrl_c_stops_cleanly_and_the_engine_is_reusable():
    engine, sched, store = _engine(FailingRunner, 11, KeyboardInterrupt(), max_batch_size=1)
    result = engine.run(list(_trace().jobs()), sched, "vllm-fcfs", sched.swap_mode)
    assert result.interrupted and result.error == "interrupted (Ctrl-C)"
    assert _rows(result)[11] == ("unfinished", "run stopped: interrupted (Ctrl-C)")
    assert store.is_empty
    engine.runner.job_id = -1  # no more failures: the same engine serves a fresh run
    sched = make_scheduler("vllm-fcfs", sched.config)
    jobs = list(_trace().jobs())
    result = engine.run(jobs, sched, "vllm-fcfs", sched.swap_mode)
    assert result.error is None and result.log.counts() == {"finished": 3, "rejected": 1, "unfinished": 0}
    expected = tiny("tiny-llama").expected([j for j in jobs if j.id != 13])
    assert {rid: result.outputs[rid] for rid in expected} == expected


def test_spans_cover_running_and_swaps():
    t = tiny("tiny-llama")
    sched = make_scheduler("mlfq", SchedulerConfig(device_kv_tokens=128, host_kv_tokens=128, max_seq_tokens=128, base_quantum_s=0.01,
                                                   block_size_tokens=4, max_batch_size=2, swap="reactive"))
    store = KVStore(kv_layout(t.model), sched.kv.capacity, 128)
    engine = Engine(ModelRunner(t.model, store), store, EngineConfig(time_scale=0, record_spans=True))
    trace = Trace([0.0] * 6, [60, 50, 40, 30, 20, 10], [40, 30, 20, 10, 5, 3])
    result = engine.run(list(trace.jobs()), sched, "mlfq", "reactive")
    spans = result.spans
    assert result.error is None and set(spans["kind"]) <= {"running", "swap_out", "swap_in"}
    assert list(spans.columns) == ["policy", "swap", "replica", "request_id", "kind", "start_s", "end_s"]
    assert (spans["end_s"] >= spans["start_s"]).all()
    swaps = spans[spans["kind"] != "running"].groupby("request_id").size()
    num_swaps = dict(zip(result.log.ints["request_id"], result.log.ints["num_swaps"], strict=True))
    assert sum(num_swaps.values()) >= 2
    assert {rid: n for rid, n in num_swaps.items() if n} == swaps.to_dict()
    # a running span never overlaps another of the same request
    for _, g in spans[spans["kind"] == "running"].groupby("request_id"):
        assert (g["start_s"].values[1:] >= g["end_s"].values[:-1]).all()


def test_capacity_mismatch_is_refused_before_running():
    t = tiny("tiny-llama")
    sched = make_scheduler("mlfq", SchedulerConfig(device_kv_tokens=256, host_kv_tokens=64, max_seq_tokens=128, base_quantum_s=0.01))
    store = KVStore(kv_layout(t.model), KVCapacity(255, 64, 1), 128)
    with pytest.raises(KVCapacityMismatch, match="policy plans with 256 device / 64 host blocks"):
        Engine(ModelRunner(t.model, store), store).run([], sched, "mlfq", "proactive")
