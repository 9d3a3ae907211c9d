"""Whether a policy class keeps a base class's own hooks.

A base's fast paths and event-skipping rules are worked out for its own hooks (a prefill plan's
repeat for FCFS's and MLFQ's ordering, the inline service charge, MLFQ's upload lead and skip
tables), so a subclass that overrides one of them gets the general path instead.
"""

from __future__ import annotations

from collections.abc import Iterable


def keeps_hooks(cls: type, base: type, names: Iterable[str]) -> bool:
    """Whether `cls` uses `base`'s own definition of every attribute in `names`."""
    return all(getattr(cls, name) is getattr(base, name) for name in names)
