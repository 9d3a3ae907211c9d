"""Exception and warning types of the traces package.

Every error is a `ValueError` subclass whose message is one line naming where the problem is:
for data, the file, the 1-based data row (the header is not counted) and the column; for spec
strings and parameters, the offending key.
"""

from __future__ import annotations


class TraceError(ValueError):
    """A trace file or table is unreadable or invalid."""


class SpecError(ValueError):
    """An arrival, length or synthetic-trace spec (string or parameter) is invalid."""


class TraceWarning(UserWarning):
    """Trace data was repaired on request (for example, arrivals sorted under sort=True)."""
