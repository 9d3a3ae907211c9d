"""SimPy cluster simulator driving the shared `policy` schedulers (see sim/replica.py)."""

from sim.cluster import SimResult, simulate
from sim.config import SimConfig

__all__ = ["SimConfig", "SimResult", "simulate"]
