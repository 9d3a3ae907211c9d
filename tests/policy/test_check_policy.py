"""`fastserve check-policy`: every built-in passes every property it claims; deliberately broken
policies fail, naming the property, with the smallest failing trace."""

from __future__ import annotations

import pytest
from click.testing import CliRunner

from fastserve.cli import main
from policy import POLICIES

BROKEN = '''
import itertools

from policy.fcfs import VLLMFCFS

_coin = itertools.count()


class DropsJobOne(VLLMFCFS):
    """Never runs job 1: it waits forever."""

    def walk(self):
        return (job for job in super().walk() if job.id != 1)


class Flaky(VLLMFCFS):
    """Orders by a counter that survives between runs: not deterministic."""

    def join(self, job, now_us):
        job.seq = (next(_coin) * 7919) % 1000 * 1000 + job.id
'''


def check(*args):
    return CliRunner().invoke(main, ["check-policy", *map(str, args), "--num-traces", "30"])


@pytest.mark.parametrize("name", list(POLICIES))
def test_every_builtin_passes(name):
    result = check(name)
    assert result.exit_code == 0, result.output
    starvation = "SKIP  no starvation: not claimed" if name == "srpt" else "PASS  no starvation: 1 trace"
    for line in ("PASS  conservation: 30 traces", "PASS  no KV over-commit: 30 traces",
                 "PASS  determinism: 30 traces", "PASS  skipping == stepping: 30 traces", starvation):
        assert line in result.output


def test_a_policy_that_drops_a_job_fails_conservation_with_a_smallest_trace(tmp_path):
    (tmp_path / "broken.py").write_text(BROKEN)
    result = check(f"{tmp_path / 'broken.py'}:DropsJobOne")
    assert result.exit_code == 1, result.output
    assert "FAIL  conservation: at 0 us nothing runs and nothing is in flight, 1 jobs left (ids [1])" in result.output
    assert "FAIL  determinism" not in result.output and "PASS  no KV over-commit" in result.output
    smallest = result.output.split("conservation fails; smallest failing trace found:\n")[1]
    assert "  1 jobs:\n     id arrival_us prompt output\n      1          0      1      1\n" in smallest


def test_a_nondeterministic_policy_fails_determinism(tmp_path):
    (tmp_path / "broken.py").write_text(BROKEN)
    result = check(f"{tmp_path / 'broken.py'}:Flaky")
    assert result.exit_code == 1
    assert "FAIL  determinism: two runs differ at decision" in result.output
    assert "PASS  conservation" in result.output


def test_a_false_starvation_claim_fails(tmp_path):
    (tmp_path / "claims.py").write_text("from policy.srpt import SRPT\n\nclass Claims(SRPT):\n    starvation_free = True\n")
    result = CliRunner().invoke(main, ["check-policy", f"{tmp_path / 'claims.py'}:Claims", "--num-traces", "2"])
    assert result.exit_code == 1
    assert "FAIL  no starvation: job 0 finished at" in result.output and "it waited while shorter jobs kept coming" in result.output


def test_a_bad_spec_is_a_usage_error():
    result = CliRunner().invoke(main, ["check-policy", "policy.job:Job"])
    assert result.exit_code == 2 and "not a policy.Scheduler subclass" in result.output
