"""The engine over an online source: tokens as they come, cancellation frees KV, stop records all.

The engine runs in its own thread over `OnlineArrivals`, with a device KV pool too small for
the requests together (so jobs are evicted and swapped) and the store audited against the
policy after every plan. Tokens must equal transformers' `generate` for each prompt alone.
"""

from __future__ import annotations

import threading

import pytest

from executor.engine import Engine, EngineConfig
from executor.kv_store import KVStore
from executor.models import kv_layout
from executor.online import OnlineArrivals
from executor.runner import ModelRunner
from policy import SchedulerConfig, make_scheduler
from profiles import cost_model, load_profile
from tests.executor.conftest import tiny
from traces.prompts import prompt_token_ids

TIMEOUT_S = 120.0


class RecordingSink:
    def __init__(self, arrivals: OnlineArrivals, cancel_after: int | None = None) -> None:
        self.arrivals, self.cancel_after = arrivals, cancel_after
        self.tokens: list[int] = []
        self.ended: tuple[str, str] | None = None
        self.event = threading.Event()
        self.job_id = -1

    def token(self, token: int) -> None:
        self.tokens.append(token)
        if self.cancel_after is not None and len(self.tokens) == self.cancel_after:
            self.arrivals.cancel(self.job_id)

    def done(self, status: str, reason: str) -> None:
        self.ended = (status, reason)
        self.event.set()


def _start(policy: str, swap: str):
    t = tiny("tiny-llama")
    cfg = SchedulerConfig(device_kv_tokens=160, host_kv_tokens=96, block_size_tokens=4, max_batch_size=6,
                          max_seq_tokens=128, swap=swap, base_quantum_s=0.002)
    sched = make_scheduler(policy, cfg, cost_model(load_profile("tiny-llama_cpu_tp1")))
    store = KVStore(kv_layout(t.model), sched.kv.capacity, 128)
    engine = Engine(ModelRunner(t.model, store), store, EngineConfig(check_invariants=True))
    arrivals = OnlineArrivals(wait_s=0.05)
    out = {}
    thread = threading.Thread(target=lambda: out.setdefault("result", engine.run(arrivals, sched, policy, swap)))
    thread.start()
    return t, arrivals, thread, out, store


def _submit(arrivals, t, rid: int, prompt_tokens: int, max_tokens: int, cancel_after=None) -> tuple[RecordingSink, list[int]]:
    prompt = prompt_token_ids(rid, prompt_tokens, t.model.config.vocab_size, 0)
    sink = RecordingSink(arrivals, cancel_after)
    sink.job_id = arrivals.submit(prompt, max_tokens, sink)
    return sink, prompt


@pytest.mark.parametrize(("policy", "swap"), [("skip-join-mlfq", "proactive"), ("mlfq", "reactive"),
                                              ("mlfq", "recompute"), ("fcfs", "reactive")])
def test_online_requests_stream_exact_tokens_and_a_cancelled_one_frees_its_kv(policy, swap):
    t, arrivals, thread, out, store = _start(policy, swap)
    lengths = [(42, 29), (58, 40), (9, 33), (32, 20), (61, 12), (12, 25)]
    sinks = [_submit(arrivals, t, rid, p, o, cancel_after=3 if rid == 1 else None) for rid, (p, o) in enumerate(lengths)]
    for sink, _ in sinks:
        assert sink.event.wait(TIMEOUT_S), f"request {sink.job_id} did not end"
    arrivals.stop("test over")
    thread.join(TIMEOUT_S)
    assert not thread.is_alive()
    result = out["result"]
    assert result.error == "test over" and result.interrupted
    for rid, (sink, prompt) in enumerate(sinks):
        if rid == 1:
            assert sink.ended == ("unfinished", "client disconnected")
            assert 3 <= len(sink.tokens) < lengths[1][1]
            assert sink.tokens == t.generate(prompt, len(sink.tokens))
            continue
        assert sink.ended == ("finished", "")
        assert sink.tokens == t.generate(prompt, lengths[rid][1]) == result.outputs[rid]
    assert result.log.counts() == {"finished": 5, "rejected": 0, "unfinished": 1}
    assert store.is_empty
    with pytest.raises(Exception, match="test over"):
        arrivals.submit([1, 2], 3, RecordingSink(arrivals))


def test_stop_records_running_and_queued_requests_unfinished():
    t, arrivals, thread, out, _ = _start("skip-join-mlfq", "proactive")
    first, _ = _submit(arrivals, t, 0, 20, 100)
    for _ in range(int(TIMEOUT_S / 0.01)):
        if len(first.tokens) >= 2 or first.event.wait(0.01):
            break
    arrivals.stop("server stopped (SIGTERM)")
    thread.join(TIMEOUT_S)
    assert not thread.is_alive()
    assert first.ended == ("unfinished", "run stopped: server stopped (SIGTERM)")
    result = out["result"]
    assert result.log.status == ["unfinished"] and result.log.ints["generated_tokens"][0] == len(first.tokens)


def test_a_request_the_policy_cannot_hold_is_rejected_at_its_sink():
    t, arrivals, thread, out, _ = _start("fcfs", "reactive")
    sink, _ = _submit(arrivals, t, 0, 100, 100)  # 200 tokens > max_seq_tokens 128
    assert sink.event.wait(TIMEOUT_S)
    arrivals.stop("test over")
    thread.join(TIMEOUT_S)
    assert sink.ended[0] == "rejected" and "max_seq_tokens = 128" in sink.ended[1]
    assert sink.tokens == []
