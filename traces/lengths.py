"""Length distributions: how many prompt and output tokens each request has.

Every distribution is a frozen dataclass with `sample(num_requests, rng) -> (prompt_tokens,
output_tokens)`, two int64 arrays of positive values, drawn from the caller's seeded
`numpy.random.Generator`. `str(spec)` is a spec string that parses back to an equal spec.

Spec strings:
- `fixed:prompt=P,output=O`
- `uniform:prompt=A-B,output=C-D` (inclusive integer ranges)
- `lognormal:prompt_mean=M,prompt_sigma=S,output_mean=M,output_sigma=S`. The MEAN IS THE
  MEAN OF THE TOKEN COUNT ITSELF (not of its log); sigma is the standard deviation of the log.
  So mu = ln(mean) - sigma^2 / 2. Samples are rounded to whole tokens and raised to at least
  1, which moves the mean slightly when it is a few tokens.
- `empirical:PATH`: resample (prompt, output) pairs, with replacement, from any trace or
  length table (e.g. ShareGPT's `num_prefill_tokens,num_decode_tokens`); read in `sample`.
- `alpaca-like`: short prompts and outputs, see `ALPACA_LIKE` (cited means, assumed spreads).
- `chat-single-turn`: one real chat request each (prompt, reply), fitted to the Azure LLM
  inference trace 2023, conversation service; see `traces/chat_params.py`.
- `sharegpt-multiturn-like`: fitted to ShareGPT's multi-turn conversations (Llama-2 tokens;
  the prompt holds the history), see `traces/sharegpt_params.py`. The old name
  `sharegpt-like` is a deprecated alias: it parses to the same spec and warns once.
- `arxiv-like`: long summarization prompts, see `ARXIV_LIKE`; use with `max_total_tokens=4096`.
"""

from __future__ import annotations

import abc
import math
import sys
from dataclasses import dataclass, field
from typing import ClassVar

import numpy as np

from traces import chat_params, sharegpt_params
from traces.errors import SpecError
from traces.io import load_lengths
from traces.specs import format_number, parse_pairs, split_kind, to_float, to_int, to_int_range


class LengthSpec(abc.ABC):
    kind: ClassVar[str]
    keys: ClassVar[frozenset[str]] = frozenset()  # the keys its spec string takes

    @abc.abstractmethod
    def sample(
        self, num_requests: int, rng: np.random.Generator
    ) -> tuple[np.ndarray, np.ndarray]: ...


def _positive_int(kind: str, key: str, value: int) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value <= 0:
        raise SpecError(f"{kind} lengths: key '{key}' must be a positive integer, got {value!r}")


def _whole_tokens(values: np.ndarray) -> np.ndarray:
    return np.maximum(np.rint(values), 1).astype(np.int64)


