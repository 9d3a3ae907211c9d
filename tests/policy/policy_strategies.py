"""Hypothesis strategies for the policy property tests: small random traces and configs that
exercise every policy, swap mode, block size, and tight device and host capacities."""

from __future__ import annotations

from hypothesis import strategies as st

from policy import POLICIES, SWAP_MODES, SchedulerConfig
from tests.policy.policy_testkit import MAX_SEQ_TOKENS, Scenario

ALL_POLICIES = tuple(POLICIES)
NON_ORACLE = tuple(p for p in POLICIES if p != "srpt")


@st.composite
def configs(draw, policy: str, max_total_tokens: int) -> SchedulerConfig:
    block = draw(st.sampled_from([1, 1, 2, 4]))
    # The device must hold the largest request (fcfs: a whole max_seq_tokens reservation).
    least = MAX_SEQ_TOKENS if policy == "fcfs" else max_total_tokens
    least = -(-least // block) * block
    return SchedulerConfig(
        # Mostly tight, so that eviction, swapping and recompute happen often.
        device_kv_tokens=draw(st.one_of(st.integers(least, least + MAX_SEQ_TOKENS // 2),
                                        st.integers(least, least + 3 * MAX_SEQ_TOKENS))),
        host_kv_tokens=draw(st.sampled_from([0, 8, 40, 120, 1000])),
        block_size_tokens=block,
        max_batch_size=draw(st.integers(1, 5)),
        max_prefill_tokens=draw(st.integers(8, 96)),
        max_seq_tokens=MAX_SEQ_TOKENS,
        swap=draw(st.sampled_from((None, *SWAP_MODES))),
        swap_reserve_fraction=draw(st.sampled_from([0.0, 0.05, 0.2, 0.4])),
        base_quantum_s=draw(st.sampled_from(["auto", 0.001, 0.002, 0.005])),
        quantum_growth=draw(st.sampled_from([1.0, 1.5, 2.0])),
        num_levels=draw(st.integers(1, 4)),
        demotion_levels=draw(st.integers(1, 2)),
        alpha_s=draw(st.sampled_from([0.003, 0.010, 0.030])),
        # starvation checks on the policy's clock (every decision, or a period) or every k iterations
        starvation_check_s=draw(st.sampled_from([0.0, 0.0, 0.004])),
        starvation_check_iterations=draw(st.sampled_from([None, None, 1, 2, 4])),
        promotion=draw(st.sampled_from(["quantum", "paper"])),
    )


@st.composite
def traces(draw, max_jobs: int = 12):
    n = draw(st.integers(1, max_jobs))
    t_us, rows = 0, []
    for i in range(n):
        t_us += draw(st.sampled_from([0, 0, 500, 2000, 7000, 20000]))
        prompt = draw(st.integers(1, 40))
        output = draw(st.integers(1, min(24, MAX_SEQ_TOKENS - prompt)))
        rows.append((i, t_us, prompt, output))
    return tuple(rows)


@st.composite
def scenarios(draw, policies=ALL_POLICIES, max_jobs: int = 12) -> Scenario:
    policy = draw(st.sampled_from(policies))
    trace = draw(traces(max_jobs))
    cfg = draw(configs(policy, max(p + o for _, _, p, o in trace)))
    return Scenario(policy, cfg, trace)


@st.composite
def proactive_scenarios(draw, max_jobs: int = 14) -> Scenario:
    """Proactive swapping with a roomy host: offloads and uploads in ENST order all the time."""
    policy = draw(st.sampled_from(["mlfq", "skip-join-mlfq", "srpt", "vllm-fcfs"]))
    trace = draw(traces(max_jobs))
    cfg = draw(configs(policy, max(p + o for _, _, p, o in trace)))
    fields = {name: getattr(cfg, name) for name in cfg.__dataclass_fields__}
    fields.update(swap="proactive", host_kv_tokens=1000,
                  swap_reserve_fraction=draw(st.sampled_from([0.1, 0.2, 0.3, 0.4])))
    return Scenario(policy, SchedulerConfig(**fields), trace)
