"""One forward pass over a batch of heterogeneous jobs, with greedy sampling.

A `Segment` is what one job feeds this iteration: a decode step is its newest token at position
`context - 1`; a prefill is its whole context (prompt plus tokens generated before a recompute)
from position 0, or with chunked prefill a chunk of it from position `start_pos`, attending to
the KV its earlier chunks left in the pool (a one-token chunk is run as a decode: it is one). The runner packs the segments (decodes first; see `executor.attention`),
builds the per-iteration `BatchLayout` once on the CPU (block tables -> pool slots), moves it to
the device, runs the model, and keeps only each job's last-position logits
(`logits_to_keep`), so a long prefill does not pay for a vocabulary-sized matmul per token.
Sampling is greedy (argmax); EOS is not special: the engine stops a job at its trace length.

Invariant: every segment's job already holds device blocks for all the positions it writes
(`KVStore.grow` ran first); otherwise `KVStoreError`, never a write past its blocks.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch

from executor.attention import BATCH_KWARG, BatchLayout
from executor.blocks import KVStoreError
from executor.kv_store import KVStore


@dataclass(slots=True)
class Segment:
    job_id: int
    token_ids: Sequence[int]
    start_pos: int

    def __post_init__(self) -> None:
        if not self.token_ids:
            raise ValueError(f"job {self.job_id}: a segment needs at least one token")
        if self.start_pos < 0:
            raise ValueError(f"job {self.job_id}: start_pos must be >= 0, got {self.start_pos}")


class ModelRunner:
    def __init__(self, model, store: KVStore) -> None:
        self.model = model
        self.store = store
        self.device = store.device
        self._arange = torch.arange(store.max_blocks_per_seq * store.block_size, dtype=torch.int64)

    def layout(self, segments: Sequence[Segment]) -> tuple[BatchLayout, torch.Tensor, torch.Tensor, torch.Tensor]:
        """(layout, input_ids [1, T], position_ids [1, T], last-token indices [J]) for packed segments."""
        store, bs = self.store, self.store.block_size
        decodes = [s for s in segments if len(s.token_ids) == 1]
        prefills = [s for s in segments if len(s.token_ids) > 1]
        ordered = decodes + prefills
        ids: list[int] = []
        for s in ordered:
            ids.extend(s.token_ids)
            last = s.start_pos + len(s.token_ids) - 1
            if last // bs >= store.num_device_blocks(s.job_id):
                raise KVStoreError(
                    f"job {s.job_id}: writes position {last} but holds {store.num_device_blocks(s.job_id)} "
                    f"device blocks of {bs} tokens"
                )
        rows = torch.tensor([store.row(s.job_id) for s in ordered], dtype=torch.int64)
        dec_pos_list = [s.start_pos for s in decodes]
        dec_pos = torch.tensor(dec_pos_list, dtype=torch.int64)
        lengths = [len(s.token_ids) for s in prefills]
        positions = torch.cat([dec_pos, *(self._arange[s.start_pos:s.start_pos + len(s.token_ids)] for s in prefills)]
                              ) if prefills else dec_pos
        tok_rows = rows.repeat_interleave(torch.tensor([1] * len(decodes) + lengths)) if prefills else rows
        write_blocks = store.table[tok_rows, positions // bs if bs > 1 else positions]
        num_decode = len(decodes)
        decode_blocks = mask = None
        context = 0
        if num_decode:
            context = max(dec_pos_list) + 1
            decode_blocks = store.table[rows[:num_decode], : -(-context // bs)].reshape(-1)
            if min(dec_pos_list) + 1 != context:
                mask = (self._arange[:context][None, :] <= dec_pos[:, None])[:, None, None, :]
        segs, start = [], num_decode
        for n in lengths:
            segs.append((start, n))
            start += n
        keep = self._arange[:num_decode] if not segs else torch.tensor(
            list(range(num_decode)) + [a + n - 1 for a, n in segs], dtype=torch.int64)
        dev = self.device
        contexts = ()
        if any(s.start_pos for s in prefills):  # chunks after earlier chunks: attend to the pool
            contexts = tuple(None if not s.start_pos else self._chunk_context(s, row, dev)
                             for s, row in zip(prefills, rows[num_decode:].tolist(), strict=True))
        layout = BatchLayout(
            store=store, write_blocks=write_blocks.to(dev), write_offsets=(positions % bs).to(dev),
            num_decode=num_decode, decode_blocks=None if decode_blocks is None else decode_blocks.to(dev),
            decode_context_tokens=context, decode_mask=None if mask is None else mask.to(dev),
            prefill_segments=tuple(segs), prefill_context=contexts,
        )
        input_ids = torch.tensor(ids, dtype=torch.int64)[None].to(dev)
        return layout, input_ids, positions[None].to(dev), keep.to(dev)

    def _chunk_context(self, s: Segment, row: int, dev) -> tuple[torch.Tensor, int, torch.Tensor]:
        """A chunk's job blocks over positions [0, start + n) and its causal mask [n, start + n]."""
        length = s.start_pos + len(s.token_ids)
        blocks = self.store.table[row, : -(-length // self.store.block_size)]
        mask = self._arange[:length][None, :] <= self._arange[s.start_pos:length][:, None]
        return blocks.to(dev), length, mask.to(dev)

    @torch.inference_mode()
    def step(self, segments: Sequence[Segment]) -> list[int]:
        """Run one iteration; returns each segment's next token, in the order given."""
        if not segments:
            return []
        layout, input_ids, position_ids, keep = self.layout(segments)
        out = self.model(
            input_ids=input_ids, position_ids=position_ids, use_cache=False, logits_to_keep=keep,
            **{BATCH_KWARG: layout},
        )
        return in_segment_order(segments, out.logits[0].argmax(dim=-1).tolist())


def in_segment_order(segments: Sequence[Segment], packed_tokens: list[int]) -> list[int]:
    """Tokens sampled in packed order (decodes first, see `layout`) -> in the segments' order.
    (A function of its own so that a pipeline's last stage reorders the same way.)"""
    decodes = [i for i, s in enumerate(segments) if len(s.token_ids) == 1]
    prefills = [i for i, s in enumerate(segments) if len(s.token_ids) > 1]
    result = [0] * len(segments)
    for i, token in zip(decodes + prefills, packed_tokens, strict=True):
        result[i] = token
    return result