@dataclass(frozen=True)
class FixedLengths(LengthSpec):
    prompt_tokens: int
    output_tokens: int
    kind: ClassVar[str] = "fixed"
    keys: ClassVar[frozenset[str]] = frozenset({"prompt", "output"})

    def __post_init__(self) -> None:
        _positive_int(self.kind, "prompt", self.prompt_tokens)
        _positive_int(self.kind, "output", self.output_tokens)

    def sample(self, num_requests: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        return (
            np.full(num_requests, self.prompt_tokens, dtype=np.int64),
            np.full(num_requests, self.output_tokens, dtype=np.int64),
        )

    def __str__(self) -> str:
        return f"fixed:prompt={self.prompt_tokens},output={self.output_tokens}"


@dataclass(frozen=True)
class UniformLengths(LengthSpec):
    prompt_min_tokens: int
    prompt_max_tokens: int
    output_min_tokens: int
    output_max_tokens: int
    kind: ClassVar[str] = "uniform"
    keys: ClassVar[frozenset[str]] = frozenset({"prompt", "output"})

    def __post_init__(self) -> None:
        for key, low, high in (
            ("prompt", self.prompt_min_tokens, self.prompt_max_tokens),
            ("output", self.output_min_tokens, self.output_max_tokens),
        ):
            _positive_int(self.kind, key, low)
            _positive_int(self.kind, key, high)
            if low > high:
                raise SpecError(
                    f"uniform lengths: key '{key}' range {low}-{high} is empty (A must be <= B)"
                )

    def sample(self, num_requests: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        return (
            rng.integers(
                self.prompt_min_tokens, self.prompt_max_tokens, size=num_requests, endpoint=True
            ),
            rng.integers(
                self.output_min_tokens, self.output_max_tokens, size=num_requests, endpoint=True
            ),
        )

    def __str__(self) -> str:
        return (
            f"uniform:prompt={self.prompt_min_tokens}-{self.prompt_max_tokens},"
            f"output={self.output_min_tokens}-{self.output_max_tokens}"
        )


@dataclass(frozen=True)
class LogNormalLengths(LengthSpec):
    """Independent lognormal prompt and output lengths; `*_mean_tokens` is the value's mean."""

    prompt_mean_tokens: float
    prompt_sigma: float
    output_mean_tokens: float
    output_sigma: float
    name: str | None = field(default=None, compare=False)  # set for named presets
    kind: ClassVar[str] = "lognormal"
    keys: ClassVar[frozenset[str]] = frozenset(
        {"prompt_mean", "prompt_sigma", "output_mean", "output_sigma"}
    )

    def __post_init__(self) -> None:
        for key, mean, sigma in (
            ("prompt", self.prompt_mean_tokens, self.prompt_sigma),
            ("output", self.output_mean_tokens, self.output_sigma),
        ):
            if not (math.isfinite(mean) and mean > 0):
                raise SpecError(f"lognormal lengths: key '{key}_mean' must be > 0, got {mean}")
            if not (math.isfinite(sigma) and sigma >= 0):
                raise SpecError(f"lognormal lengths: key '{key}_sigma' must be >= 0, got {sigma}")

    def sample(self, num_requests: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        def draw(mean: float, sigma: float) -> np.ndarray:
            return _whole_tokens(
                rng.lognormal(math.log(mean) - sigma**2 / 2, sigma, size=num_requests)
            )

        return draw(self.prompt_mean_tokens, self.prompt_sigma), draw(
            self.output_mean_tokens, self.output_sigma
        )

    def __str__(self) -> str:
        return self.name or (
            f"lognormal:prompt_mean={format_number(self.prompt_mean_tokens)},"
            f"prompt_sigma={format_number(self.prompt_sigma)},"
            f"output_mean={format_number(self.output_mean_tokens)},"
            f"output_sigma={format_number(self.output_sigma)}"
        )


@dataclass(frozen=True)
class EmpiricalLengths(LengthSpec):
    """(prompt, output) pairs resampled jointly, so their correlation is kept."""

    path: str
    kind: ClassVar[str] = "empirical"

    def __post_init__(self) -> None:
        if not self.path:
            raise SpecError("empirical lengths: missing PATH (use empirical:PATH)")

    def sample(self, num_requests: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        prompt_tokens, output_tokens = load_lengths(self.path)
        rows = rng.integers(0, len(prompt_tokens), size=num_requests)
        return prompt_tokens[rows], output_tokens[rows]

    def __str__(self) -> str:
        return f"empirical:{self.path}"


@dataclass(frozen=True)
class QuantileLengths(LengthSpec):
    """Marginal quantile tables joined by a Gaussian copula (see traces/fit_sharegpt.py).

    Draw z_p, z_o standard normal with correlation `rho`; map each through its quantile table
    by linear interpolation on `z_grid` (values beyond the grid take the end quantiles).
    """

    z_grid: tuple[float, ...]
    prompt_quantiles: tuple[float, ...]
    output_quantiles: tuple[float, ...]
    rho: float
    name: str | None = field(default=None, compare=False)
    kind: ClassVar[str] = "quantile"

    @classmethod
    def fitted(cls, params, name: str) -> QuantileLengths:
        """From a module that traces/fit_sharegpt.py or fit_chat.py generated."""
        return cls(params.Z_GRID, params.PROMPT_QUANTILES, params.OUTPUT_QUANTILES, params.RHO, name=name)

    def __post_init__(self) -> None:
        z_grid = np.asarray(self.z_grid)
        if len(self.prompt_quantiles) != z_grid.size or len(self.output_quantiles) != z_grid.size:
            raise SpecError(
                "quantile lengths: z_grid and quantile tables must have the same length"
            )
        if np.any(np.diff(z_grid) <= 0):
            raise SpecError("quantile lengths: z_grid must be increasing")
        for key in ("prompt_quantiles", "output_quantiles"):
            table = np.asarray(getattr(self, key))
            if np.any(np.diff(table) < 0) or table[0] < 1:
                raise SpecError(f"quantile lengths: {key} must be non-decreasing and >= 1")
        if not -1 < self.rho < 1:
            raise SpecError(f"quantile lengths: rho must be in (-1, 1), got {self.rho}")

    def sample(self, num_requests: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        z_prompt = rng.standard_normal(num_requests)
        z_output = self.rho * z_prompt + math.sqrt(1 - self.rho**2) * rng.standard_normal(
            num_requests
        )
        return (
            _whole_tokens(np.interp(z_prompt, self.z_grid, self.prompt_quantiles)),
            _whole_tokens(np.interp(z_output, self.z_grid, self.output_quantiles)),
        )

    def __str__(self) -> str:
        return self.name or "quantile(custom)"


# Alpaca (Taori et al. 2023) as tokenized for OPT in the vLLM paper (Kwon et al., SOSP'23,
# Fig. 11): mean input 19.31 and mean output 58.45 tokens; those two numbers are cited. The
# paper gives means and histograms, not spreads: the sigmas (0.6, 0.9) are ASSUMED, not taken
# from any source, so results on alpaca-like lengths say nothing exact about Alpaca's tail.
ALPACA_LIKE = LogNormalLengths(19.31, 0.6, 58.45, 0.9, name="alpaca-like")
# arXiv summarization as Vidur (Agrawal et al., MLSys'24) processes it: its table of arXiv-
# summarization request lengths (Llama-2 tokenizer) filtered to at most 4,096 tokens per request
# (the table `arxiv_summarization_filtered_stats_llama2_tokenizer.csv` that Vidur's README runs).
# Its statistics: about 2,600 prompt tokens on average, capped by the filter near 4,000, and about
# 290 output tokens with a heavy tail. We have the statistics, not the table: these lognormals are
# OUR APPROXIMATION, chosen so that after `max_total_tokens=4096` (drawn again until N pass, about
# 85% do) the kept prompts average ~2,630 (median ~2,610, max ~4,060) and the outputs ~285
# (median ~200, p99 ~1,200).
ARXIV_LIKE = LogNormalLengths(2850.0, 0.28, 340.0, 0.95, name="arxiv-like")
SHAREGPT_MULTITURN_LIKE = QuantileLengths.fitted(sharegpt_params, "sharegpt-multiturn-like")
SHAREGPT_LIKE = SHAREGPT_MULTITURN_LIKE  # the deprecated name's object
CHAT_SINGLE_TURN = QuantileLengths.fitted(chat_params, "chat-single-turn")
NAMED_LENGTHS: dict[str, LengthSpec] = {
    "alpaca-like": ALPACA_LIKE,
    "arxiv-like": ARXIV_LIKE,
    "chat-single-turn": CHAT_SINGLE_TURN,
    "sharegpt-multiturn-like": SHAREGPT_MULTITURN_LIKE,
}
# Old names that still parse, each to its new name; a one-line warning on first use.
DEPRECATED_LENGTHS = {"sharegpt-like": "sharegpt-multiturn-like"}
_warned: set[str] = set()
LENGTH_KINDS = ("fixed", "uniform", "lognormal", "empirical", *NAMED_LENGTHS)
LENGTH_KEYS: dict[str, frozenset[str]] = {
    cls.kind: cls.keys for cls in (FixedLengths, UniformLengths, LogNormalLengths, EmpiricalLengths)
}


def parse_lengths(spec: str | LengthSpec) -> LengthSpec:
    """A `LengthSpec` from a spec string (a `LengthSpec` passes through unchanged)."""
    if isinstance(spec, LengthSpec):
        return spec
    kind, rest = split_kind(spec, "lengths")
    what = f"lengths spec '{spec}'"
    if kind in DEPRECATED_LENGTHS:
        new = DEPRECATED_LENGTHS[kind]
        if kind not in _warned:
            _warned.add(kind)
            print(f"warning: lengths '{kind}' is deprecated, use '{new}' (the same distribution: "
                  f"multi-turn ShareGPT conversations)", file=sys.stderr)
        kind = new
    if kind in NAMED_LENGTHS:
        parse_pairs(rest, what, ())  # a named distribution takes no keys
        return NAMED_LENGTHS[kind]
    if kind == "empirical":
        return EmpiricalLengths(rest)
    if kind not in LENGTH_KEYS:
        raise SpecError(f"{what}: unknown kind '{kind}' (choose {', '.join(LENGTH_KINDS)})")
    keys = sorted(LENGTH_KEYS[kind])
    pairs = parse_pairs(rest, what, keys, required=keys)
    if kind == "fixed":
        return FixedLengths(
            to_int(pairs["prompt"], "prompt", what), to_int(pairs["output"], "output", what)
        )
    if kind == "uniform":
        return UniformLengths(
            *to_int_range(pairs["prompt"], "prompt", what),
            *to_int_range(pairs["output"], "output", what),
        )
    return LogNormalLengths(
        *(
            to_float(pairs[key], key, what)
            for key in ("prompt_mean", "prompt_sigma", "output_mean", "output_sigma")
        )
    )
