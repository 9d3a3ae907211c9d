"""Every schema error: one line naming the file and the field."""

import json

import pytest

from profiles.schema import LatencyCurve, ProfileError
from profiles.store import REQUIRED, load_profile, profile_from_dict, save_profile
from tests.profiles.builders import small_profile, small_profile_dict


def write(tmp_path, data, name="p.json"):
    path = tmp_path / name
    path.write_text(json.dumps(data) if not isinstance(data, str) else data)
    return path


def load_error(tmp_path, data) -> str:
    path = write(tmp_path, data)
    with pytest.raises(ProfileError) as info:
        load_profile(path)
    message = str(info.value)
    assert "\n" not in message
    assert message.startswith(f"{path}: field '")
    return message[len(f"{path}: "):]


def test_round_trip_is_exact(tmp_path):
    p = small_profile()
    path = save_profile(p, tmp_path / "sub" / "p.json")
    assert load_profile(path) == p
    assert load_profile(str(path)) == p


@pytest.mark.parametrize("key", REQUIRED)
def test_missing_top_level_field(tmp_path, key):
    data = small_profile_dict()
    del data[key]
    assert load_error(tmp_path, data) == f"field '{key}': missing"


def mutate(path: str, value):
    def apply(d):
        keys = path.split(".")
        for k in keys[:-1]:
            d = d[int(k)] if isinstance(d, list) else d[k]
        last = keys[-1]
        if value is DELETE:
            del d[last]
        elif isinstance(d, list):
            d[int(last)] = value
        else:
            d[last] = value
    return apply


DELETE = object()
CASES = [
    ("schema_version", 2, "field 'schema_version': expected 1, got 2"),
    ("source", "guess", "field 'source': must be one of ('roofline', 'measured'), got 'guess'"),
    ("generated_by", " ", "field 'generated_by': must be a non-empty string (the command that wrote it)"),
    ("hardware.name", DELETE, "field 'hardware.name': must be a string"),
    ("software", [], "field 'software': must be a JSON object, got list"),
    ("mixed_batch", "overlap", "field 'mixed_batch': must be one of ('fused', 'sequential'), got 'overlap'"),
    ("parallelism.tp", DELETE, "field 'parallelism.tp': missing"),
    ("parallelism.tp", 0, "field 'parallelism.tp': must be an integer > 0, got 0"),
    ("parallelism.pp", 1.5, "field 'parallelism.pp': must be an integer > 0, got 1.5"),
    ("kv.bytes_per_token", DELETE, "field 'kv.bytes_per_token': missing"),
    ("kv.device_tokens", 0, "field 'kv.device_tokens': must be an integer > 0, got 0"),
    ("kv.host_tokens", -1, "field 'kv.host_tokens': must be an integer >= 0, got -1"),
    ("model.num_layers", DELETE, "field 'model.num_layers': missing"),
    ("model.dtype", DELETE, "field 'model.dtype': missing"),
    ("model.layers", 3, "field 'model.layers': unknown field"),
    ("model.num_kv_heads", 3, "field 'model': model tiny-llama: num_kv_heads 3 must divide num_heads 4"),
    ("prefill.prompt_tokens", DELETE, "field 'prefill.prompt_tokens': missing"),
    ("prefill.prompt_tokens", [16, 64, 64],
     "field 'prefill.prompt_tokens': must be strictly increasing: point 2 (64) follows 64"),
    ("decode.batch_sizes", [1, 4, 2, 8], "field 'decode.batch_sizes': must be strictly increasing: point 2 (2) follows 4"),
    ("decode.context_tokens", [1, 100.5, 1000], "field 'decode.context_tokens': point 1 must be a positive integer, got 100.5"),
    ("decode.context_tokens", [0, 100, 1000], "field 'decode.context_tokens': point 0 must be a positive integer, got 0"),
    ("swap.bytes", [1000, 500, 1_000_000], "field 'swap.bytes': must be strictly increasing: point 1 (500) follows 1000"),
    ("swap.bytes", [1000], "field 'swap.bytes': must list at least 2 points, got (1000,)"),
    ("decode.latency_s.1.2", 0, "field 'decode.latency_s[1][2]': latency must be a finite number > 0, got 0"),
    ("prefill.latency_s.0.0", -0.5, "field 'prefill.latency_s[0][0]': latency must be a finite number > 0, got -0.5"),
    ("prefill.latency_s.2.1", "fast", "field 'prefill.latency_s[2][1]': latency must be a finite number > 0, got 'fast'"),
    ("swap.out_s.1", 0.0, "field 'swap.out_s[1]': latency must be a finite number > 0, got 0.0"),
    ("swap.in_s", [0.1, 0.2], "field 'swap.in_s': must have 3 values to match its axis, got 2"),
    ("decode.latency_s", [[0.01, 0.02, 0.03]], "field 'decode.latency_s': must have one row per batch size (4), got 1"),
    ("decode.latency_s.3", [0.01, 0.02], "field 'decode.latency_s[3]': must have 3 values to match its axis, got 2"),
]


