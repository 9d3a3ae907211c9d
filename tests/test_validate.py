"""`fastserve validate`: the report's arithmetic on hand-made run directories (exact), the
composition a live iteration record is priced with, the CDF figure, and one small real
validate (tiny-llama on CPU, seconds) with exact structure checks and loose error bounds.

The loose bounds are the CI stand-in for the full targets (benchmarks/validate_targets.py):
CI machines are shared and noisy, so the small run is repeated up to three times and the
median error is what must stay within bounds.
"""

from __future__ import annotations

import json
import math
import statistics

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner

from analysis.load import InputError, load_run
from analysis.plots.validation import plot_validation_cdf
from analysis.validation import (
    COLUMNS,
    METRICS,
    REPLAYED_METRICS,
    batch_of,
    chunks_prefills,
    iteration_errors,
    rel_error,
    split_evenly,
    validation_table,
    within,
)
from fastserve.cli import main
from fastserve.rundir import RunWriter
from profiles import cost_model, load_profile
from tests.validation_runs import HandCost, iterations, requests, write_hand_runs


@pytest.fixture
def hand_runs(tmp_path):
    return write_hand_runs(tmp_path)


def test_rel_error_and_even_splits():
    assert rel_error(2.0, 2.5) == 0.25 and rel_error(4.0, 3.0) == -0.25
    assert math.isnan(rel_error(0.0, 1.0)) and math.isnan(rel_error(math.nan, 1.0))
    assert split_evenly(10, 3) == [4, 3, 3] and split_evenly(9, 3) == [3, 3, 3]
    # the mean and the longest context survive; prompts split evenly
    assert batch_of(5, 2, 31, 100, 40) == ([16, 15], [40, 30, 30])
    assert batch_of(3, 0, 0, 100, 0) == ([], [34, 33, 33])  # longest not recorded: even split
    assert batch_of(1, 0, 0, 7, 7) == ([], [7])
    assert batch_of(2, 2, 9, 0, 0) == ([5, 4], [])


def test_validation_table_exact(hand_runs):
    live, sim = hand_runs
    cost = HandCost()
    table = validation_table(live, sim, cost)
    assert list(table.columns) == COLUMNS
    assert table["policy"].tolist() == ["fcfs"] * 5 + ["skip-join-mlfq"] * 5
    assert table["metric"].tolist() == list(METRICS) * 2
    fcfs = table[table["policy"] == "fcfs"].set_index("metric")
    # JCT live [1, 2, 3, 10] vs sim [1.5, 2, 3, 9]: means 4 and 3.875, medians 2.5 and 2.5
    assert fcfs.loc["jct_mean_s", ["measured", "simulated"]].tolist() == [4.0, 3.875]
    assert fcfs.loc["jct_mean_s", "rel_error"] == (3.875 - 4.0) / 4.0
    assert fcfs.loc["jct_p50_s", "rel_error"] == 0.0
    p99_live, p99_sim = np.quantile([1, 2, 3, 10], 0.99), np.quantile([1.5, 2, 3, 9], 0.99)
    assert fcfs.loc["jct_p99_s", "rel_error"] == pytest.approx((p99_sim - p99_live) / p99_live, rel=1e-12)
    assert fcfs.loc["ttft_mean_s", ["measured", "simulated"]].tolist() == [0.75, 0.5]
    assert fcfs.loc["ttft_mean_s", "rel_error"] == pytest.approx(-1 / 3, rel=1e-12)
    # iterations: measured 2.0, 0.5, 0.5 ms; predicted 2.3, 0.225, 1.33 ms (see FCFS_ITERATIONS)
    assert cost.calls[:3] == [([15, 15], []), ([], [25, 15]), ([10], [30, 20])]
    errors = [(2.3e-3 - 2e-3) / 2e-3, (0.225e-3 - 0.5e-3) / 0.5e-3, (1.33e-3 - 0.5e-3) / 0.5e-3]
    assert fcfs.loc["iteration_s", "measured"] == pytest.approx(0.5e-3, rel=1e-9)
    assert fcfs.loc["iteration_s", "simulated"] == pytest.approx(1.33e-3, rel=1e-9)
    assert fcfs.loc["iteration_s", "rel_error"] == pytest.approx(statistics.median(errors), rel=1e-9)
    sj = table[table["policy"] == "skip-join-mlfq"].set_index("metric")
    # the unfinished live request has no JCT: means over the 3 finished ones, 2.0 against 2.0
    assert sj.loc["jct_mean_s", ["measured", "simulated", "rel_error"]].tolist() == [2.0, 2.0, 0.0]
    assert sj.loc["iteration_s", "rel_error"] == pytest.approx((2e-4 - 1e-3) / 1e-3, rel=1e-9)
    checked = within(table, {"jct_mean_s": 0.05, "iteration_s": 0.05})
    assert checked["ok"].tolist() == [True, False, True, False]


