"""A request as the scheduler sees it.

Invariants:
- `output_tokens` is ground truth from the trace. Engines use it to know when a job ends (the
  moral equivalent of a real server seeing EOS). Only oracle policies (SRPT) may read it to
  decide; every other policy decides from arrival, prompt length, tokens generated so far and
  service time used (the paper's semi-information-agnostic setting, section 3).
- `kv_tokens` counts the tokens whose KV is materialized. After an iteration that produced a
  token it equals `prompt_tokens + generated_tokens - 1`: the newest token's KV is written by
  the next step. During a chunked prefill (`SchedulerConfig.chunked_prefill_tokens`) it counts
  the context tokens the earlier chunks processed (`prefilled_tokens`); no token is produced
  until the last chunk, so `generated_tokens` and `first_token_s` change only then.
- Times inside the policy are integer microseconds (`_us`) so that k iterations summed at once
  equal k iterations summed one by one; the simulator's event skipping relies on it.
"""

from __future__ import annotations

import enum
import math
from dataclasses import dataclass


class KVLocation(enum.Enum):
    NONE = "none"  # never prefilled, or dropped for recompute
    DEVICE = "device"
    HOST = "host"
    SWAPPING_OUT = "swapping_out"  # device -> host copy in flight; occupies both
    SWAPPING_IN = "swapping_in"  # host -> device copy in flight; occupies both


def to_us(seconds: float) -> int:
    """Seconds to the policy's integer-microsecond clock."""
    return round(seconds * 1_000_000)


@dataclass(slots=True, eq=False)
class Job:
    id: int
    arrival_s: float
    prompt_tokens: int
    output_tokens: int
    generated_tokens: int = 0
    level: int = 0
    home_level: int = -1  # MLFQ: the level a starvation promotion took it from (-1: not promoted)
    kv: KVLocation = KVLocation.NONE
    kv_tokens: int = 0
    device_blocks: int = 0
    host_blocks: int = 0
    attained_us: int = 0  # service used at the current MLFQ level
    waiting_since_us: int = 0  # when it last stopped running (or arrived)
    first_token_s: float = math.nan
    finish_s: float = math.nan
    num_preemptions: int = 0
    num_swaps: int = 0
    num_recomputes: int = 0
    seq: int = 0  # enqueue stamp within its queue; FIFO order and ENST position

    def __post_init__(self) -> None:
        if self.prompt_tokens <= 0 or self.output_tokens <= 0:
            raise ValueError(
                f"job {self.id}: prompt_tokens and output_tokens must be positive, got "
                f"{self.prompt_tokens} and {self.output_tokens}"
            )
        if not math.isfinite(self.arrival_s) or self.arrival_s < 0:
            raise ValueError(f"job {self.id}: arrival_s must be finite and >= 0, got {self.arrival_s}")

    @property
    def finished(self) -> bool:
        return self.generated_tokens >= self.output_tokens

    @property
    def remaining_tokens(self) -> int:
        """Oracle knowledge: only SRPT and the engines may read this."""
        return self.output_tokens - self.generated_tokens

    @property
    def context_tokens(self) -> int:
        """Tokens the next iteration attends over; also the KV slots it needs after running."""
        return self.prompt_tokens + self.generated_tokens

    @property
    def needs_prefill(self) -> bool:
        """No KV at all: never prefilled, or dropped for recompute (a partial prefill has KV)."""
        return self.kv is KVLocation.NONE

    @property
    def in_prefill(self) -> bool:
        """Its next iteration is a prefill (chunk): it has produced no token yet, or more than
        the newest token lacks KV (a recompute). A recompute with one token left is a decode."""
        return self.generated_tokens == 0 or self.kv_tokens + 1 < self.prompt_tokens + self.generated_tokens

    @property
    def prefilled_tokens(self) -> int:
        """Context tokens of the prefill in progress that earlier chunks processed (0 before the
        first chunk, and whenever no prefill is in progress)."""
        return self.kv_tokens if self.in_prefill else 0

    @property
    def pending_tokens(self) -> int:
        """Tokens the next iteration feeds if nothing bounds it: 1 for a decode, the rest of the
        context for a prefill."""
        return self.prompt_tokens + self.generated_tokens - self.kv_tokens

    @property
    def jct_s(self) -> float:
        return self.finish_s - self.arrival_s

    @property
    def ttft_s(self) -> float:
        return self.first_token_s - self.arrival_s
