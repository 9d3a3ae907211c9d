"""`fastserve profile`'s grid axes: the batch sizes and token counts it measures.

The default grid stops at 32 decoding jobs and 1,024 tokens of context (executor/profiler.py),
so a simulation at today's batch sizes (128-512) would price most iterations by extrapolation;
these options measure that range instead, on a device that holds its KV.
"""

from __future__ import annotations

import click

QUICK_GRID = dict(prefill_batch_sizes=(1, 2), prompt_tokens=(8, 32), decode_batch_sizes=(1, 4),
                  context_tokens=(16, 64), swap_tokens=(16, 64), chunk_tokens=(8, 32), chunk_context_tokens=(0, 32))


class IncreasingIntsParam(click.ParamType):
    """Comma-separated positive integers, at least two, increasing: one axis of a grid."""

    name = "N,N,..."

    def convert(self, value, param, ctx):
        if isinstance(value, tuple):
            return value
        try:
            axis = tuple(int(v) for v in value.split(","))
        except ValueError:
            self.fail(f"{value!r} is not a comma-separated list of integers", param, ctx)
        if len(axis) < 2 or axis[0] < 1 or any(b <= a for a, b in zip(axis, axis[1:], strict=False)):
            self.fail(f"{value!r}: give at least 2 increasing positive integers", param, ctx)
        return axis


AXES = (
    ("--prefill-batch-sizes", "Prefill grid: prompts per iteration [1,2,4,8]."),
    ("--prompt-tokens", "Prefill grid: tokens per prompt [1,8,32,64,128,256,512]."),
    ("--decode-batch-sizes", "Decode grid: decoding jobs per iteration [1,2,4,8,16,32]; e.g. "
                             "1,16,64,128,256,512 for today's serving batches."),
    ("--context-tokens", "Decode grid: tokens of context per job [2,16,64,128,256,512,1024]."),
    ("--swap-tokens", "Swap curve: tokens of KV moved per transfer [16,64,256,1024,4096]."),
)

# the option that measures each axis a simulation can run past (profiles/grid_exits.py's names)
OPTION_OF_AXIS = {"decode batch": "--decode-batch-sizes", "context tokens": "--context-tokens",
                  "prefill batch": "--prefill-batch-sizes", "prompt tokens": "--prompt-tokens"}


def grid_options(command):
    for flag, help_text in reversed(AXES):
        command = click.option(flag, type=IncreasingIntsParam(), default=None, help=help_text)(command)
    return command


def grid_from_options(quick: bool, **axes) -> dict:
    """ProfileConfig's grid fields: --quick's small grid, or the axes given (the rest default)."""
    given = {name: axis for name, axis in axes.items() if axis is not None}
    if quick and given:
        flag = "--" + next(iter(given)).replace("_", "-")
        raise click.BadParameter("sets a grid axis, which --quick's small grid fixes", param_hint=flag)
    return dict(QUICK_GRID) if quick else given