class PlanningCost(HandCost):
    def plan_overhead_s(self, num_admitted, pure_decode=False, num_jobs=0):
        return 1e-4 + 1e-5 * num_admitted + 3e-5 * pure_decode + 2e-6 * num_jobs


class WrapUpCost(PlanningCost):
    def plan_end_overhead_s(self, num_finished, num_jobs=0):
        return 5e-5 + 4e-5 * num_finished + 1e-6 * num_jobs


def test_new_plans_are_charged_their_planning_and_admissions():
    # rows 0-1: one plan (row 1 starts where row 0 ended); row 2 starts 0.1 ms later: a new plan
    rows = iterations("fcfs", "recompute", [(0.0, 0.001, 1, 1, 0, 0, 50, 50), (0.001, 0.002, 1, 1, 0, 0, 51, 51),
                                            (0.0021, 0.003, 1, 1, 0, 0, 52, 52)])
    got = iteration_errors(rows, PlanningCost(), arrival_s=[0.0, 0.0015, 0.0021, 0.5])
    base = [1e-4 + 1e-6 * c for c in (50, 51, 52)]
    plan = [1e-4 + 1e-5 * a + 3e-5 * 1 + 2e-6 * 1 for a in (1, 2)]  # pure-decode plans of one job
    assert got["predicted_s"].tolist() == [base[0] + plan[0], base[1], base[2] + plan[1]]
    assert iteration_errors(rows, PlanningCost())["predicted_s"].tolist() == base  # no arrivals: no charge


def test_a_plans_wrap_up_is_charged_to_its_last_iteration_when_work_follows():
    # plan 1 = rows 0-1 (2 jobs, one finishes at row 1's end 0.002), plan 2 = row 2 (1 job,
    # finishes at 0.003 and nothing is left: its wrap-up lies in the idle time, not charged)
    rows = iterations("fcfs", "recompute", [(0.0, 0.001, 1, 2, 0, 0, 90, 50), (0.001, 0.002, 1, 2, 0, 0, 92, 51),
                                            (0.0021, 0.003, 1, 1, 0, 0, 42, 42)]).assign(num_queued=0)
    got = iteration_errors(rows, WrapUpCost(), arrival_s=[0.0, 0.0], finish_s=[0.002, 0.003])
    base = [2e-4 + 1e-6 * 50, 2e-4 + 1e-6 * 51, 1e-4 + 1e-6 * 42]
    plan = [1e-4 + 1e-5 * 2 + 3e-5 + 2e-6 * 2, 1e-4 + 3e-5 + 2e-6 * 1]
    wrap_up = 5e-5 + 4e-5 * 1 + 1e-6 * 2
    assert got["predicted_s"].tolist() == pytest.approx([base[0] + plan[0], base[1] + wrap_up, base[2] + plan[1]],
                                                        rel=1e-12)
    assert got["measured_s"].tolist() == pytest.approx([0.001, 0.0011, 0.0009], rel=1e-9)


