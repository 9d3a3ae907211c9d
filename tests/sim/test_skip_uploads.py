"""Skips with jobs on the host (policy/horizon.py `_upload_lead_us`): a plan repeats while the
first job of the upload order does not fit in the room the batch leaves, instead of stopping
whenever some host job could fit. On the paper's A100-40GB memory setting that is most of
skip-join's decisions under load; results must stay those of stepping."""

import pytest

import profiles
import traces
from policy import SchedulerConfig
from sim import SimConfig, simulate
from tests.sim.toy import ListTrace, jobs_of


def paper_memory_trace(num_requests: int) -> ListTrace:
    filters = traces.Filters(max_prompt_tokens=1024, max_total_tokens=2048)
    trace, _ = traces.synthesize_filtered(1500, "gamma:rate=1.0,cv=3", "sharegpt-multiturn-like", 3, filters)
    n = num_requests
    return ListTrace(trace.arrival_s[:n], trace.prompt_tokens[:n], trace.output_tokens[:n], trace.request_id[:n])


@pytest.mark.parametrize("policy,decisions", [("skip-join-mlfq", (3_394, 30_154)), ("srpt", (1_991, 30_251))])
def test_skips_with_host_jobs_equal_stepping(policy, decisions):
    # 750 requests: a skip-join run there passes demotions (above every waiting job) while the
    # first to be promoted, which fits, waits on the host behind one that does not; the skip
    # must stop at that demotion as well as where the promotion's T_promote overtakes (without
    # the first, results differ). Stopping whenever a host job could fit (and MLFQ's prefill
    # plans not repeating) took 5,265 and 2,081 decisions.
    cost = profiles.cost_model(profiles.load_profile("opt-13b_a100-40gb_tp1"))
    cfg = SchedulerConfig(device_kv_tokens=cost.device_kv_tokens, host_kv_tokens=cost.host_kv_tokens, max_batch_size=16)
    trace = paper_memory_trace(750)
    skip = simulate(trace, cost, policy, cfg, SimConfig())
    step = simulate(trace, cost, policy, cfg, SimConfig(skip=False))
    assert jobs_of(skip) == jobs_of(step)
    assert sum(j["num_swaps"] for j in jobs_of(step).values()) > 100  # the host is in use
    assert (skip.stats["num_decisions"], step.stats["num_decisions"]) == decisions
