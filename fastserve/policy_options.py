"""Scheduler flags shared by `simulate`, `serve` and `sweep`, and their mapping to SchedulerConfig.

Every flag defaults to None, meaning "the policy's paper default" (SchedulerConfig), or for
capacities "what the profile says".
"""

from __future__ import annotations

import dataclasses

import click

from policy import SWAP_MODES, SchedulerConfig
from policy.config import AUTO, PROMOTIONS


class PolicySpecParam(click.ParamType):
    """A policy spec (policy/loading.py), checked by loading the class: a bad one is a one-line
    usage error naming --policy and what is wrong. The value stays the spec string, which is the
    policy's name everywhere (results, sweeps, workers resolve it again)."""

    name = "POLICY"

    def convert(self, value, param, ctx):
        from policy.loading import PolicyLoadError, parse_spec, resolve

        try:
            resolve(parse_spec(value))
        except PolicyLoadError as e:
            self.fail(str(e), param, ctx)
        return parse_spec(value).text


class QuantumMsParam(click.ParamType):
    """q_1 in milliseconds, or "auto" (kept as is)."""

    name = "MS|auto"

    def convert(self, value, param, ctx):
        if isinstance(value, float) or value == AUTO:
            return value
        try:
            return float(value)
        except ValueError:
            self.fail(f"{value!r} is neither a number of milliseconds nor 'auto'", param, ctx)


POLICY_CHOICE = PolicySpecParam()
QUANTUM_MS = QuantumMsParam()
SWAP_CHOICE = click.Choice(list(SWAP_MODES))

_FLAGS = [
    ("--max-batch", "max_batch_size", int, "Most jobs in one iteration's batch [16]."),
    ("--max-prefill-tokens", "max_prefill_tokens", int, "Prefill-token budget per iteration [2048]."),
    ("--chunked-prefill-tokens", "chunked_prefill_tokens", int, "Chunked prefill: tokens per iteration, decodes and prefill chunks together [off; sarathi: 512]."),
    ("--max-seq-tokens", "max_seq_tokens", int, "Context limit; longer requests are rejected and counted; at most "
                                                 "the model's context [the model's context, from the profile]."),
    ("--device-kv-tokens", "device_kv_tokens", int, "Device KV capacity in tokens [from the profile]."),
    ("--host-kv-tokens", "host_kv_tokens", int, "Host (swap) KV capacity in tokens [from the profile]."),
    ("--block-size", "block_size_tokens", int, "KV block size in tokens [1]."),
    ("--swap-reserve", "swap_reserve_fraction", float, "Share of device KV proactive swapping keeps free [0.05]."),
    ("--base-quantum-ms", "base_quantum_s", QUANTUM_MS, "MLFQ quantum q_1 of the top level, in ms, or 'auto': the "
                                                         "profile's shortest iteration, the paper's rule [auto; artifact: 10]."),
    ("--quantum-growth", "quantum_growth", float, "MLFQ quantum growth per level [2]."),
    ("--num-levels", "num_levels", int, "MLFQ levels [10]."),
    ("--demotion-levels", "demotion_levels", int, "Levels a job drops when its quantum is used up [1]."),
    ("--alpha-s", "alpha_s", float, "Starvation threshold: waiting this long promotes to the top [3; paper 0.3]."),
    ("--starvation-check-s", "starvation_check_s", float, "Seconds of policy time between starvation checks; 0: "
                                                           "at every decision [0]."),
    ("--check-iterations", "starvation_check_iterations", int, "Check starvation every N iterations instead "
                                                                "(the artifact's rule: 1000) [off]."),
    ("--promotion", "promotion", click.Choice(PROMOTIONS), "A promoted job keeps the top level for the quantum "
                                                           "of the level it left ('quantum'), or starts it afresh "
                                                           "('paper') [quantum]."),
]


def policy_options(func):
    """Add the scheduler flags to a click command (collected into **kwargs)."""
    for flag, dest, kind, help_text in reversed(_FLAGS):
        func = click.option(flag, dest, type=kind, default=None, help=help_text)(func)
    return func


def scheduler_config(options: dict, swap: str | None, device_kv_tokens: int, host_kv_tokens: int) -> SchedulerConfig:
    """Build a SchedulerConfig from CLI values; a bad value becomes a one-line error naming the flag."""
    fields = {"swap": swap, "device_kv_tokens": device_kv_tokens, "host_kv_tokens": host_kv_tokens}
    for _, dest, _, _ in _FLAGS:
        value = options.get(dest)
        if value is None:
            continue
        fields[dest] = value / 1000 if dest == "base_quantum_s" and value != AUTO else value
    try:
        return SchedulerConfig(**fields)
    except ValueError as e:
        flag = next((f for f, d, _, _ in _FLAGS if str(e).startswith(d)), None)
        raise click.BadParameter(str(e), param_hint=flag) from None


def with_model_context(options: dict, context_tokens: int, model: str) -> dict:
    """`options` with max_seq_tokens defaulting to the model's context; a larger value is a
    one-line error: no engine can serve past the positions the model was trained for."""
    given = options.get("max_seq_tokens")
    if given is None:
        return {**options, "max_seq_tokens": context_tokens}
    if given > context_tokens:
        raise click.BadParameter(f"{given} exceeds {model}'s context of {context_tokens} tokens",
                                 param_hint="--max-seq-tokens")
    return options


def config_dict(cfg: SchedulerConfig) -> dict:
    return dataclasses.asdict(cfg)
