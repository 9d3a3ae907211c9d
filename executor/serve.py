"""One live serving setup: a model, a KV store sized like the policy, and an engine per policy.

`LiveServer` builds the model once and, for each policy, a scheduler and a `KVStore` from the
same `SchedulerConfig` (so their capacities agree by construction, and the engine checks it
again). Runs are independent: each starts from an empty store and fresh jobs.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import torch

from executor.arrivals import Arrivals
from executor.engine import Engine, EngineConfig, RunResult
from executor.kv_store import KVStore
from executor.models import build_model, config_from_spec, kv_layout, max_context_tokens
from executor.runner import ModelRunner
from policy import SchedulerConfig, make_scheduler
from profiles.models import get_model


@dataclass(frozen=True)
class ModelConfig:
    name: str  # a catalog name (profiles.models), or a label when `checkpoint` is given
    checkpoint: str | None = None  # local directory; nothing is downloaded
    device: str = "cpu"
    dtype: str = "auto"
    seed: int = 0  # random weights

    def __post_init__(self) -> None:
        if self.device not in ("cpu", "cuda") and not self.device.startswith("cuda:"):
            raise ValueError(f"device must be cpu or cuda[:N], got {self.device!r}")
        if self.device.startswith("cuda") and not torch.cuda.is_available():
            raise ValueError("device cuda was asked for, but torch sees no CUDA device")


def load_model(cfg: ModelConfig):
    if cfg.checkpoint is not None:
        return build_model(checkpoint=cfg.checkpoint, device=cfg.device, dtype=cfg.dtype)
    return build_model(config_from_spec(get_model(cfg.name)), device=cfg.device, dtype=cfg.dtype, seed=cfg.seed)


def fit_config(config: SchedulerConfig, limit: int, max_seq_given: bool) -> SchedulerConfig:
    """The policy's context limit defaults to the model's `limit` positions and may not exceed
    it. (A function of its own: a distributed CLI run checks it before it starts processes.)"""
    if not max_seq_given:
        return dataclasses.replace(config, max_seq_tokens=limit)
    if config.max_seq_tokens > limit:
        raise ValueError(f"max_seq_tokens = {config.max_seq_tokens} exceeds the model's {limit} positions")
    return config


class LiveServer:
    def __init__(self, model, engine_config: EngineConfig | None = None) -> None:
        self.model = model
        self.engine_config = engine_config or EngineConfig()
        self.layout = kv_layout(model)

    @property
    def max_seq_tokens(self) -> int:
        return max_context_tokens(self.model)

    def fit_config(self, config: SchedulerConfig, max_seq_given: bool) -> SchedulerConfig:
        """The policy's context limit defaults to the model's and may not exceed it."""
        return fit_config(config, self.max_seq_tokens, max_seq_given)

    def run(self, jobs, policy: str, config: SchedulerConfig, cost=None) -> tuple[RunResult, str]:
        """Serve fresh `jobs` (or an `Arrivals` source's requests) with one policy; returns the
        result and the swap mode used."""
        scheduler = make_scheduler(policy, config, cost)
        store = KVStore(self.layout, scheduler.kv.capacity, config.max_seq_tokens, self.model.device)
        engine = Engine(ModelRunner(self.model, store), store, self.engine_config)
        jobs = jobs if isinstance(jobs, Arrivals) else list(jobs)
        return engine.run(jobs, scheduler, policy, scheduler.swap_mode), scheduler.swap_mode
