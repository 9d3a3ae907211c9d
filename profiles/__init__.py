"""Profiles and cost models: what an iteration, a swap and a KV slot cost on given hardware.

A profile (profiles/schema.py) is one model x hardware x parallelism: measured by the executor's
profiler, or derived from a roofline (profiles/roofline.py) for GPUs nobody here can run. Its
cost model (profiles/cost.py) implements `policy.CostModel` for both engines.

    p = load_profile(DEFAULT_PROFILE)      # bundled name or JSON path
    cm = cost_model(p)
    cm.iteration_s([512], [300, 900])      # one prefill of 512 tokens + two decodes

Catalogs: `profiles.models.MODELS`, `profiles.hardware.HARDWARE`. Importing this package loads
numpy only (no torch, pandas or matplotlib).
"""

from profiles import hardware, models, roofline
from profiles.cost import TableCostModel, cost_model
from profiles.grid_exits import ExtrapolationWarning
from profiles.schema import (
    SCHEMA_VERSION,
    EngineOverhead,
    LatencyCurve,
    LatencyGrid,
    Profile,
    ProfileError,
)
from profiles.store import DEFAULT_PROFILE, list_profiles, load_profile, save_profile

__all__ = [
    "DEFAULT_PROFILE", "SCHEMA_VERSION", "EngineOverhead", "ExtrapolationWarning", "LatencyCurve", "LatencyGrid",
    "Profile", "ProfileError", "TableCostModel", "cost_model", "hardware", "list_profiles",
    "load_profile", "models", "roofline", "save_profile",
]
