"""Pipeline stages cut from an unmodified transformers causal LM (`StageModel`).

Stage s keeps the decoder layers `layer_range(num_layers, pp, s)` and drops the others; the
first stage also keeps the token embeddings, the last one the final norm and the LM head.
The model code runs unchanged: a stage calls the family's decoder stack (`parts.base`), with
token ids on the first stage and `inputs_embeds` = the previous stage's hidden state on the
others. For that to be exact, the submodules that the stack applies around its layers are
neutralised where they do not belong: on later stages the learned positions (OPT) add an exact
zero and the input projection is dropped; before the last stage the final norm and output
projection become identities. Rotary position embeddings (Llama) are computed inside each layer
from `position_ids`, so every stage gets the same positions.

Each kept layer's attention is renumbered from 0 (`layer_idx`), because the stage's `KVStore`
holds only its own layers (`KVLayout.num_layers` = the stage's layer count).
"""

from __future__ import annotations

import torch

from executor.attention import BATCH_KWARG
from executor.distributed.parts import family_parts, set_submodule, submodule
from executor.distributed.topology import layer_range


class ZeroPositions(torch.nn.Module):
    """Stands in for learned position embeddings on a stage past the first: adds exactly 0."""

    def __init__(self, dtype: torch.dtype, device: torch.device) -> None:
        super().__init__()
        self.register_buffer("zero", torch.zeros((), dtype=dtype, device=device))

    def forward(self, *args, **kwargs) -> torch.Tensor:
        return self.zero


class StageModel:
    """The part of `model` that pipeline stage `stage` of `pp` runs; cuts `model` in place."""

    def __init__(self, model, stage: int, pp: int) -> None:
        parts = family_parts(model.config)
        self.model = model
        self.config = model.config
        self.layers = layer_range(model.config.num_hidden_layers, pp, stage)
        self.is_first, self.is_last = stage == 0, stage == pp - 1
        self.base = submodule(model, parts.base)
        layers = submodule(self.base, parts.layers)
        kept = torch.nn.ModuleList([layers[i] for i in self.layers])
        for local, layer in enumerate(kept):
            layer.self_attn.layer_idx = local  # index into this stage's KV store
        set_submodule(self.base, parts.layers, kept)
        if not self.is_first:
            set_submodule(self.base, parts.embed, None)  # never called: the stage gets inputs_embeds
            for path in parts.before_layers:
                old = submodule(self.base, path)
                if old is None:
                    continue
                if isinstance(old, torch.nn.Embedding):  # learned positions: added once, on stage 0
                    set_submodule(self.base, path, ZeroPositions(old.weight.dtype, old.weight.device))
                else:
                    set_submodule(self.base, path, None)
        if not self.is_last:
            for path in parts.after_layers:
                if submodule(self.base, path) is not None:
                    set_submodule(self.base, path, torch.nn.Identity())
            model.lm_head = None

    @property
    def num_layers(self) -> int:
        return len(self.layers)

    def forward(self, inputs: torch.Tensor, position_ids: torch.Tensor, layout, keep: torch.Tensor) -> torch.Tensor:
        """First stage: `inputs` are token ids [1, T]; later stages: hidden states [1, T, hidden].
        Returns the hidden state [1, T, hidden], or on the last stage the logits of the `keep`
        positions [1, J, vocab]."""
        kwargs = {"position_ids": position_ids, "use_cache": False, BATCH_KWARG: layout}
        if self.is_first:
            out = self.base(input_ids=inputs, **kwargs)
        else:
            out = self.base(inputs_embeds=inputs, **kwargs)
        hidden = out.last_hidden_state
        if not self.is_last:
            return hidden
        return self.model.lm_head(hidden[:, keep])
