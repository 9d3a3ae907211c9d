"""Parsing of spec strings such as `gamma:rate=4,cv=3` or `uniform:prompt=8-64,output=4-64`.

A spec string is `KIND` or `KIND:KEY=VALUE,KEY=VALUE,...`; a few kinds take a bare argument
instead (`empirical:PATH`). This module only splits and converts; the arrival and length
modules own the kinds and their keys. Every error is a `SpecError` naming the offending key.
"""

from __future__ import annotations

import math
from collections.abc import Iterable

from traces.errors import SpecError


def split_kind(text: str, what: str) -> tuple[str, str]:
    """`"gamma:rate=4"` -> `("gamma", "rate=4")`; `"sharegpt-like"` -> `("sharegpt-like", "")`."""
    if not isinstance(text, str) or not text.strip():
        raise SpecError(f"{what} spec is empty; expected KIND or KIND:KEY=VALUE,...")
    kind, _, rest = text.strip().partition(":")
    return kind.strip().lower(), rest.strip()


def parse_pairs(
    rest: str, what: str, allowed: Iterable[str], required: Iterable[str] = ()
) -> dict[str, str]:
    """Split `KEY=VALUE,...` into a dict, rejecting unknown, repeated and missing keys."""
    allowed = tuple(allowed)
    pairs: dict[str, str] = {}
    for item in filter(None, (part.strip() for part in rest.split(","))):
        key, sep, value = item.partition("=")
        key = key.strip()
        if not sep:
            raise SpecError(f"{what}: '{item}' is not KEY=VALUE (keys: {', '.join(allowed)})")
        if key not in allowed:
            raise SpecError(
                f"{what}: unknown key '{key}' (expected {', '.join(allowed) or 'no keys'})"
            )
        if key in pairs:
            raise SpecError(f"{what}: key '{key}' given twice")
        pairs[key] = value.strip()
    for key in required:
        if key not in pairs:
            raise SpecError(f"{what}: missing key '{key}'")
    return pairs


def to_float(value: str, key: str, what: str) -> float:
    try:
        number = float(value)
    except ValueError:
        raise SpecError(f"{what}: key '{key}' must be a number, got '{value}'") from None
    if not math.isfinite(number):
        raise SpecError(f"{what}: key '{key}' must be finite, got '{value}'")
    return number


def to_int(value: str, key: str, what: str) -> int:
    try:
        return int(value)
    except ValueError:
        raise SpecError(f"{what}: key '{key}' must be an integer, got '{value}'") from None


def to_int_range(value: str, key: str, what: str) -> tuple[int, int]:
    """`"8-64"` -> (8, 64); a single integer `"8"` means the range 8-8."""
    low, sep, high = value.partition("-")
    try:
        bounds = (int(low), int(high)) if sep else (int(low), int(low))
    except ValueError:
        raise SpecError(
            f"{what}: key '{key}' must be an integer range A-B, got '{value}'"
        ) from None
    return bounds


def format_number(value: float) -> str:
    """Shortest text that reads back as the same number: 4.0 -> '4', 0.25 -> '0.25'."""
    return str(int(value)) if float(value).is_integer() else repr(float(value))


def take_nested(items: list[str], start: int, inner_keys: frozenset[str]) -> tuple[str, int]:
    """Join `items[start]` with the following `KEY=VALUE` items whose key is in `inner_keys`.

    Lets a spec nest another spec with commas in it:
    `synth:lengths=fixed:prompt=8,output=4,seed=1` gives lengths `fixed:prompt=8,output=4`.
    Returns the joined value and the index of the first item not consumed.
    """
    parts = [items[start]]
    end = start + 1
    while end < len(items) and items[end].partition("=")[0].strip() in inner_keys:
        parts.append(items[end])
        end += 1
    return ",".join(parts), end
