"""The live engine freezes the objects alive at a run's start (no full garbage collection walks
the model and the imports mid-batch) and unfreezes them when the run ends, also after a failure."""

from __future__ import annotations

import gc

from executor.engine import Engine, EngineConfig
from executor.kv_store import KVStore
from executor.models import kv_layout
from executor.runner import ModelRunner
from policy import SchedulerConfig, make_scheduler
from profiles import cost_model, load_profile
from tests.executor.conftest import tiny
from traces import Trace


class Watching:
    """skip-join-mlfq's cost estimate, noting how many objects were frozen whenever it is asked."""

    def __init__(self, fail: bool = False) -> None:
        self.cost, self.frozen, self.fail = cost_model(load_profile("tiny-llama_cpu_tp1")), [], fail

    def prefill_s(self, prompt_tokens: int) -> float:
        self.frozen.append(gc.get_freeze_count())
        if self.fail:
            raise RuntimeError("estimate failed")
        return self.cost.prefill_s(prompt_tokens)

    def swap_s(self, tokens: int, direction: str) -> float:
        return self.cost.swap_s(tokens, direction)

    def min_iteration_s(self) -> float:
        return self.cost.min_iteration_s()


def serve(estimate: Watching):
    model = tiny("tiny-llama").model
    cfg = SchedulerConfig(device_kv_tokens=256, host_kv_tokens=64, block_size_tokens=4, max_seq_tokens=64)
    sched = make_scheduler("skip-join-mlfq", cfg, estimate)
    store = KVStore(kv_layout(model), sched.kv.capacity, 64)
    return Engine(ModelRunner(model, store), store, EngineConfig(time_scale=0.0)).run(
        list(Trace([0.0, 0.0, 0.0], [8, 12, 5], [4, 3, 6]).jobs()), sched, "skip-join-mlfq", sched.swap_mode)


def test_a_run_freezes_the_heap_and_thaws_it_after():
    assert gc.get_freeze_count() == 0
    estimate = Watching()
    result = serve(estimate)
    assert result.error is None and result.log.counts()["finished"] == 3
    assert len(estimate.frozen) == 3 and min(estimate.frozen) > 1000  # the model and imports at least
    assert gc.get_freeze_count() == 0


def test_a_failed_run_thaws_the_heap_too():
    estimate = Watching(fail=True)
    result = serve(estimate)
    assert result.error == "RuntimeError: estimate failed" and estimate.frozen and estimate.frozen[0] > 1000
    assert gc.get_freeze_count() == 0
