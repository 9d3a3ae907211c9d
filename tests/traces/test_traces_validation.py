"""Every validation error: one line naming the file, the 1-based data row and the column."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

import traces
from traces import Trace, TraceError, TraceWarning

HEADER = "arrival_s,prompt_tokens,output_tokens\n"


def error_of(path, **kwargs) -> str:
    with pytest.raises(TraceError) as err:
        traces.load(path, **kwargs)
    message = str(err.value)
    assert "\n" not in message
    assert message.startswith(str(path))
    return message[len(str(path)) :]


@pytest.mark.parametrize(
    "rows, expected",
    [
        ("0,3,4\n1,abc,4\n", ": row 2, column 'prompt_tokens': non-numeric value 'abc'"),
        ("0,3,4\n1,3,4\n2,3,\n", ": row 3, column 'output_tokens': missing value (NaN)"),
        ("0,0,4\n", ": row 1, column 'prompt_tokens': must be a positive integer, got 0"),
        ("0,3,4\n1,3,-5\n", ": row 2, column 'output_tokens': must be a positive integer, got -5"),
        ("0,3.5,4\n", ": row 1, column 'prompt_tokens': 3.5 is not a whole number"),
        ("0,3,4\n-1,3,4\n", ": row 2, column 'arrival_s': arrival time must be >= 0, got -1.0"),
        ("0,3,4\nx,3,4\n", ": row 2, column 'arrival_s': non-numeric value 'x'"),
        ("0,3,4\ninf,3,4\n", ": row 2, column 'arrival_s': value inf is not finite"),
        (
            "0,3,4\n2,3,4\n1,3,4\n",
            ": row 3, column 'arrival_s': arrivals are not sorted (1.0 comes after 2.0 in the row above); "
            "pass sort=True (CLI: --sort) to sort them",
        ),
    ],
)
def test_bad_values(write, rows, expected):
    assert error_of(write("t.csv", HEADER + rows)) == expected


def test_duplicate_request_ids(write):
    path = write(
        "t.csv", "arrival_s,prompt_tokens,output_tokens,request_id\n0,3,4,7\n1,3,4,8\n2,3,4,7\n"
    )
    assert (
        error_of(path)
        == ": row 3, column 'request_id': duplicate request id 7 (first seen in row 1)"
    )


def test_missing_column_of_a_forced_format(write):
    path = write("t.csv", "arrival_s,prompt_tokens\n0,3\n")
    assert error_of(path, fmt="fastserve-csv") == (
        ": missing column 'output_tokens' for format fastserve-csv (found: arrival_s, prompt_tokens)"
    )


def test_columns_of_no_known_format(write):
    message = error_of(write("t.csv", "arrival_s,prompt_tokens\n0,3\n"))
    assert message.startswith(": unknown format: columns [arrival_s,prompt_tokens] match none of (")
    assert "azure: TIMESTAMP,ContextTokens,GeneratedTokens" in message


def test_unknown_extension_and_unknown_format_name(write):
    path = write("t.txt", HEADER + "0,3,4\n")
    assert error_of(path).startswith(
        ": unknown format: cannot tell the file type from its extension"
    )
    assert error_of(path, fmt="bogus").startswith(": unknown format 'bogus' (choose fastserve-csv,")


def test_empty_file_and_header_only(write):
    assert error_of(write("empty.csv", "")) == ": empty file (no header, no data rows)"
    assert error_of(write("header.csv", HEADER)) == ": empty trace (no data rows)"
    assert error_of(write("empty.jsonl", "")) == ": empty trace (no data rows)"


def test_missing_file(tmp_path):
    assert error_of(tmp_path / "nope.csv") == ": no such file"


def test_lengths_table_without_arrivals(write):
    path = write("sg.csv", "num_prefill_tokens,num_decode_tokens\n3,4\n")
    assert error_of(path) == (
        ": format 'lengths' has no arrival times; give an arrival process "
        "(arrivals='poisson:rate=4', CLI: --arrivals poisson:rate=4)"
    )


def test_bad_azure_timestamp(write):
    path = write(
        "az.csv",
        "TIMESTAMP,ContextTokens,GeneratedTokens\n2023-11-16 18:17:03.97,4,1\nnot-a-time,3,1\n",
    )
    assert error_of(path) == ": row 2, column 'TIMESTAMP': not a timestamp: 'not-a-time'"


def test_mooncake_source_column_names_in_errors(write):
    path = write(
        "mc.jsonl",
        '{"timestamp": 0, "input_length": 1, "output_length": 1}\n'
        '{"timestamp": 5, "input_length": "ten", "output_length": 1}\n',
    )
    assert error_of(path) == ": row 2, column 'input_length': non-numeric value 'ten'"


def test_invalid_json_line(write):
    path = write(
        "mc.jsonl", '{"timestamp": 0, "input_length": 1, "output_length": 1}\n{"timestamp": 5,\n'
    )
    assert error_of(path) == ": line 2, character 17: invalid JSON (Expecting property name enclosed in double quotes)"


def test_sort_true_sorts_stably_and_warns(write):
    path = write("t.csv", HEADER + "0,1,1\n2,2,2\n1,3,3\n2,4,4\n1,5,5\n")
    with pytest.warns(
        TraceWarning, match=r"t.csv: arrivals were not sorted \(first at row 3\); sorted them"
    ):
        trace = traces.load(path, sort=True)
    assert trace.arrival_s.tolist() == [0, 1, 1, 2, 2]
    assert trace.prompt_tokens.tolist() == [1, 3, 5, 2, 4]  # equal times keep file order
    assert trace.request_id.tolist() == [0, 2, 4, 1, 3]  # ids remain the source rows


def test_sorted_file_gives_no_warning(write):
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        traces.load(write("t.csv", HEADER + "0,1,1\n1,1,1\n"), sort=True)


def test_trace_constructor_validates_too():
    with pytest.raises(
        TraceError,
        match=r"^<memory>: row 2, column 'output_tokens': must be a positive integer, got 0$",
    ):
        Trace(np.array([0.0, 1.0]), np.array([1, 2]), np.array([1, 0]))
    with pytest.raises(TraceError, match="columns have different lengths"):
        Trace(np.array([0.0, 1.0]), np.array([1]), np.array([1, 2]))
    with pytest.raises(TraceError, match="duplicate request id 4"):
        Trace(np.array([0.0, 1.0]), np.array([1, 1]), np.array([1, 1]), np.array([4, 4]))
