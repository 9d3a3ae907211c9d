"""A benchmark with a target exits non-zero when it misses it (validate_targets' verdict, with
the repetitions replaced by fixed validation rows)."""

from __future__ import annotations

import sys
from pathlib import Path

import pandas as pd
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
import validate_targets  # noqa: E402

sys.path.pop(0)


def _rows(error: float):
    def repetition(args, root, model, kv, rep):
        return pd.DataFrame({"model": [model], "kv": [kv], "policy": ["fcfs"], "metric": ["jct_mean_s"],
                             "rel_error": [error], "quiet": [True]})
    return repetition


@pytest.mark.parametrize("error, code", [(0.13, 1), (0.01, None)])
def test_validate_targets_exits_non_zero_on_a_miss(monkeypatch, capsys, tmp_path, error, code):
    monkeypatch.setattr(validate_targets, "_repetition", _rows(error))
    monkeypatch.setattr(sys, "argv", ["validate_targets.py", "--models", "tiny-opt", "--kv", "standard",
                                      "--repeats", "1", "--out", str(tmp_path)])
    if code is None:
        validate_targets.main()
        assert capsys.readouterr().out.endswith("\nall targets met\n")
    else:
        with pytest.raises(SystemExit) as exit_:
            validate_targets.main()
        assert exit_.value.code == code and capsys.readouterr().out.endswith("\n1 target(s) missed\n")
