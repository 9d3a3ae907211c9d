"""One rank's model shard, KV layout and forward pass.

`build_rank_model` builds the whole model exactly as the single-process executor does (same
seed, so every rank starts from the same weights), cuts its pipeline stage out of it
(`StageModel`, pp > 1), then shards what is left over the stage's tp ranks (`apply_tp`).
Its `layout` is this rank's KV: the stage's layers x its KV heads; `replica_layout` is the
whole replica's (what a profile's `kv_bytes_per_token` and the policy's swap costs count).

`StageRunner` packs segments exactly like `ModelRunner` (its `layout` is reused unchanged) and
runs this rank's stage: token ids in on the first stage, hidden states in on the others; logits
out on the last stage, hidden states out on the others.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass

import torch

from executor.distributed.comm import Groups
from executor.distributed.pp import StageModel
from executor.distributed.tp import apply_tp
from executor.kv_store import KVStore
from executor.models import KVLayout, kv_layout
from executor.runner import ModelRunner, Segment, in_segment_order
from executor.serve import ModelConfig, load_model


@dataclass
class RankModel:
    model: object  # the sharded transformers model
    stage: StageModel | None  # None when pp == 1 (the model's own forward runs)
    layout: KVLayout  # this rank's KV per token
    replica_layout: KVLayout  # the whole replica's

    @property
    def hidden_size(self) -> int:
        return int(self.model.config.hidden_size)


def rank_device(device: str, local_rank: int) -> str:
    """CUDA: each local rank on its own GPU; CPU: all on the CPU."""
    return f"cuda:{local_rank}" if device.startswith("cuda") else device


def build_rank_model(cfg: ModelConfig, groups: Groups, local_rank: int) -> RankModel:
    topo = groups.topo
    model = load_model(dataclasses.replace(cfg, device=rank_device(cfg.device, local_rank)))
    replica_layout = kv_layout(model)
    stage = StageModel(model, topo.stage, topo.pp) if topo.pp > 1 else None
    apply_tp(model, topo.tp_rank, topo.tp, groups.tp, groups.health)
    shard = kv_layout(model, topo.tp)
    num_layers = stage.num_layers if stage is not None else shard.num_layers
    layout = KVLayout(num_layers, shard.num_kv_heads, shard.head_dim, shard.dtype)
    return RankModel(model, stage, layout, replica_layout)


class StageRunner(ModelRunner):
    """This rank's part of one iteration (pp > 1)."""

    def __init__(self, rank_model: RankModel, store: KVStore) -> None:
        super().__init__(rank_model.model, store)
        self.stage = rank_model.stage

    @torch.inference_mode()
    def forward(self, segments: Sequence[Segment], hidden: torch.Tensor | None) -> torch.Tensor:
        layout, input_ids, position_ids, keep = self.layout(segments)
        inputs = input_ids if self.stage.is_first else hidden
        return self.stage.forward(inputs, position_ids, layout, keep)

    @staticmethod
    def sample(segments: Sequence[Segment], logits: torch.Tensor) -> list[int]:
        """Greedy tokens in the segments' order (as `ModelRunner.step` returns them)."""
        return in_segment_order(segments, logits[0].argmax(dim=-1).tolist())


def segments_to_wire(segments: Sequence[Segment]) -> list[list]:
    return [[s.job_id, s.start_pos, list(s.token_ids)] for s in segments]


def segments_from_wire(rows: list[list]) -> list[Segment]:
    return [Segment(job_id, tokens, start) for job_id, start, tokens in rows]


def num_packed_tokens(segments: Sequence[Segment]) -> int:
    return sum(len(s.token_ids) for s in segments)


def store_for(rank_model: RankModel, capacity, max_seq_tokens: int) -> KVStore:
    return KVStore(rank_model.layout, capacity, max_seq_tokens, next(rank_model.model.parameters()).device)
