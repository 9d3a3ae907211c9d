"""fastserve's shared scheduling and KV-placement policy.

Pure Python: imports no torch, simpy or pandas, so that the simulator and the live executor run
the very same decisions. See DESIGN.md, "The shared policy contract".
"""

from policy.config import SWAP_MODES, SchedulerConfig
from policy.cost import CostEstimate, CostModel, SwapDirection
from policy.dispatch import DISPATCHERS, Dispatcher, ReplicaLoad, make_dispatcher
from policy.job import Job, KVLocation, to_us
from policy.kv import KVCapacity, KVSpace
from policy.plan import Horizon, Plan
from policy.records import RequestLog
from policy.registry import POLICIES, make_scheduler
from policy.scheduler import Scheduler

__all__ = [
    "DISPATCHERS", "POLICIES", "SWAP_MODES", "CostEstimate", "CostModel", "Dispatcher", "Horizon",
    "Job", "KVCapacity", "KVLocation", "KVSpace", "Plan", "ReplicaLoad", "RequestLog", "Scheduler",
    "SchedulerConfig", "SwapDirection", "make_dispatcher", "make_scheduler", "to_us",
]
