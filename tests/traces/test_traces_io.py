"""Reading and writing: lossless round trips, format detection, the public-format loaders."""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import traces
from traces import Trace
from traces.schema import MAX_TOKENS

EXTENSIONS = ("csv", "jsonl", "parquet")


@st.composite
def any_trace(draw):
    n = draw(st.integers(1, 30))
    arrival_s = sorted(
        draw(
            st.lists(
                st.floats(0, 1e9, allow_nan=False, allow_infinity=False), min_size=n, max_size=n
            )
        )
    )
    tokens = st.lists(st.integers(1, MAX_TOKENS), min_size=n, max_size=n)
    ids = draw(st.lists(st.integers(-(2**62), 2**62), min_size=n, max_size=n, unique=True))
    return Trace(np.array(arrival_s), np.array(draw(tokens)), np.array(draw(tokens)), np.array(ids))


@settings(max_examples=40, deadline=None)
@given(any_trace())
def test_round_trip_through_every_format_is_lossless(trace):
    with tempfile.TemporaryDirectory() as tmp:
        for ext in EXTENSIONS:
            path = Path(tmp) / f"t.{ext}"
            traces.save(trace, path)
            loaded = traces.load(path)
            assert loaded == trace, ext
            assert loaded.arrival_s.tobytes() == trace.arrival_s.tobytes()  # bit-exact floats


@pytest.mark.parametrize("ext", EXTENSIONS)
def test_saved_file_is_detected_as_our_format_and_keeps_columns(tmp_path, ext):
    trace = traces.synthesize(50, "poisson:rate=2", "uniform:prompt=1-9,output=1-9", seed=3)
    path = tmp_path / f"t.{ext}"
    traces.save(trace, path)
    assert traces.load(path, fmt=f"fastserve-{ext}") == trace
    assert list(trace.frame.columns) == [
        "arrival_s",
        "prompt_tokens",
        "output_tokens",
        "request_id",
    ]
    assert traces.load(path).source == str(path)


def test_own_format_without_request_id_numbers_rows(write):
    trace = traces.load(write("t.csv", "arrival_s,prompt_tokens,output_tokens\n0.5,3,4\n1.5,5,6\n"))
    assert trace.request_id.tolist() == [0, 1]
    assert trace.arrival_s.tolist() == [0.5, 1.5]  # times kept as the data says


def test_azure_timestamps_become_seconds_from_the_first(write):
    path = write(
        "az.csv",
        "TIMESTAMP,ContextTokens,GeneratedTokens\n"
        "2023-11-16 18:17:03.9799600,4808,10\n2023-11-16 18:17:04.0319600,3180,8\n"
        "2023-11-16 18:18:03.9799600,7,9\n",
    )
    trace = traces.load(path)
    np.testing.assert_allclose(trace.arrival_s, [0.0, 0.052, 60.0], rtol=0, atol=1e-9)
    assert trace.prompt_tokens.tolist() == [4808, 3180, 7]
    assert trace.output_tokens.tolist() == [10, 8, 9]


def test_mooncake_jsonl_milliseconds_become_seconds(write):
    path = write(
        "mc.jsonl",
        '{"timestamp": 0, "input_length": 100, "output_length": 10, "hash_ids": [1, 2]}\n'
        '{"timestamp": 2500, "input_length": 7, "output_length": 3, "hash_ids": [3]}\n',
    )
    trace = traces.load(path)
    assert trace.arrival_s.tolist() == [0.0, 2.5]
    assert trace.prompt_tokens.tolist() == [100, 7] and trace.output_tokens.tolist() == [10, 3]


def test_lengths_table_takes_arrivals_from_a_generator(write):
    path = write(
        "sg.csv",
        "num_prefill_tokens,num_decode_tokens,num_total_tokens,pd_ratio\n"
        "74,918,992,0.08\n290,905,1195,0.32\n5,5,10,1.0\n",
    )
    trace = traces.load(path, arrivals="constant:rate=2")
    assert trace.arrival_s.tolist() == [0.0, 0.5, 1.0]
    assert trace.prompt_tokens.tolist() == [74, 290, 5]
    # The same seed gives the same arrival times as synthesize's arrival stream.
    seeded = traces.load(path, arrivals="poisson:rate=2", seed=9)
    synthetic = traces.synthesize(3, "poisson:rate=2", "fixed:prompt=1,output=1", seed=9)
    np.testing.assert_array_equal(seeded.arrival_s, synthetic.arrival_s)


def test_arrivals_replace_recorded_times(write):
    path = write("t.csv", "arrival_s,prompt_tokens,output_tokens\n5,3,4\n9,5,6\n")
    assert traces.load(path, arrivals="constant:rate=1").arrival_s.tolist() == [0.0, 1.0]


def test_forced_format_reads_an_odd_extension(write):
    path = write(
        "az.txt", "TIMESTAMP,ContextTokens,GeneratedTokens\n2023-11-16 18:17:03.9799600,48,10\n"
    )
    assert traces.load(path, fmt="azure").prompt_tokens.tolist() == [48]


def test_compressed_csv_is_read(tmp_path):
    trace = traces.synthesize(20, "poisson:rate=2", "fixed:prompt=3,output=2", seed=1)
    path = tmp_path / "t.csv.gz"
    trace.frame.to_csv(path, index=False)
    assert traces.load(path) == trace


def test_load_lengths_reads_any_format(write):
    path = write("mc.jsonl", '{"timestamp": 0, "input_length": 100, "output_length": 10}\n')
    prompt, output = traces.load_lengths(path)
    assert prompt.tolist() == [100] and output.tolist() == [10]