class SwapCost(HandCost):
    """HandCost plus transfers: 20 us to issue one, and copies of 1 us per token out, 2 us in."""

    def __init__(self, sync_transfers: bool) -> None:
        super().__init__()
        self.sync_transfers = sync_transfers

    def swap_overhead_s(self):
        return 2e-5

    def swap_s(self, tokens, direction):
        return (1e-6 if direction == "out" else 2e-6) * tokens


def test_a_rows_transfers_are_charged_as_the_simulator_charges_them():
    # row 0: 2 swap-outs of 30 tokens in all and 1 swap-in of 8 before its decode; row 1: none
    rows = iterations("skip-join-mlfq", "proactive", [(0.0, 0.001, 1, 1, 0, 0, 50, 50),
                                                      (0.001, 0.002, 1, 1, 0, 0, 51, 51)])
    rows = rows.assign(num_swaps_out=[2, 0], swap_out_tokens=[30, 0], num_swaps_in=[1, 0], swap_in_tokens=[8, 0])
    base = [1e-4 + 1e-6 * 50, 1e-4 + 1e-6 * 51]
    sync = iteration_errors(rows, SwapCost(sync_transfers=True))["predicted_s"].tolist()
    # a CPU engine copies before the pass: each copy at its direction's mean size, plus the issue costs
    assert sync == pytest.approx([base[0] + 3 * 2e-5 + 2 * 1e-6 * 15 + 2e-6 * 8, base[1]], rel=1e-12)
    # a GPU's copies run beside compute: only issuing them is on the critical path
    overlapped = iteration_errors(rows, SwapCost(sync_transfers=False))["predicted_s"].tolist()
    assert overlapped == pytest.approx([base[0] + 3 * 2e-5, base[1]], rel=1e-12)
    # without swap prices or swap counts nothing is added
    assert iteration_errors(rows, HandCost())["predicted_s"].tolist() == pytest.approx(base, rel=1e-12)
    plain = rows.drop(columns=["num_swaps_out", "num_swaps_in"])
    assert iteration_errors(plain, SwapCost(sync_transfers=True))["predicted_s"].tolist() == pytest.approx(base, rel=1e-12)
    # counts without sizes cannot be priced: one line naming the file and the column
    with pytest.raises(InputError, match=r"^live/iterations.parquet: column num_swaps_out without swap_out_tokens"):
        iteration_errors(rows.drop(columns=["swap_out_tokens"]), SwapCost(sync_transfers=True),
                         where="live/iterations.parquet")


class ChunkCost(HandCost):
    """HandCost plus 1 us per token of KV a prefill chunk attends to beyond its own."""

    def iteration_s(self, prefill_tokens, decode_context_tokens, prefill_context_tokens=()):
        return super().iteration_s(prefill_tokens, decode_context_tokens) + 1e-6 * sum(prefill_context_tokens)


def test_chunk_rows_are_priced_with_the_kv_their_chunks_attend_to():
    # row 0: 2 chunks of 10 tokens after 30 tokens of KV between them, beside a decode at 40;
    # row 1: a whole prefill (no context), priced as before
    rows = iterations("sarathi", "recompute", [(0.0, 0.002, 1, 3, 2, 20, 40, 40), (0.002, 0.004, 1, 1, 1, 8, 0, 0)])
    rows["prefill_context_tokens"] = [30, 0]
    got = iteration_errors(rows, ChunkCost())
    want = [2e-3 + 1e-5 * 20 + 1e-4 + 1e-6 * 40 + 1e-6 * 30, 1e-3 + 1e-5 * 8]
    assert got["predicted_s"].tolist() == pytest.approx(want, rel=1e-12)


class RecordingCost(HandCost):
    """HandCost that records the chunk contexts each call passed (None: not passed)."""

    def __init__(self) -> None:
        super().__init__()
        self.contexts = []

    def iteration_s(self, prefill_tokens, decode_context_tokens, prefill_context_tokens=None):
        self.contexts.append(None if prefill_context_tokens is None else list(prefill_context_tokens))
        return super().iteration_s(prefill_tokens, decode_context_tokens)


