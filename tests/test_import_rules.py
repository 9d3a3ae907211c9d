"""The import arrows of DESIGN.md, enforced.

- `policy` imports in a fresh interpreter with torch, simpy and pandas blocked, loads nothing
  outside the standard library and itself, and registers the five policies.
- A static scan (ast, no imports executed) of every package: `sim` never imports `executor` and
  vice versa, `analysis` imports neither engine, and the whole arrow table holds. The scanner
  is itself tested on synthetic sources, so these checks stay meaningful while a package is
  still empty.
"""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
OURS = ("policy", "profiles", "traces", "sim", "executor", "analysis", "client", "fastserve")
BLOCKED = ("torch", "simpy", "pandas")

# Who may import whom (DESIGN.md, "Layout"); fastserve, the CLI, sits on top of everything.
ALLOWED = {
    "policy": set(),
    "profiles": {"policy"},
    "traces": {"policy"},
    "sim": {"policy", "profiles", "traces"},
    "executor": {"policy", "profiles", "traces"},
    "analysis": set(OURS) - {"sim", "executor", "fastserve", "analysis", "client"},
    "client": {"policy", "traces"},
    "fastserve": set(OURS),
}

_PROBE = """
import json, sys

class Block:
    def find_spec(self, name, path=None, target=None):
        if name.partition(".")[0] in BLOCKED:
            raise ImportError("blocked by test_import_rules: " + name)
        return None

sys.meta_path.insert(0, Block())
blocked_ok = []
for name in BLOCKED:
    try:
        __import__(name)
    except ImportError:
        blocked_ok.append(name)
before = set(sys.modules)
import policy
new = sorted({m.partition(".")[0] for m in set(sys.modules) - before})
print(json.dumps({"policies": sorted(policy.POLICIES), "blocked_ok": blocked_ok, "new": new,
                  "stdlib": sorted(sys.stdlib_module_names)}))
"""


def test_policy_imports_without_torch_simpy_pandas(tmp_path):
    code = f"BLOCKED = {BLOCKED!r}\n{_PROBE}"
    out = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True,
                         text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    got = json.loads(out.stdout)
    assert got["blocked_ok"] == list(BLOCKED)  # the blocker is live
    assert got["policies"] == sorted(["fcfs", "vllm-fcfs", "mlfq", "skip-join-mlfq", "srpt", "sarathi"])
    outside = [m for m in got["new"] if m != "policy" and m not in got["stdlib"]]
    assert outside == []  # pure Python: only the standard library and itself


# -- static scan ---------------------------------------------------------------------------
def imported_packages(source: str) -> set[str]:
    """Top-level names that a module's source imports: `import x.y`, `from x.y import z`, and
    `importlib.import_module("x.y")` / `__import__("x")` with a literal name. Relative imports
    stay inside their own package and are skipped."""
    found = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found.update(a.name.partition(".")[0] for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.add(node.module.partition(".")[0])
        elif isinstance(node, ast.Call) and node.args and isinstance(node.args[0], ast.Constant):
            f = node.func
            name = f.attr if isinstance(f, ast.Attribute) else getattr(f, "id", "")
            if name in ("import_module", "__import__") and isinstance(node.args[0].value, str):
                found.add(node.args[0].value.partition(".")[0])
    return found


def package_imports(package: str) -> dict[str, set[str]]:
    """Our other packages that each file of `package` imports, by file (relative path)."""
    result = {}
    for path in sorted((REPO / package).rglob("*.py")):
        ours = imported_packages(path.read_text()) & set(OURS) - {package}
        result[str(path.relative_to(REPO))] = ours
    return result


def violations(package: str, forbidden: set[str]) -> list[str]:
    return [f"{f} imports {sorted(names & forbidden)}"
            for f, names in package_imports(package).items() if names & forbidden]


def test_scanner_sees_every_import_form():
    src = (
        "import os, executor.kv_store as kv\n"
        "from sim.replica import Replica\n"
        "from . import sibling\n"
        "from .. import parent\n"
        "def f():\n"
        "    import analysis\n"
        "    importlib.import_module('profiles.cost')\n"
        "    __import__('traces')\n"
        "    importlib.import_module(name)\n"
    )
    assert imported_packages(src) == {"os", "executor", "sim", "analysis", "profiles", "traces"}


def test_scanner_flags_a_forbidden_import(tmp_path, monkeypatch):
    (tmp_path / "sim").mkdir()
    (tmp_path / "sim" / "ok.py").write_text("import policy\nfrom traces import io\n")
    (tmp_path / "sim" / "bad.py").write_text("def f():\n    from executor.runner import run\n")
    monkeypatch.setattr(sys.modules[__name__], "REPO", tmp_path)
    assert violations("sim", {"executor"}) == ["sim/bad.py imports ['executor']"]


@pytest.mark.parametrize(("package", "forbidden"), [
    ("sim", {"executor"}),
    ("executor", {"sim"}),
    ("analysis", {"sim", "executor"}),
])
def test_engines_stay_apart(package, forbidden):
    assert violations(package, forbidden) == []


@pytest.mark.parametrize("package", [p for p in OURS if (REPO / p).is_dir()])
def test_arrow_table(package):
    assert violations(package, set(OURS) - ALLOWED[package] - {package}) == []


def test_policy_is_scanned():
    """The scan reads real files: policy has its modules and imports only the stdlib."""
    files = package_imports("policy")
    assert "policy/scheduler.py" in files and len(files) >= 10
    stdlib = set(sys.stdlib_module_names) | {"policy", "__future__"}
    for path in (REPO / "policy").rglob("*.py"):
        assert imported_packages(path.read_text()) <= stdlib, path
