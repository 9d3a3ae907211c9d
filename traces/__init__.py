"""Workload traces: the schema, synthetic generators, loaders for public formats, samples.

The input to both engines. A `Trace` is a validated table of requests (`arrival_s`,
`prompt_tokens`, `output_tokens`, `request_id`) that hands out `policy.Job`s. Entry points:

    traces.load(path, fmt=None, sort=False, arrivals=None, seed=0)   # a file -> Trace
    traces.save(trace, path)                                          # .csv / .jsonl / .parquet
    traces.synthesize(num_requests, arrivals, lengths, seed)          # generators -> Trace
    traces.resolve("synth:..." | "sample:NAME" | path, seed=0)        # any of the above

Imports `policy` only (for `Job`), never the engines. Every error is a one-line `ValueError`
subclass (`TraceError`, `SpecError`) naming the file, row and column or the spec key.
"""

from traces.arrivals import (
    ARRIVAL_KINDS,
    ArrivalSpec,
    ConstantArrivals,
    GammaArrivals,
    PoissonArrivals,
    ReplayArrivals,
    from_rate,
    parse_arrivals,
)
from traces.errors import SpecError, TraceError, TraceWarning
from traces.filters import FilterReport, Filters
from traces.formats import FORMATS
from traces.io import load, load_lengths, save
from traces.lengths import (
    ALPACA_LIKE,
    CHAT_SINGLE_TURN,
    LENGTH_KINDS,
    SHAREGPT_LIKE,
    SHAREGPT_MULTITURN_LIKE,
    EmpiricalLengths,
    FixedLengths,
    LengthSpec,
    LogNormalLengths,
    QuantileLengths,
    UniformLengths,
    parse_lengths,
)
from traces.resolve import available_samples, resolve, sample_path, synth_from_spec
from traces.rng import seeded_generators
from traces.synth import synthesize, synthesize_filtered
from traces.trace import Trace

__all__ = [
    "ALPACA_LIKE",
    "CHAT_SINGLE_TURN",
    "ARRIVAL_KINDS",
    "FORMATS",
    "LENGTH_KINDS",
    "SHAREGPT_LIKE",
    "SHAREGPT_MULTITURN_LIKE",
    "ArrivalSpec",
    "ConstantArrivals",
    "EmpiricalLengths",
    "FilterReport",
    "Filters",
    "FixedLengths",
    "GammaArrivals",
    "LengthSpec",
    "LogNormalLengths",
    "PoissonArrivals",
    "QuantileLengths",
    "ReplayArrivals",
    "SpecError",
    "Trace",
    "TraceError",
    "TraceWarning",
    "UniformLengths",
    "available_samples",
    "from_rate",
    "load",
    "load_lengths",
    "parse_arrivals",
    "parse_lengths",
    "resolve",
    "sample_path",
    "save",
    "seeded_generators",
    "synth_from_spec",
    "synthesize",
    "synthesize_filtered",
]