def test_a_chunked_policy_prices_its_chunks_as_chunks_even_after_no_context():
    # a chunked policy's first chunk (context 0) beside a decode is priced as a chunk, as the
    # simulator prices it (the profile's mixed_chunk grid applies); a decode-only row is not
    rows = iterations("sarathi", "recompute", [(0.0, 0.002, 1, 2, 1, 16, 40, 40), (0.002, 0.003, 1, 1, 0, 0, 41, 41)])
    rows["prefill_context_tokens"] = [0, 0]
    chunked = RecordingCost()
    iteration_errors(rows, chunked, chunked=True)
    assert chunked.contexts == [None, None, [0]]  # row 0 priced again, with its chunk's context
    plain = RecordingCost()
    iteration_errors(rows, plain)
    assert plain.contexts == [None, None]


@pytest.mark.parametrize(("config", "policy", "expected"), [
    ({"policies": {"sarathi": {"chunked_prefill_tokens": None}}}, "sarathi", True),  # always chunks (512)
    ({"policies": {"fcfs": {"chunked_prefill_tokens": 32}}}, "fcfs", True),
    ({"policies": {"fcfs": {"chunked_prefill_tokens": None}}}, "fcfs", False),
    ({}, "skip-join-mlfq", False),
    ({}, "my_policies.py:Mine", False),  # a user policy: its config says it
])
def test_which_runs_chunked_their_prefills(config, policy, expected):
    assert chunks_prefills(config, policy) is expected


def test_busy_iterations_last_until_the_next_start():
    # 1 job left after row 0 (batch 2, one finishes at 0.001): measured to row 1's start, 0.0012;
    # after row 1 both are done: its own end (then an idle wait); the last row: its own end
    rows = iterations("fcfs", "recompute", [(0.0, 0.001, 1, 2, 0, 0, 60, 40), (0.0012, 0.002, 1, 1, 0, 0, 41, 41),
                                            (0.5, 0.501, 1, 1, 1, 8, 0, 0)]).assign(num_queued=0)
    got = iteration_errors(rows, HandCost(), finish_s=[0.001, 0.002, 0.501])
    assert got["measured_s"].tolist() == pytest.approx([0.0012, 0.0008, 0.001], rel=1e-9)
    assert iteration_errors(rows, HandCost())["measured_s"].tolist() == pytest.approx([0.001, 0.0008, 0.001], rel=1e-9)


def test_validation_table_input_errors(hand_runs, tmp_path):
    live, sim = hand_runs
    only_fcfs = RunWriter(tmp_path / "sim1", {})
    only_fcfs.add(requests("fcfs", "recompute", [1.0], [0.5]))
    with pytest.raises(InputError, match="policy skip-join-mlfq is missing from the simulated run's summary.csv"):
        validation_table(live, load_run(tmp_path / "sim1"), HandCost())
    with pytest.raises(InputError, match="no iterations.parquet"):
        validation_table(sim, live, HandCost())
    skipped = live.iterations.assign(num_iterations=2)
    with pytest.raises(InputError, match="row 0 covers 2 iterations"):
        iteration_errors(skipped, HandCost())


def test_cdf_figure(hand_runs, tmp_path):
    live, sim = hand_runs
    fig = plot_validation_cdf(live.requests, sim.requests)
    assert len(fig.axes) == 2 and fig.get_suptitle() == "JCT CDF: simulator against live executor"
    fcfs, sj = fig.axes
    assert fcfs.get_title() == "fcfs: mean JCT error -3.1%"
    assert sj.get_title() == "skip-join-mlfq: mean JCT error +0.0%\n(1 measured unfinished)"
    assert [t.get_text() for t in fcfs.get_legend().get_texts()] == ["measured (live executor) (n=4)", "simulated (n=4)"]
    measured, simulated = fcfs.get_lines()
    assert measured.get_xdata().tolist() == [1.0, 1.0, 2.0, 3.0, 10.0]
    assert measured.get_ydata().tolist() == [0.0, 0.25, 0.5, 0.75, 1.0]
    assert simulated.get_xdata().tolist() == [1.5, 1.5, 2.0, 3.0, 9.0]
    assert fcfs.get_xlabel() == "Job completion time, JCT (s)" and fcfs.get_ylabel() == "Fraction of finished requests"


