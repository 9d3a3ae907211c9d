"""Fixtures: a tiny run directory and a tiny sweep directory (see fixtures.py)."""

import pytest

from tests.analysis.fixtures import write_run, write_sweep


@pytest.fixture
def run_dir(tmp_path):
    return write_run(tmp_path / "run-a")


@pytest.fixture
def sweep_dir(tmp_path):
    return write_sweep(tmp_path / "sweep")
