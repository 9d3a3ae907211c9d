"""A user's policy file on a distributed live replica launched by torchrun: every rank parses the
same command line (so each loads the file, from its own working directory), rank 0 alone runs
the policy. Spawned workers (`--tp 2` without torchrun) never see the policy at all."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pandas as pd

ROOT = Path(__file__).resolve().parents[2]
SPF = ROOT / "examples" / "policies" / "shortest_prompt_first.py"


def _trace(tmp_path: Path) -> Path:
    path = tmp_path / "t.csv"
    n = 12
    pd.DataFrame({"arrival_s": [0.1 * i for i in range(n)], "prompt_tokens": [8 + 3 * (i % 7) for i in range(n)],
                  "output_tokens": [6 + 2 * (i % 5) for i in range(n)]}).to_csv(path, index=False)
    return path


def _args(trace: Path, out: Path, spec: str, *shape: str) -> list[str]:
    return ["serve", "--trace", str(trace), "--model", "tiny-llama", "--device-kv-tokens", "256",
            "--host-kv-tokens", "256", "--block-size", "4", "--max-batch", "4", "--max-seq-tokens", "128",
            "--time-scale", "0.05", "--policy", spec, *shape, "-o", str(out)]


def test_torchrun_every_rank_loads_the_relative_file(tmp_path):
    (tmp_path / "spf.py").write_text(SPF.read_text())
    spec = "spf.py:ShortestPromptFirst"  # relative to the ranks' working directory
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2", "-m", "fastserve",
           *_args(_trace(tmp_path), tmp_path / "run", spec, "--pp", "2")]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=180, cwd=tmp_path, env=env)
    assert done.returncode == 0, done.stderr[-2000:]
    requests = pd.read_parquet(tmp_path / "run" / "requests.parquet")
    assert len(requests) == 12 and (requests["status"] == "finished").all()
    record = json.loads((tmp_path / "run" / "config.json").read_text())["policy_classes"][spec]
    assert record["class"] == "ShortestPromptFirst" and record["module"] == "spf"
    assert record["file"] == str(tmp_path / "spf.py")
