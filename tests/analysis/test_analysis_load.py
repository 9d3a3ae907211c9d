"""Reading run and sweep directories; bad input gives one-line errors naming the path."""

import json

import pandas as pd
import pytest

from analysis.load import InputError, find_config_value, kind_of, load_run, load_sweep
from tests.analysis.fixtures import write_run


def test_kinds(run_dir, sweep_dir):
    assert kind_of(run_dir) == "run"
    assert kind_of(sweep_dir) == "sweep"


def test_neither_run_nor_sweep(tmp_path):
    with pytest.raises(InputError) as exc:
        kind_of(tmp_path)
    msg = str(exc.value)
    assert str(tmp_path) in msg and "neither a run directory" in msg and "\n" not in msg


def test_not_a_directory(tmp_path):
    with pytest.raises(InputError, match="not a directory"):
        kind_of(tmp_path / "nope")


def test_optional_files_absent(tmp_path):
    run = load_run(write_run(tmp_path / "r", iterations=False, spans=False))
    assert run.iterations is None and run.spans is None
    assert len(run.requests) == 10


def test_missing_column_names_file_and_column(run_dir):
    path = run_dir / "requests.parquet"
    pd.read_parquet(path).drop(columns=["finish_s", "status"]).to_parquet(path)
    with pytest.raises(InputError) as exc:
        load_run(run_dir)
    assert str(exc.value) == f"{path}: missing column(s) finish_s, status"


def test_empty_frame(run_dir):
    path = run_dir / "spans.parquet"
    pd.read_parquet(path).iloc[:0].to_parquet(path)
    with pytest.raises(InputError, match=f"{path}: has no rows"):
        load_run(run_dir)


def test_unreadable_file(run_dir):
    (run_dir / "requests.parquet").write_text("not parquet")
    with pytest.raises(InputError, match="requests.parquet: cannot read"):
        load_run(run_dir)


def test_bad_config_json(run_dir):
    (run_dir / "config.json").write_text("{oops")
    with pytest.raises(InputError, match="config.json: invalid JSON"):
        load_run(run_dir)


def test_missing_summary_is_recomputed(run_dir):
    (run_dir / "summary.csv").unlink()
    assert load_run(run_dir).summary["jct_mean_s"].tolist() == pytest.approx([16 / 3, 2.0])


def test_wrong_kind(run_dir, sweep_dir):
    with pytest.raises(InputError, match="is a sweep directory"):
        load_run(sweep_dir)
    with pytest.raises(InputError, match="not a sweep directory"):
        load_sweep(run_dir)


def test_sweep_counts(sweep_dir):
    sweep = load_sweep(sweep_dir)
    assert sweep.counts() == {"done": 24, "failed": 1, "pending": 0}
    assert len(sweep.summary) == 24


def test_sweep_without_summary(sweep_dir):
    (sweep_dir / "summary.csv").unlink()
    with pytest.raises(InputError, match="no cell of the sweep has finished"):
        load_sweep(sweep_dir)


def test_empty_summary_csv(sweep_dir):
    (sweep_dir / "summary.csv").write_text("")
    with pytest.raises(InputError, match="summary.csv: file is empty"):
        load_sweep(sweep_dir)


def test_find_config_value(tmp_path):
    config = {"a": {"kv_bytes_per_token": 10}, "b": [{"kv_bytes_per_token": 10}], "replicas": 2}
    assert find_config_value(config, "kv_bytes_per_token") == 10
    assert find_config_value(config, "missing") is None
    config["c"] = {"kv_bytes_per_token": 20}
    with pytest.raises(InputError, match="kv_bytes_per_token has several values"):
        find_config_value(config, "kv_bytes_per_token")
    assert json.dumps(config)  # plain JSON data, as config.json holds


def test_an_older_summary_counts_finished_requests_as_num_requests(run_dir):
    path = run_dir / "summary.csv"
    summary = pd.read_csv(path)
    legacy = summary.drop(columns=["num_offered"]).rename(columns={"num_finished": "num_requests"})
    legacy.to_csv(path, index=False)
    loaded = load_run(run_dir).summary
    assert loaded["num_finished"].tolist() == summary["num_finished"].tolist() == [3, 4]
    assert "num_requests" not in loaded
