"""Policy specs (policy/loading.py): every form resolves to the right class, every failure is one
line naming what is wrong, an installed package's entry point is found, a worker loads a file it
does not have from the driver's bytes, and the CLI refuses a bad spec before running anything."""

from __future__ import annotations

import sys

import pytest
from click.testing import CliRunner

from fastserve.cli import main
from policy import SchedulerConfig, make_scheduler
from policy.fcfs import FCFS
from policy.loading import PolicyLoadError, load_policy_class, parse_spec, provenance, provide_file
from policy.mlfq import SkipJoinMLFQ

POLICY_SOURCE = '''
from policy.fcfs import FCFS


class Mine(FCFS):
    name = "mine"

    def __init__(self, config=None, cost=None, *, knob=1):
        super().__init__(config, cost)
        self.knob = knob


NOT_A_CLASS = 3
'''


@pytest.fixture()
def policy_file(tmp_path):
    path = tmp_path / "mine.py"
    path.write_text(POLICY_SOURCE)
    return path


def test_parse_spec_splits_target_and_typed_parameters():
    spec = parse_spec("a/b.py:Cls:n=3,x=0.5,flag=true,label=hi")
    assert spec.target == "a/b.py:Cls" and spec.is_file and not spec.is_import
    assert spec.kwargs() == {"n": 3, "x": 0.5, "flag": True, "label": "hi"}
    assert parse_spec("pkg.mod:Cls").is_import and parse_spec("fcfs").params == ()


def test_every_form_resolves(policy_file):
    assert load_policy_class("fcfs") is FCFS
    assert load_policy_class("policy.mlfq:SkipJoinMLFQ") is SkipJoinMLFQ
    cls = load_policy_class(f"{policy_file}:Mine")
    assert cls.__name__ == "Mine" and issubclass(cls, FCFS)
    assert load_policy_class(f"{policy_file}:Mine") is cls  # one module per file content
    sched = make_scheduler(f"{policy_file}:Mine:knob=7", SchedulerConfig())
    assert type(sched) is cls and sched.knob == 7


@pytest.mark.parametrize(("spec", "message"), [
    ("nope", "unknown policy 'nope'; choose one of fcfs, vllm-fcfs, mlfq, skip-join-mlfq, srpt, sarathi, or give module:Class"),
    ("no_such_pkg.mod:X", "policy 'no_such_pkg.mod:X': no module named 'no_such_pkg'"),
    ("policy.job:Job", "policy 'policy.job:Job': policy.job:Job is a class Job, not a policy.Scheduler subclass"),
    ("policy.scheduler:Scheduler", "policy.scheduler:Scheduler is abstract"),
    ("policy.fcfs:Nope", "policy 'policy.fcfs:Nope': policy.fcfs has no class 'Nope'"),
    ("missing.py:X", "policy file missing.py does not exist"),
    ("fcfs:x", "policy 'fcfs:x': no module named 'fcfs'"),
    ("a.py:Cls:oops", "policy 'a.py:Cls:oops': parameters after the class must be name=value, got 'oops'"),
    ("a.py:1x", "policy 'a.py:1x': '1x' is not a class name"),
    ("a.py:Cls:1x=2", "parameter '1x=2' is not name=value"),
])
def test_errors_are_one_line_and_say_which(spec, message):
    with pytest.raises(PolicyLoadError) as info:
        make_scheduler(spec)
    assert message in str(info.value) and "\n" not in str(info.value)


def test_errors_in_the_users_file(policy_file, tmp_path):
    with pytest.raises(PolicyLoadError, match=r"mine.py:NOT_A_CLASS is a int, not a policy.Scheduler subclass"):
        make_scheduler(f"{policy_file}:NOT_A_CLASS")
    with pytest.raises(PolicyLoadError, match=r"Mine does not take these parameters \(got an unexpected keyword"):
        make_scheduler(f"{policy_file}:Mine:nob=2")
    broken = tmp_path / "broken.py"
    broken.write_text("import no_such_dependency\n")
    with pytest.raises(PolicyLoadError, match=r"broken.py failed to load: ModuleNotFoundError: No module named"):
        make_scheduler(f"{broken}:X")


def test_an_installed_packages_entry_point(tmp_path, monkeypatch):
    """A real distribution on sys.path (dist-info with entry_points.txt), as pip would install it."""
    (tmp_path / "acme_policies.py").write_text("from policy.mlfq import MLFQ\n\nclass Acme(MLFQ):\n    name = 'acme'\n")
    info = tmp_path / "acme_policies-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: acme-policies\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text("[fastserve.policies]\nacme = acme_policies:Acme\nbad = acme_policies:nothing\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    assert load_policy_class("acme").__name__ == "Acme"
    assert provenance("acme")["module"] == "acme_policies"
    with pytest.raises(PolicyLoadError, match=r"policy 'bad' \(entry point acme_policies:nothing\) failed to load"):
        load_policy_class("bad")
    result = CliRunner().invoke(main, ["simulate", "--trace", "sample:bursty-small", "--policy", "nope", "-o",
                                       str(tmp_path / "r")])
    assert result.exit_code == 2 and "choose one of fcfs, vllm-fcfs, mlfq, skip-join-mlfq, srpt, sarathi, acme, bad" in result.output
    sys.modules.pop("acme_policies", None)


def test_a_worker_without_the_file_loads_the_drivers_bytes():
    provide_file("not/on/this/node.py", POLICY_SOURCE)
    cls = load_policy_class("not/on/this/node.py:Mine")
    record = provenance("not/on/this/node.py:Mine")
    assert cls.__name__ == "Mine" and record["class"] == "Mine" and len(record["sha256"]) == 64


def test_the_cli_refuses_a_bad_spec_before_running(tmp_path, policy_file):
    runner = CliRunner()
    out = tmp_path / "run"
    for command in (["simulate", "--trace", "sample:bursty-small"],
                    ["serve", "--trace", "sample:bursty-small", "--model", "tiny-llama"],
                    ["validate", "--trace", "sample:bursty-small", "--model", "tiny-llama"]):
        result = runner.invoke(main, [*command, "--policy", f"{policy_file}:Mine:nob=1", "-o", str(out)])
        assert result.exit_code == 2, result.output
        assert "Invalid value for '--policy'" in result.output and "does not take these parameters" in result.output
        assert "Traceback" not in result.output and not out.exists()


def test_a_sweep_grid_names_the_bad_spec(tmp_path):
    toml = tmp_path / "s.toml"
    toml.write_text('[sweep]\nnum_requests = 10\n[grid]\npolicy = ["x.py:Y"]\nrate = [1.0]\n')
    result = CliRunner().invoke(main, ["sweep", str(toml), "-o", str(tmp_path / "sw")])
    assert result.exit_code == 1
    assert f"Error: {toml}: grid.policy: policy file x.py does not exist" in result.output
