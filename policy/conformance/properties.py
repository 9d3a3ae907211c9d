"""The conformance properties a policy class must have, checked over seeded random scenarios.

For each random scenario (policy/conformance/workloads.py) the class runs through the reference
engine (policy/conformance/engine.py):
- conservation: every admitted job is reported finished exactly once, with all its output
  tokens, and the scheduler never stalls (nothing to run, nothing in flight, jobs left);
- no KV over-commit: the engine's checks at every event and batch start;
- determinism: a second run on fresh objects makes the same decisions at the same times;
- skipping == stepping: with event skipping (`horizon` / `advance`) every job gets the same first
  token and finish times and the same preemption, swap and recompute counts as step by step;
- no starvation, only where the class claims it (`starvation_free = True`; the built-in FCFS and
  MLFQ families claim it, SRPT does not): on `starvation_scenario` the first, long job finishes
  before a stream of short jobs, longer than MIN_STREAM_US, ends.

A property fails on the first scenario that breaks it; that scenario is shrunk to a smallest
one that still breaks it. An exception raised by the policy counts as a failure of the property
being checked, with its one-line message.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from functools import partial

from policy.conformance.engine import (
    CONSERVATION,
    DETERMINISM,
    KV,
    SKIPPING,
    STARVATION,
    ReferenceEngine,
    ToyCost,
    Violation,
)
from policy.conformance.workloads import Scenario, random_scenario, shrink, starvation_scenario

PROPERTIES = (CONSERVATION, KV, DETERMINISM, SKIPPING, STARVATION)
# The starvation check's stream of short jobs lasts at least this long (its first job needs
# ~10 ms alone), also while shrinking, so that finishing after it means starving.
MIN_STREAM_US = 200_000


@dataclass
class PropertyResult:
    prop: str
    status: str  # pass | fail | skip
    message: str = ""
    scenario: Scenario | None = None  # the smallest failing one


def claims_starvation_freedom(cls: type) -> bool:
    claim = getattr(cls, "starvation_free", None)
    if claim is not None:
        return bool(claim)
    from policy.fcfs import FCFS
    from policy.mlfq import MLFQ

    return issubclass(cls, FCFS | MLFQ)


def _run_engine(cls: type, params: dict, scenario: Scenario, skip: bool, prop: str) -> ReferenceEngine:
    try:
        sched = cls(scenario.scheduler_config(), ToyCost(), **params)
        engine = ReferenceEngine(sched, scenario.jobs(), skip=skip)
        engine.run()
        return engine
    except Violation:
        raise
    except Exception as e:  # noqa: BLE001 - the user's code failing is a finding, not a crash
        raise Violation(prop, f"the policy raised {type(e).__name__}: {str(e).strip().splitlines()[0] if str(e).strip() else ''}") from None


def violation(cls: type, scenario: Scenario, prop: str, params: dict | None = None) -> str | None:
    """Why `scenario` breaks `prop` for `cls` (built with `params`), or None."""
    run = partial(_run_engine, cls, params or {})

    try:
        if prop in (CONSERVATION, KV):
            run(scenario, False, prop)
        elif prop == DETERMINISM:
            a, b = run(scenario, False, prop), run(scenario, False, prop)
            if a.plans != b.plans or a.outcome() != b.outcome():
                k = next((i for i, (x, y) in enumerate(zip(a.plans, b.plans, strict=False)) if x != y), min(len(a.plans), len(b.plans)))
                return f"two runs differ at decision {k}"
        elif prop == SKIPPING:
            step, skip = run(scenario, False, prop).outcome(), run(scenario, True, prop).outcome()
            diff = [jid for jid in step if step[jid] != skip[jid]]
            if diff:
                j = diff[0]
                return (f"job {j}: stepping gives (first token s, finish s, preemptions, swaps, recomputes) "
                        f"{step[j]}, skipping {skip[j]}")
        elif prop == STARVATION:
            first_id, first_arrival_us = scenario.trace[0][:2]
            last_arrival_us = max(a for _, a, _, _ in scenario.trace)
            if last_arrival_us - first_arrival_us < MIN_STREAM_US:
                return None  # too short a stream to tell starvation from a long queue
            first = run(scenario, True, prop).jobs[first_id]
            if first.finish_s is None or first.finish_s * 1e6 > last_arrival_us:
                return (f"job {first_id} finished at {first.finish_s:.4f} s, after the last arrival at "
                        f"{last_arrival_us / 1e6:.4f} s: it waited while shorter jobs kept coming")
    except Violation as v:
        if v.prop == prop:
            return str(v)
        return None  # another property's failure; that property reports it
    return None


def check_class(cls: type, params: dict | None = None, num_scenarios: int = 200, seed: int = 0,
                progress=None) -> list[PropertyResult]:
    """Every property of `cls` (built as `cls(config, cost, **params)`), in PROPERTIES order."""
    rng = random.Random(seed)
    scenarios = [random_scenario(rng, bool(getattr(cls, "reserve_max_seq", False))) for _ in range(num_scenarios)]
    results = []
    for prop in PROPERTIES:
        if prop == STARVATION:
            if not claims_starvation_freedom(cls):
                results.append(PropertyResult(prop, "skip", "not claimed (set starvation_free = True to check it)"))
                continue
            cases = [starvation_scenario()]
        else:
            cases = scenarios
        result = PropertyResult(prop, "pass", f"{len(cases)} trace{'s' if len(cases) > 1 else ''}")
        for scenario in cases:
            if progress is not None:
                progress()
            message = violation(cls, scenario, prop, params)
            if message is not None:
                smallest, message = shrink(scenario, message, partial(violation, cls, prop=prop, params=params))
                result = PropertyResult(prop, "fail", message, smallest)
                break
        results.append(result)
    return results
