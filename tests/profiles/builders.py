"""Small hand-made profiles for the profile tests (real `Profile` objects, tiny grids)."""

from __future__ import annotations

from profiles.models import get_model
from profiles.schema import EngineOverhead, LatencyCurve, LatencyGrid, Profile
from profiles.store import profile_to_dict

# prefill: latency grows with batch and prompt length
PREFILL = LatencyGrid((1, 2, 4), (16, 64, 256),
                      ((0.010, 0.020, 0.060), (0.015, 0.035, 0.110), (0.025, 0.065, 0.210)))
# decode: a + b * batch + c * batch * context, sampled; fixed cost a = 0.008
DECODE = LatencyGrid((1, 2, 4, 8), (1, 100, 1000),
                     ((0.009, 0.010, 0.019), (0.010, 0.012, 0.030), (0.012, 0.016, 0.052), (0.016, 0.024, 0.096)))
SWAP = LatencyCurve((1000, 10_000, 1_000_000), (0.001, 0.002, 0.050))
# a forward-scale curve (job count, scale) and an engine overhead, for the cost-model tests
CURVE = ((1.0, 1.0), (3.0, 1.2), (7.0, 1.3))
OVERHEAD = EngineOverhead(iteration_s=1e-4, per_job_s=2e-5, per_prefill_s=5e-4, per_plan_s=3e-4, per_admission_s=7e-5)


def quiet(cm):
    """Silence a cost model's extrapolation warning (tested on its own in test_cost.py)."""
    cm.exits.warned = True
    return cm


def small_profile(**changes) -> Profile:
    fields = dict(model=get_model("tiny-llama"), hardware={"name": "cpu", "device": "test"},
                  software={"python": "3"}, tp=1, pp=1, prefill=PREFILL, decode=DECODE,
                  swap_out=SWAP, swap_in=LatencyCurve(SWAP.size_bytes, (0.002, 0.003, 0.060)),
                  kv_bytes_per_token=get_model("tiny-llama").kv_bytes_per_token,
                  device_kv_tokens=5000, host_kv_tokens=20000, source="measured",
                  generated_by="tests/profiles/builders.py")
    fields.update(changes)
    return Profile(**fields)


def small_profile_dict(**changes) -> dict:
    return profile_to_dict(small_profile(**changes))