@pytest.mark.parametrize(("path", "value", "expected"), CASES, ids=[c[0] + "=" + repr(c[1])[:12] for c in CASES])
def test_field_errors(tmp_path, path, value, expected):
    data = small_profile_dict()
    mutate(path, value)(data)
    assert load_error(tmp_path, data) == expected


def test_infinite_latency(tmp_path):
    text = json.dumps(small_profile_dict()).replace('"out_s": [0.001', '"out_s": [Infinity', 1)
    assert load_error(tmp_path, text) == "field 'swap.out_s[0]': latency must be a finite number > 0, got inf"


def test_pipeline_profile_needs_send_recv(tmp_path):
    data = small_profile_dict()
    data["parallelism"]["pp"] = 2
    assert load_error(tmp_path, data) == "field 'collectives.send_recv': required when pp > 1 (pp = 2)"
    data["collectives"] = {"send_recv": {"bytes": [10, 20], "latency_s": [1e-5]}}
    assert load_error(tmp_path, data) == "field 'collectives.send_recv.latency_s': must have 2 values to match its axis, got 1"
    data["collectives"] = {"send_recv": {"bytes": [10, 20], "latency_s": [1e-5, 2e-5]}}
    assert load_profile(write(tmp_path, data)).send_recv == LatencyCurve((10, 20), (1e-5, 2e-5))


def test_not_json_and_not_an_object(tmp_path):
    assert load_error(tmp_path, "{not json") == "field '<json>': not valid JSON: Expecting property name enclosed " \
                                                "in double quotes at line 1 column 2"
    assert load_error(tmp_path, "[1, 2]") == "field '<root>': must be a JSON object, got list"


def test_missing_file_and_unknown_name(tmp_path):
    with pytest.raises(ProfileError, match=r"nope\.json: field '<file>': cannot read: No such file or directory"):
        load_profile(tmp_path / "nope.json")
    with pytest.raises(ProfileError, match=r"^no-such-profile: field '<file>': no such file, and no bundled profile "
                                           r"named 'no-such-profile'; bundled: llama-2-7b_h100-sxm_tp1, "):
        load_profile("no-such-profile")


def test_dataclass_validates_without_a_file():
    with pytest.raises(ProfileError, match=r"^profile: field 'swap.bytes': out_s and in_s must share one bytes axis$"):
        small_profile(swap_in=LatencyCurve((1, 2, 3), (0.1, 0.2, 0.3)))
    with pytest.raises(ProfileError, match=r"^profile: field 'schema_version': expected 1, got 0$"):
        small_profile(schema_version=0)


def test_from_dict_defaults_mixed_batch_to_fused():
    data = small_profile_dict()
    del data["mixed_batch"]
    assert profile_from_dict(data).mixed_batch == "fused"


def test_grids_accept_lists_and_numpy_values():
    import numpy as np

    from profiles.schema import LatencyGrid
    from tests.profiles.builders import DECODE
    grid = LatencyGrid(np.array(DECODE.batch_sizes), list(DECODE.tokens), np.array(DECODE.latency_s))
    assert grid == DECODE and type(grid.batch_sizes[0]) is int and type(grid.latency_s[0][0]) is float
    assert small_profile(decode=grid) == small_profile()


def test_transfers_default_by_hardware_and_round_trip():
    """Whether swaps block compute: written only when it differs from the hardware's default
    (CPU engines copy synchronously, GPU ones on copy streams), so older profiles read right."""
    from profiles import cost_model
    from profiles.store import profile_to_dict

    d = small_profile_dict()  # hardware "cpu", but transfers "async" (the dataclass default)
    assert d["transfers"] == "async" and profile_from_dict(d).transfers == "async"
    del d["transfers"]
    assert profile_from_dict(d).transfers == "sync"  # a CPU profile from before the field
    d["hardware"] = {"name": "a100-80gb"}
    assert profile_from_dict(d).transfers == "async"
    assert "transfers" not in profile_to_dict(small_profile(transfers="sync"))
    assert cost_model(small_profile(transfers="sync")).sync_transfers
    assert not cost_model(small_profile()).sync_transfers
    with pytest.raises(ProfileError, match=r"field 'transfers': must be one of \('async', 'sync'\), got 'maybe'"):
        small_profile(transfers="maybe")
