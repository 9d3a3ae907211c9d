"""Cost lookups that left a profile's measured grids: counted, the first one warned about, and the
furthest past each axis's top kept.

The tables extrapolate outside their grids (profiles/interp.py). A user should know that it
happened (one warning a cost model, so a long run does not print thousands), how often (the
count `fastserve simulate` prints per run) and how far (the furthest lookups, which name what a
measured profile would have to cover: `fastserve profile`'s axis options).
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence


class ExtrapolationWarning(UserWarning):
    pass


class GridExits:
    def __init__(self, profile_name: str) -> None:
        self.profile_name = profile_name
        self.count = 0
        self.warned = False
        self.furthest: dict[str, float] = {}  # axis ("decode batch", ...) -> furthest value past its top

    def begin_run(self) -> None:
        """A simulation's run starts: its count and furthest lookups are its own (the one
        warning stays the cost model's)."""
        self.count = 0
        self.furthest = {}

    def copy(self) -> GridExits:
        other = GridExits(self.profile_name)
        other.count, other.warned, other.furthest = self.count, self.warned, dict(self.furthest)
        return other

    def decode(self, grid, num_decodes: int, context: float, which: str, count: int = 1) -> None:
        """`count` decode lookups of `num_decodes` jobs at `which` ("longest"/"mean") context."""
        self._past_top("decode batch", num_decodes, grid.batch_sizes)
        self._past_top("context tokens", context, grid.tokens)
        self.left(f"decode of {num_decodes} jobs at {which} context {context:.1f} tokens",
                  beyond(num_decodes, grid.batch_sizes, "batch") or beyond(context, grid.tokens, "context tokens"),
                  count)

    def prefill(self, grid, num_prefills: int, mean_prompt: float) -> None:
        self._past_top("prefill batch", num_prefills, grid.batch_sizes)
        self._past_top("prompt tokens", mean_prompt, grid.tokens)
        self.left(f"prefill of {num_prefills} prompts of mean {mean_prompt:.1f} tokens",
                  beyond(num_prefills, grid.batch_sizes, "batch") or beyond(mean_prompt, grid.tokens, "prompt tokens"))

    def left(self, what: str, beyond_text: str | Sequence[int], count: int = 1) -> None:
        """Count `count` lookups outside a grid; warn on the first. `beyond_text` names the axis
        that was left (a sequence means a byte curve's sizes)."""
        self.count += count
        if self.warned:
            return
        self.warned = True
        if not isinstance(beyond_text, str):
            beyond_text = f"the measured bytes are {beyond_text[0]}..{beyond_text[-1]}"
        warnings.warn(f"profile {self.profile_name}: {what}: {beyond_text}; extrapolating (warned once; the run "
                      "counts every extrapolated lookup)", ExtrapolationWarning, stacklevel=3)

    def _past_top(self, axis: str, value: float, points: Sequence[float]) -> None:
        if value > points[-1] and value > self.furthest.get(axis, 0):
            self.furthest[axis] = value


def beyond(value: float, axis: Sequence[float], name: str) -> str:
    """'the measured batch is 1..8' when `value` lies outside `axis`, else ''."""
    if axis[0] <= value <= axis[-1]:
        return ""
    return f"the measured {name} {'is' if name == 'batch' else 'are'} {axis[0]}..{axis[-1]}"