SMALL_TRACE = "synth:num_requests=24,rate=150,cv=2,lengths=uniform:prompt=8-48,output=4-32,seed=3"
# Gross errors only (a unit slip, a cost term dropped or charged twice: a factor of 2 or more):
# fidelity is benchmarks/validate_targets.py's job. A 3-second profile and 24 requests sample
# one or two of this VM's speed phases (a fixed pass's 5-second medians ranged 0.80-1.61 ms),
# and on 2026-12-03 the median of 3 quiet attempts reached -0.37 (JCT) and -0.25 (iteration).
LOOSE = {"jct_mean_s": 0.50, "jct_p50_s": 0.50, "ttft_mean_s": 0.75, "iteration_s": 0.40}
QUIET_SHARE = 0.9  # fastserve.validate_cli.CONTENDED_SHARE


def run_small(out) -> tuple[pd.DataFrame, float]:
    """validation.csv, and the least CPU share any policy's live run got while busy."""
    result = CliRunner().invoke(main, [
        "validate", "--model", "tiny-llama", "--trace", SMALL_TRACE, "--quick-profile", "--profile-budget-s", "3",
        "--device-kv-tokens", "640", "--host-kv-tokens", "4096", "--max-seq-tokens", "96", "-o", str(out)])
    assert result.exit_code == 0, result.output
    contention = json.loads((out / "validation.json").read_text())["contention"]
    return pd.read_csv(out / "validation.csv"), min(c["busy_cpu_share"] for c in contention.values())


@pytest.mark.serial  # its profile and live runs time a CPU engine: a second test process skews both
def test_small_validate_end_to_end(tmp_path):
    """Structure exactly, every attempt; the loose bounds on the median of the attempts during
    which no other process took the CPU (a contended live run holds waits no model predicts)."""
    errors, shares = [], []
    for attempt in range(3):
        out = tmp_path / f"v{attempt}"
        table, share = run_small(out)
        check_structure(out, table)
        shares.append(share)
        if share < QUIET_SHARE:
            continue
        errors.append(table.set_index(["policy", "metric"])["rel_error"])
        median = pd.concat(errors, axis=1).median(axis=1)
        if all(abs(median[(p, m)]) <= bound for p in ("fcfs", "skip-join-mlfq") for m, bound in LOOSE.items()):
            return
    if not errors:
        pytest.skip(f"machine too busy to compare timings: the live runs got {[round(s, 2) for s in shares]} of a "
                    f"CPU while busy (< {QUIET_SHARE}); the structure checks passed")
    pytest.fail(f"median errors over {len(errors)} quiet runs outside the loose bounds {LOOSE}:\n{median.to_string()}")


