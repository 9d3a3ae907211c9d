"""What one decision's batch walk has found out so far: `WalkState`.

The batch walk (policy.batch_walk, its chunked variant policy.chunked) and the placement rules
it calls (policy.placement) build these facts up job by job; the end of the decision
(`Scheduler.schedule`: proactive swaps) and event skipping (policy.horizon: whether the plan
may repeat) read them afterwards. They live here, in one object that each walk resets, rather
than as scheduler fields that each of those files sets and reads on its own. `prefill_closed`
is not here: policies read it in their own walks (docs/policies.md), so it stays a scheduler
attribute.
"""

from __future__ import annotations

import math

from policy.job import Job


class WalkState:
    __slots__ = ("may_drop_any", "budget_refused", "room_closed", "room_closed_rank", "room_bound", "held_ids",
                 "swap_in_blocks")

    def __init__(self) -> None:
        # Set by `Scheduler.schedule` for a second walk when the first would stall: any job may
        # then drop victims' KV (policy.placement). A walk's reset leaves it as it was set.
        self.may_drop_any = False
        self.begin()

    def begin(self) -> None:
        """A new walk: nothing found out yet."""
        self.budget_refused: Job | None = None  # the first prefill the prefill-token budget refused
        self.swap_in_blocks = 0  # device blocks of the swap-ins this walk started
        self.held_ids: set[int] = set()  # device jobs left WAITING for their room, keeping a slot
        # No later job of this walk takes new room: a promoted job off the device waits for free
        # room, and the room that frees is its first (`KVPlacement._secure_device_kv`). Only jobs
        # ranked after `room_closed_rank` that are resident can still join.
        self.room_closed = False
        self.room_closed_rank = 0
        self.reset_room_bound()

    def close_room(self, rank: int) -> None:
        self.room_closed = True
        self.room_closed_rank = rank

    def reset_room_bound(self) -> None:
        """No job's room is bounded yet (a new walk, or an eviction freed room). A failed
        eviction scan bounds the room of every later job that scans the same victims
        (`KVPlacement._make_room`), keyed by whether the job may only push victims out."""
        self.room_bound = {True: math.inf, False: math.inf}
