"""Shared fixtures for the traces tests: the reference-data folder and small helpers."""

from __future__ import annotations

from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
SHARED_TRACES = REPO_ROOT.parent / "shared" / "data" / "traces"
AZURE_CODE = SHARED_TRACES / "azure_2023_code.csv"
AZURE_CONV = SHARED_TRACES / "azure_2023_conv.csv"
SHAREGPT_LENGTHS = SHARED_TRACES / "sharegpt_lengths_llama2.csv"


def need(path: Path) -> Path:
    """Skip the test, saying why, when a reference file under ../shared/data is absent."""
    if not path.is_file():
        pytest.skip(f"reference data {path} is absent (../shared/data/traces beside the repo root)")
    return path


@pytest.fixture
def write(tmp_path):
    """write(name, text) -> path of a file with that text in the test's temporary folder."""

    def _write(name: str, text: str) -> Path:
        path = tmp_path / name
        path.write_text(text, encoding="utf-8")
        return path

    return _write
