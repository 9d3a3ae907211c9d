"""sim/capacity.py: a policy's capacity is its throughput with the whole trace arriving at once."""

import numpy as np
import pytest

from policy.config import SchedulerConfig
from sim.capacity import burst_capacity_rps
from tests.sim.toy import ToyCost
from traces.trace import Trace


def trace_of(arrival_s, prompt_tokens, output_tokens):
    return Trace(np.array(arrival_s, float), np.array(prompt_tokens), np.array(output_tokens), source="toy.csv")


def test_capacity_counts_requests_over_the_makespan_from_the_first_arrival():
    # both arrive at 5 s: one prefill iteration of 2 x 10 tokens (1,000 + 200 + 200 us) gives
    # each its only token, so 2 requests in 1.4 ms
    cap = burst_capacity_rps(trace_of([5.0, 7.0], [10, 10], [1, 1]), ToyCost(), "fcfs", SchedulerConfig())
    assert cap == pytest.approx(2 / 1400e-6, rel=1e-12)


def test_capacity_ignores_when_the_trace_spaced_its_arrivals():
    cost, cfg = ToyCost(), SchedulerConfig(max_batch_size=4)
    lengths = ([10, 20, 30, 40, 50, 60], [5, 9, 3, 7, 2, 8])
    spread = burst_capacity_rps(trace_of([0, 1, 2, 3, 4, 5], *lengths), cost, "fcfs", cfg)
    packed = burst_capacity_rps(trace_of([0, 0, 0, 0, 0, 0], *lengths), cost, "fcfs", cfg)
    assert spread == packed


def test_a_policy_that_finishes_nothing_has_no_capacity():
    with pytest.raises(ValueError, match=r"fcfs finishes no request of toy.csv \(all rejected\)"):
        burst_capacity_rps(trace_of([0.0], [100], [4]), ToyCost(), "fcfs", SchedulerConfig(max_seq_tokens=64))


def test_an_empty_trace_has_no_capacity():
    with pytest.raises(ValueError, match="toy.csv: an empty trace has no capacity"):
        burst_capacity_rps(trace_of([], [], []), ToyCost(), "fcfs", SchedulerConfig())