def check_structure(out, table):
    assert list(table.columns) == COLUMNS
    assert table["policy"].tolist() == ["fcfs"] * 8 + ["skip-join-mlfq"] * 8
    assert table["metric"].tolist() == [*METRICS, *REPLAYED_METRICS] * 2
    live, sim, replay = load_run(out / "live"), load_run(out / "sim"), load_run(out / "replay")
    assert live.config["engine"] == "live" and sim.config["engine"] == "sim"
    assert replay.config["clock"] == "replayed from live" and replay.config["policies"] == live.config["policies"]
    assert live.config["policies"] == sim.config["policies"]  # one scheduler configuration
    assert live.config["policies"]["skip-join-mlfq"]["block_size_tokens"] == 16  # the profiler's
    for policy in ("fcfs", "skip-join-mlfq"):
        rows = table[table["policy"] == policy].set_index("metric")
        for metric in METRICS[:4]:
            m = live.summary.set_index("policy").loc[policy, metric]
            s = sim.summary.set_index("policy").loc[policy, metric]
            assert rows.loc[metric, "measured"] == pytest.approx(m, rel=1e-12)
            assert rows.loc[metric, "simulated"] == pytest.approx(s, rel=1e-12)
            assert rows.loc[metric, "rel_error"] == pytest.approx((s - m) / m, rel=1e-9)
        for metric in REPLAYED_METRICS:
            s = replay.summary.set_index("policy").loc[policy, metric.removeprefix("replayed_")]
            assert rows.loc[metric, "simulated"] == pytest.approx(s, rel=1e-12)
        replayed = replay.requests[replay.requests["policy"] == policy]
        assert len(replayed) == 24 and (replayed["status"] == "finished").all()
        assert (live.requests[live.requests["policy"] == policy]["status"] == "finished").all()
    # the iteration rows: the profile written next to the runs, priced again here
    cost = cost_model(load_profile(out / "profile.json")).for_policy("fcfs")  # its own engine overhead
    fcfs = live.requests[live.requests["policy"] == "fcfs"]
    its = iteration_errors(live.iterations[live.iterations["policy"] == "fcfs"], cost, fcfs["arrival_s"], fcfs["finish_s"])
    plain = iteration_errors(live.iterations[live.iterations["policy"] == "fcfs"], cost)
    assert (its["predicted_s"] >= plain["predicted_s"]).all()  # new plans cost the measured planning time
    if cost.plan_overhead_s(1) > 0:  # the fit may put all planning cost elsewhere
        assert (its["predicted_s"] > plain["predicted_s"]).sum() >= 24  # at least one new plan per request
    fcfs_iter = table[(table["policy"] == "fcfs") & (table["metric"] == "iteration_s")].iloc[0]
    assert fcfs_iter["rel_error"] == pytest.approx(its["rel_error"].median(), rel=1e-9)
    assert (out / "validation_cdf.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_cli_errors_are_one_line(tmp_path):
    runner = CliRunner()
    twice = runner.invoke(main, ["validate", "--model", "tiny-llama", "--trace", SMALL_TRACE, "--policy", "fcfs",
                                 "--policy", "fcfs", "-o", str(tmp_path / "x")])
    assert twice.exit_code == 2 and "fcfs given twice" in twice.output
    bad = runner.invoke(main, ["validate", "--model", "tiny-llama", "--trace", str(tmp_path / "none.csv"),
                               "-o", str(tmp_path / "y")])
    assert bad.exit_code == 2 and "--trace" in bad.output and "Traceback" not in bad.output
    model = runner.invoke(main, ["validate", "--model", "no-such-model", "--trace", SMALL_TRACE, "-o", str(tmp_path / "z")])
    assert model.exit_code == 2 and "unknown model 'no-such-model'" in model.output



@pytest.mark.parametrize(("overhead", "warned"), [(True, False), (False, True)])
def test_a_measured_profile_without_engine_overhead_is_flagged(tmp_path, capsys, overhead, warned):
    import dataclasses

    from fastserve.validate_cli import _profile
    from profiles import save_profile

    prof = load_profile("tiny-llama_cpu_tp1")
    if not overhead:
        prof = dataclasses.replace(prof, overhead=None, policy_overhead={})
    save_profile(prof, tmp_path / "p.json")
    loaded, block = _profile(None, "tiny-llama", str(tmp_path / "p.json"), None, 1.0, False, tmp_path, ("fcfs",))
    assert (loaded.overhead is None) is not overhead and block == 16
    expected = (f"warning: {tmp_path / 'p.json'} holds no engine overhead (fastserve profile --overhead-rounds 0): "
                "the simulation prices forward passes alone, so its latencies come out low against a live engine's\n")
    assert capsys.readouterr().err == (expected if warned else "")
