"""Swap traffic and per-replica load balance against hand-computed values."""

import pandas as pd
import pytest

from analysis.load import load_run
from analysis.run_metrics import run_metrics
from analysis.traffic import load_imbalance, replica_load, swap_traffic
from tests.analysis.fixtures import FCFS_ROWS, SJ_ROWS, requests_frame


def both():
    return pd.concat(
        [requests_frame("fcfs", "recompute", FCFS_ROWS), requests_frame("skip-join-mlfq", "proactive", SJ_ROWS)],
        ignore_index=True,
    )


def test_swap_traffic_tokens_and_bytes(run_dir):
    out = swap_traffic(load_run(run_dir).iterations, kv_bytes_per_token=1000).set_index("policy")
    # fcfs's rows have no swap columns: not applicable, 0. skip-join: out 12 + 8, in 12 + 8.
    assert out.loc["fcfs", ["swap_out_tokens", "swap_in_tokens", "swap_tokens"]].tolist() == [0, 0, 0]
    assert out.loc["skip-join-mlfq", ["swap_out_tokens", "swap_in_tokens", "swap_tokens"]].tolist() == [20, 20, 40]
    assert out.loc["skip-join-mlfq", "swap_bytes"] == 40_000
    assert out.loc["skip-join-mlfq", "swap_out_bytes"] == 20_000


def test_swap_traffic_without_bytes_has_no_byte_columns(run_dir):
    out = swap_traffic(load_run(run_dir).iterations)
    assert "swap_bytes" not in out


def test_replica_load_by_hand():
    load = replica_load(both(), num_replicas=2).set_index(["policy", "replica"])
    # fcfs: replica 0 gets r0 (10 + 5 tokens) and r2 (30 + 4); replica 1 r1 (20 + 3) and r4 (50 + 2 generated)
    assert load.loc[("fcfs", 0), ["num_requests", "num_tokens"]].tolist() == [2, 49]
    assert load.loc[("fcfs", 1), ["num_requests", "num_tokens"]].tolist() == [2, 75]
    # skip-join: replica 0 r0, r2, r4 (50 + 3); replica 1 r1, r3 (40 + 1)
    assert load.loc[("skip-join-mlfq", 0), ["num_requests", "num_tokens"]].tolist() == [3, 102]
    assert load.loc[("skip-join-mlfq", 1), ["num_requests", "num_tokens"]].tolist() == [2, 64]


def test_load_imbalance_by_hand():
    out = load_imbalance(both(), num_replicas=2).set_index("policy")
    assert out.loc["fcfs", "num_undispatched"] == 1  # the rejected r3
    assert out.loc["fcfs", "request_imbalance"] == pytest.approx(1.0)
    assert out.loc["fcfs", "token_imbalance"] == pytest.approx(75 / 62)
    assert out.loc["skip-join-mlfq", "request_imbalance"] == pytest.approx(3 / 2.5)
    assert out.loc["skip-join-mlfq", "token_imbalance"] == pytest.approx(102 / 83)


def test_idle_replica_counts_as_zero():
    out = load_imbalance(both(), num_replicas=3).set_index("policy")
    assert out.loc["fcfs", "num_replicas"] == 3
    assert out.loc["fcfs", "request_imbalance"] == pytest.approx(2 / (4 / 3))


def test_replica_beyond_count_is_an_error():
    with pytest.raises(ValueError, match="replica 1 but the run has 1 replicas"):
        replica_load(both(), num_replicas=1)


def test_run_metrics_joins_everything(run_dir):
    out = run_metrics(load_run(run_dir), ttft_slo_s=1.0, tpot_slo_s=1.0).set_index("policy")
    assert out.loc["skip-join-mlfq", "swap_bytes"] == 40_000  # kv_bytes_per_token nested in config
    assert out.loc["skip-join-mlfq", "token_imbalance"] == pytest.approx(102 / 83)
    assert out.loc["fcfs", "slo_attainment"] == pytest.approx(0.4)
    assert out.loc["skip-join-mlfq", "jct_mean_s"] == pytest.approx(2.0)
    assert len(out) == 2
