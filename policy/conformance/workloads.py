"""Workloads of the conformance check: seeded random small traces and configurations, the
adversarial trace of the starvation check, and shrinking a failing one to a smallest one.

A `Scenario` is plain data (configuration fields and `(id, arrival_us, prompt, output)` rows)
so that it prints as a reproducible case. Every random choice comes from one `random.Random`
seeded by the caller; same seed, same scenarios.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass, replace

from policy.config import SWAP_MODES, SchedulerConfig
from policy.job import Job

MAX_SEQ_TOKENS = 64


@dataclass(frozen=True)
class Scenario:
    config: tuple[tuple[str, object], ...]  # SchedulerConfig fields
    trace: tuple[tuple[int, int, int, int], ...]  # (id, arrival_us, prompt_tokens, output_tokens)

    def scheduler_config(self) -> SchedulerConfig:
        return SchedulerConfig(**dict(self.config))

    def jobs(self) -> list[Job]:
        return [Job(id=i, arrival_s=a_us / 1e6, prompt_tokens=p, output_tokens=o) for i, a_us, p, o in self.trace]

    def describe(self, max_rows: int = 20) -> str:
        rows = "\n".join(f"    {i:>3} {a:>10} {p:>6} {o:>6}" for i, a, p, o in self.trace[:max_rows])
        if len(self.trace) > max_rows:
            rows += f"\n    ... {len(self.trace) - max_rows} more"
        config = ", ".join(f"{k}={v!r}" for k, v in self.config)
        return f"  config: {config}\n  {len(self.trace)} jobs:\n     id arrival_us prompt output\n{rows}"


def random_scenario(rng: random.Random, reserve_max_seq: bool, max_jobs: int = 12) -> Scenario:
    """Small and mostly tight, so that eviction, swapping and recompute happen often."""
    t_us, rows = 0, []
    for i in range(rng.randint(1, max_jobs)):
        t_us += rng.choice([0, 0, 500, 2000, 7000, 20000])
        prompt = rng.randint(1, 40)
        rows.append((i, t_us, prompt, rng.randint(1, min(24, MAX_SEQ_TOKENS - prompt))))
    block = rng.choice([1, 1, 2, 4])
    least = MAX_SEQ_TOKENS if reserve_max_seq else max(p + o for _, _, p, o in rows)
    least = -(-least // block) * block
    config = dict(
        device_kv_tokens=rng.randint(least, least + rng.choice([MAX_SEQ_TOKENS // 2, 3 * MAX_SEQ_TOKENS])),
        host_kv_tokens=rng.choice([0, 8, 40, 120, 1000]), block_size_tokens=block,
        max_batch_size=rng.randint(1, 5), max_prefill_tokens=rng.randint(8, 96), max_seq_tokens=MAX_SEQ_TOKENS,
        swap=rng.choice((None, *SWAP_MODES)), swap_reserve_fraction=rng.choice([0.0, 0.05, 0.2, 0.4]),
        base_quantum_s=rng.choice([0.001, 0.002, 0.005]), quantum_growth=rng.choice([1.0, 1.5, 2.0]),
        num_levels=rng.randint(1, 4), demotion_levels=rng.randint(1, 2),
        alpha_s=rng.choice([0.003, 0.010, 0.030]), starvation_check_iterations=rng.randint(1, 4),
    )
    return Scenario(tuple(config.items()), tuple(rows))


def starvation_scenario(num_short: int = 200, gap_us: int = 1800) -> Scenario:
    """Job 0 (40-token prompt, 8 tokens out, ~10 ms alone) arrives first; then `num_short` jobs
    of 2 + 2 tokens arrive every `gap_us`, a little faster than one batch slot serves them, so a
    short job is always waiting. A policy that always prefers short work leaves job 0 waiting
    until the stream ends; a starvation-free one finishes it before the last short job arrives
    (FCFS at 9 ms, MLFQ at 144 ms, skip-join MLFQ at 78 ms; SRPT at 413 ms, after the last
    arrival at 358 ms). MLFQ's promotion is set to act within this trace (alpha 30 ms, checked
    every iteration)."""
    rows = [(0, 0, 40, 8)] + [(i, 100 + (i - 1) * gap_us, 2, 2) for i in range(1, num_short + 1)]
    config = dict(device_kv_tokens=4096, host_kv_tokens=4096, max_batch_size=1, max_seq_tokens=MAX_SEQ_TOKENS,
                  base_quantum_s=0.002, alpha_s=0.030, starvation_check_iterations=1)
    return Scenario(tuple(config.items()), tuple(rows))


def shrink(scenario: Scenario, message: str, why: Callable[[Scenario], str | None],
           max_tries: int = 400) -> tuple[Scenario, str]:
    """A smaller scenario that still fails, and why (`why` returns None for a pass): greedily
    drop jobs, then halve tokens, then move arrivals closer, keeping any change that still
    fails, until nothing more helps or `max_tries` runs are spent. The message is the one seen
    when the scenario was kept, so a flaky failure still says what went wrong."""
    tries = 0

    def attempt(candidate: Scenario) -> bool:
        nonlocal tries, message
        tries += 1
        found = why(candidate) if tries <= max_tries else None
        if found is not None:
            message = found
        return found is not None

    improved = True
    while improved and tries < max_tries:
        improved = False
        for k in range(len(scenario.trace) - 1, -1, -1):
            if len(scenario.trace) > 1:
                candidate = replace(scenario, trace=scenario.trace[:k] + scenario.trace[k + 1:])
                if attempt(candidate):
                    scenario, improved = candidate, True
        for k in range(len(scenario.trace)):
            for field in (2, 3):  # prompt, output
                row = list(scenario.trace[k])
                if row[field] > 1:
                    row[field] = max(1, row[field] // 2)
                    candidate = replace(scenario, trace=scenario.trace[:k] + (tuple(row),) + scenario.trace[k + 1:])
                    if attempt(candidate):
                        scenario, improved = candidate, True
        first_us = min(a for _, a, _, _ in scenario.trace)
        for moved in (lambda a, first=first_us: a - first, lambda a: a // 2):  # start at 0; closer together, order kept
            candidate = replace(scenario, trace=tuple((i, moved(a), p, o) for i, a, p, o in scenario.trace))
            if candidate.trace != scenario.trace and attempt(candidate):
                scenario, improved = candidate, True
    return scenario, message
