"""Who is who in a tp x pp replica, and which layers each pipeline stage holds.

Rank r sits at stage `r // tp` and tensor-parallel position `r % tp`, so a stage's tp ranks are
consecutive (TP inside a node, PP across nodes, as FastServe runs OPT-175B on 16 GPUs). Rank 0
(stage 0, tp position 0) runs the policy.

Commands flow down a tree in which every rank has exactly one upstream: rank 0 sends to the
other ranks of stage 0 and to the first rank of stage 1; rank (s, j) sends to (s + 1, j). Each
rank therefore sees the whole command stream, once and in order. Activations take the same
(s, j) -> (s + 1, j) edges (every tp rank of a stage holds the full hidden state after the
row-parallel all-reduce), and the last stage's first rank returns the sampled tokens to rank 0.

Layer split: stage s holds layers [start, stop); the first `num_layers % pp` stages hold one
layer more than the others.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Topology:
    tp: int
    pp: int
    rank: int

    def __post_init__(self) -> None:
        if self.tp < 1 or self.pp < 1:
            raise ValueError(f"tp and pp must be >= 1, got tp = {self.tp}, pp = {self.pp}")
        if not 0 <= self.rank < self.tp * self.pp:
            raise ValueError(f"rank must be in 0..{self.tp * self.pp - 1}, got {self.rank}")

    @property
    def world_size(self) -> int:
        return self.tp * self.pp

    @property
    def stage(self) -> int:
        return self.rank // self.tp

    @property
    def tp_rank(self) -> int:
        return self.rank % self.tp

    @property
    def is_first_stage(self) -> bool:
        return self.stage == 0

    @property
    def is_last_stage(self) -> bool:
        return self.stage == self.pp - 1

    def rank_of(self, stage: int, tp_rank: int) -> int:
        return stage * self.tp + tp_rank

    def stage_ranks(self, stage: int) -> list[int]:
        return [self.rank_of(stage, j) for j in range(self.tp)]

    @property
    def upstream(self) -> int | None:
        """The rank this one receives commands (and, past stage 0, activations) from."""
        if self.rank == 0:
            return None
        if self.stage == 0:
            return 0
        return self.rank_of(self.stage - 1, self.tp_rank)

    @property
    def downstream(self) -> list[int]:
        """The ranks this one forwards every command to."""
        out = [self.rank_of(0, j) for j in range(1, self.tp)] if self.rank == 0 else []
        if not self.is_last_stage:
            out.append(self.rank_of(self.stage + 1, self.tp_rank))
        return out

    @property
    def next_stage_rank(self) -> int | None:
        """Where this rank's activations go (None on the last stage)."""
        return None if self.is_last_stage else self.rank_of(self.stage + 1, self.tp_rank)

    @property
    def token_sender(self) -> int:
        """The rank whose sampled tokens rank 0 uses: the last stage's first rank."""
        return self.rank_of(self.pp - 1, 0)


def layer_range(num_layers: int, pp: int, stage: int) -> range:
    """The layers pipeline stage `stage` of `pp` holds (earlier stages take the remainder)."""
    if not 1 <= pp <= num_layers:
        raise ValueError(f"pp must be in 1..{num_layers} (the model's layers), got {pp}")
    if not 0 <= stage < pp:
        raise ValueError(f"stage must be in 0..{pp - 1}, got {stage}")
    base, extra = divmod(num_layers, pp)
    start = stage * base + min(stage, extra)
    return range(start, start + base + (1 if stage < extra else 0))
