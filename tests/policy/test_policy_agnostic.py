"""Semi-information-agnostic: a non-oracle policy decides only from what a real server knows.

Two traces that differ only in `output_tokens` must give identical plans (same job ids in every
field, at the same times) up to and including the decision whose iteration finishes the first
job in either run. SRPT reads output lengths, so the same comparison tells its runs apart.
"""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from policy import SchedulerConfig
from tests.policy.policy_strategies import MAX_SEQ_TOKENS, NON_ORACLE, scenarios
from tests.policy.policy_testkit import Scenario


def plans_until_first_finish(sc: Scenario, outputs):
    e = sc.run(outputs=outputs, stop_at_first_finish=True)
    assert e.num_finished >= 1
    return list(zip(e.plan_times_us, e.plans, strict=True))


def same_until_first_finish(sc: Scenario, outputs_a, outputs_b) -> bool:
    a = plans_until_first_finish(sc, outputs_a)
    b = plans_until_first_finish(sc, outputs_b)
    m = min(len(a), len(b))
    return a[:m] == b[:m]


@st.composite
def scenario_and_other_outputs(draw, policies):
    sc = draw(scenarios(policies=policies))
    cfg = sc.config
    cap = min(MAX_SEQ_TOKENS, cfg.device_kv_tokens // cfg.block_size_tokens * cfg.block_size_tokens)
    other = [draw(st.integers(1, cap - p)) for _, _, p, _ in sc.trace]
    return sc, [o for *_, o in sc.trace], other


@settings(max_examples=600, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(scenario_and_other_outputs(NON_ORACLE))
def test_non_oracle_plans_ignore_output_lengths(case):
    sc, outputs, other = case
    assert same_until_first_finish(sc, outputs, other)


def test_srpt_plans_depend_on_output_lengths():
    # Same arrivals and prompts; only the output lengths are swapped. SRPT's first decision
    # already differs (it runs the job with fewer tokens left); MLFQ's does not.
    trace = ((0, 0, 5, 1), (1, 0, 5, 1))  # output lengths replaced below
    cfg = SchedulerConfig(max_batch_size=1, max_seq_tokens=64)
    outputs_a, outputs_b = [6, 3], [3, 6]
    srpt = Scenario("srpt", cfg, trace)
    assert plans_until_first_finish(srpt, outputs_a)[0][1]["batch"] == [1]
    assert plans_until_first_finish(srpt, outputs_b)[0][1]["batch"] == [0]
    assert not same_until_first_finish(srpt, outputs_a, outputs_b)
    assert same_until_first_finish(Scenario("mlfq", cfg, trace), outputs_a, outputs_b)
