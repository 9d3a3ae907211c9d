"""The bundled H200 profile was measured by the profiler on a real GPU, and it checks the roofline.

profiles/data/llama-2-7b_h200_tp1.json came from `fastserve profile --device cuda` on one H200
(random bf16 weights: a forward pass costs the same whatever the weights). Its KV capacity and
its large swaps test the roofline's memory and PCIe model against hardware. Its iteration grids
do not: the eager executor spends ~40 ms per iteration launching kernels whatever the batch
(README, "A measured GPU profile"), so they price this executor, not the GPU.
"""

import dataclasses

import pytest

from profiles import cost_model, load_profile
from profiles.capacity import MemoryConfig
from profiles.models import get_model
from profiles.roofline import roofline_profile

NAME = "llama-2-7b_h200_tp1"


@pytest.fixture(scope="module")
def measured():
    return load_profile(NAME)


@pytest.fixture(scope="module")
def roofline():
    return roofline_profile("llama-2-7b", "h200", tp=1, pp=1, memory=MemoryConfig(), generated_by="test")


def test_it_was_measured_on_cuda_by_the_profiler(measured):
    assert measured.source == "measured" and measured.transfers == "async"
    assert measured.generated_by.startswith("fastserve profile --model llama-2-7b --device cuda ")
    assert measured.hardware["device"] == "NVIDIA H200" and measured.hardware["name"] == "h200"
    assert measured.model == dataclasses.replace(get_model("llama-2-7b"), dtype="bfloat16")
    assert measured.notes["engine_overhead"] == "not measured (fastserve profile --overhead-rounds 0)"


def test_roofline_kv_capacity_is_within_half_a_percent_of_the_measured(measured, roofline):
    # both: 0.9 x the card's memory, less weights and peak activations, over 512 KiB per token
    assert (measured.device_kv_tokens, roofline.device_kv_tokens) == (230_883, 230_052)
    assert abs(roofline.device_kv_tokens / measured.device_kv_tokens - 1) < 0.005


@pytest.mark.parametrize("tokens", [256, 1024, 4096])
def test_roofline_prices_large_swaps_within_ten_percent_of_the_measured(measured, roofline, tokens):
    # 128 MiB to 2 GiB: bandwidth-bound copies, where the roofline's PCIe figure applies
    # (smaller ones pay a fixed launch and sync cost the roofline leaves at 10 us)
    for direction in ("out", "in"):
        seen, priced = cost_model(measured).swap_s(tokens, direction), cost_model(roofline).swap_s(tokens, direction)
        assert abs(priced / seen - 1) < 0.10, (direction, seen, priced)
