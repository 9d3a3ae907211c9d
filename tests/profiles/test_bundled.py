"""Bundled profiles load, record the command that made them, and still match that command."""

import shlex

import pytest

import profiles
from profiles.capacity import MemoryConfig
from profiles.roofline import roofline_profile

BUNDLED = ["opt-13b_a100-80gb_tp1", "llama-2-7b_h100-sxm_tp1"]


def test_default_and_list():
    assert profiles.DEFAULT_PROFILE == "opt-13b_a100-80gb_tp1"
    assert set(BUNDLED) <= set(profiles.list_profiles())


@pytest.mark.parametrize("name", BUNDLED)
def test_bundled_profile_is_reproducible_from_its_command(name):
    p = profiles.load_profile(name)
    args = shlex.split(p.generated_by)
    assert args[:3] == ["fastserve", "profiles", "roofline"]
    opts = dict(zip(args[3::2], args[4::2], strict=True))
    assert opts["-o"] == f"profiles/data/{name}.json"
    again = roofline_profile(opts["--model"], opts["--gpu"], tp=int(opts["--tp"]), pp=int(opts["--pp"]),
                             memory=MemoryConfig(), generated_by=p.generated_by)
    # the grids and capacities the command gives today are the ones shipped (catalog drift check)
    assert (again.prefill, again.decode, again.prefill_context, again.swap_out, again.device_kv_tokens,
            again.host_kv_tokens) == \
        (p.prefill, p.decode, p.prefill_context, p.swap_out, p.device_kv_tokens, p.host_kv_tokens)
    assert p.name == name and p.source == "roofline"
