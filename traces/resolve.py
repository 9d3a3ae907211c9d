"""`resolve`: one string names a trace, whether a file, a bundled sample or a synthetic spec.

- a path to a trace file (any format `traces.load` reads);
- `sample:NAME`, or a bare NAME that is not an existing path, for `traces/data/NAME.csv`;
- `synth:num_requests=N,rate=R[,cv=C],lengths=SPEC[,seed=S][,max_prompt_tokens=..]
  [,max_total_tokens=..][,min_tokens=..]`, or `arrivals=SPEC` instead of rate/cv. A nested
  spec keeps its own keys: `synth:num_requests=8,arrivals=gamma:rate=4,cv=3,lengths=fixed:
  prompt=8,output=4` (written without the space). Without `seed`, the `seed` argument is used.
"""

from __future__ import annotations

from pathlib import Path

from traces.arrivals import ARRIVAL_KINDS, from_rate, parse_arrivals
from traces.errors import SpecError, TraceError
from traces.filters import FilterReport, Filters
from traces.io import load
from traces.lengths import LENGTH_KEYS, parse_lengths
from traces.specs import take_nested, to_float, to_int
from traces.synth import synthesize_filtered
from traces.trace import Trace

DATA_DIR = Path(__file__).parent / "data"
SYNTH_KEYS = (
    "num_requests",
    "rate",
    "cv",
    "arrivals",
    "lengths",
    "seed",
    "max_prompt_tokens",
    "max_total_tokens",
    "min_tokens",
)
_FILTER_KEYS = ("max_prompt_tokens", "max_total_tokens", "min_tokens")


def available_samples() -> list[str]:
    """Names of the bundled samples in traces/data/."""
    return sorted(path.stem for path in DATA_DIR.glob("*.csv"))


def sample_path(name: str) -> Path:
    path = DATA_DIR / f"{name}.csv"
    if not path.is_file():
        raise TraceError(
            f"sample:{name}: no such bundled sample (choose {', '.join(available_samples())})"
        )
    return path


def _nested_keys(key: str, value: str) -> frozenset[str]:
    kind = value.partition(":")[0].strip().lower()
    if key == "arrivals":
        return ARRIVAL_KINDS[kind].keys if kind in ARRIVAL_KINDS else frozenset()
    return LENGTH_KEYS.get(kind, frozenset())


def parse_synth(spec: str) -> dict[str, str]:
    """The `KEY=VALUE` pairs of a `synth:` spec, nested arrival/length specs kept whole."""
    items = [item.strip() for item in spec.partition(":")[2].split(",") if item.strip()]
    pairs: dict[str, str] = {}
    index = 0
    while index < len(items):
        key, sep, value = items[index].partition("=")
        key = key.strip()
        if not sep or key not in SYNTH_KEYS:
            raise SpecError(
                f"synth spec '{spec}': unknown key '{key}' (expected {', '.join(SYNTH_KEYS)})"
            )
        if key in pairs:
            raise SpecError(f"synth spec '{spec}': key '{key}' given twice")
        end = index + 1
        if key in ("arrivals", "lengths"):
            joined, end = take_nested(items, index, _nested_keys(key, value))
            value = joined.partition("=")[2]
        pairs[key] = value.strip()
        index = end
    return pairs


def synth_from_spec(spec: str, seed: int = 0) -> tuple[Trace, FilterReport]:
    """The trace and filter report of a `synth:` spec string."""
    what = f"synth spec '{spec}'"
    pairs = parse_synth(spec)
    for key in ("num_requests", "lengths"):
        if key not in pairs:
            raise SpecError(f"{what}: missing key '{key}'")
    if "arrivals" in pairs:
        if "rate" in pairs or "cv" in pairs:
            raise SpecError(f"{what}: key 'arrivals' cannot be combined with 'rate' or 'cv'")
        arrivals = parse_arrivals(pairs["arrivals"])
    elif "rate" in pairs:
        cv = to_float(pairs["cv"], "cv", what) if "cv" in pairs else 1.0
        arrivals = from_rate(to_float(pairs["rate"], "rate", what), cv)
    else:
        raise SpecError(f"{what}: missing key 'rate' (or 'arrivals')")
    filters = Filters(
        *(to_int(pairs[key], key, what) if key in pairs else None for key in _FILTER_KEYS)
    )
    return synthesize_filtered(
        to_int(pairs["num_requests"], "num_requests", what),
        arrivals,
        parse_lengths(pairs["lengths"]),
        to_int(pairs["seed"], "seed", what) if "seed" in pairs else seed,
        filters,
    )


def resolve(
    spec_or_path: str | Path,
    seed: int = 0,
    fmt: str | None = None,
    sort: bool = False,
    arrivals: str | None = None,
) -> Trace:
    """A `Trace` from a path, `sample:NAME` or `synth:...` spec (see the module docstring).

    `fmt`, `sort` and `arrivals` are passed to `traces.load` for files and samples.
    """
    if isinstance(spec_or_path, Path):
        return load(spec_or_path, fmt=fmt, sort=sort, arrivals=arrivals, seed=seed)
    text = str(spec_or_path).strip()
    if text.startswith("synth:"):
        return synth_from_spec(text, seed)[0]
    if text.startswith("sample:"):
        return load(
            sample_path(text.partition(":")[2].strip()),
            fmt=fmt,
            sort=sort,
            arrivals=arrivals,
            seed=seed,
        )
    if not Path(text).exists() and text in available_samples():
        return load(sample_path(text), fmt=fmt, sort=sort, arrivals=arrivals, seed=seed)
    return load(text, fmt=fmt, sort=sort, arrivals=arrivals, seed=seed)
