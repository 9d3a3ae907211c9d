"""The `fastserve` command: one click group; each subcommand lives in its own module, loaded lazily.

Start-up rule: importing this module, `fastserve --help` and `fastserve X --help` load neither
matplotlib, seaborn, pandas-heavy analysis, torch nor transformers. `fastserve --help` lists
the commands from `COMMANDS` without importing any of them; `fastserve X` imports X's module
alone, on first use.

To add a command:
1. write it in its own module (`fastserve/x_cli.py`), importing heavy modules (analysis, sim,
   executor, pandas, matplotlib, torch, transformers) inside the command function, not at the
   top of the module;
2. add one entry to `COMMANDS`: the name, "module:attribute" of the click command, and its
   summary, the first paragraph of its docstring on one line (what `fastserve --help` shows).

tests/test_cli_startup.py checks both: that importing this module loads none of the heavy
modules, and that every entry's summary matches the command it names.
"""

from __future__ import annotations

import importlib

import click

# name -> ("module:attribute", the command's one-line summary); keep it sorted by name.
COMMANDS: dict[str, tuple[str, str]] = {
    "bench": ("fastserve.bench_cli:bench_cmd",
        "Replay a trace against an OpenAI-compatible server; measure TTFT, token times and JCT."),
    "check-policy": ("fastserve.check_policy_cli:check_policy_cmd",
        "Check SPEC (a built-in name, module:Class or path/to/file.py:Class) for conservation, KV over-commit, determinism, skipping == stepping and, where the class claims it (`starvation_free = True`), no starvation."),
    "compare": ("fastserve.analysis_cli:compare",
        "Compare policies side by side across RUN_DIR..., with ratios to a baseline policy."),
    "demo": ("fastserve.demo_cli:demo_cmd",
        "Simulate fcfs, vllm-fcfs, sarathi, mlfq, skip-join-mlfq and srpt (and any --policy) on a bursty trace; print and plot."),
    "export-timeline": ("fastserve.trace_events_cli:export_timeline_cmd",
        "Write RUN_DIR's iterations, swaps and per-request spans as trace-event JSON (open it in ui.perfetto.dev or chrome://tracing)."),
    "plot": ("fastserve.analysis_cli:plot",
        "Write the plots that DIRECTORY (a run or sweep directory) supports, as PNGs in OUT_DIR."),
    "profile": ("fastserve.serve_cli:profile",
        "Measure prefill and decode grids, swap latency and KV capacity into a profile JSON (with --tp/--pp: of a distributed replica, plus its all-reduce and send/recv costs)."),
    "profiles": ("fastserve.profiles_cli:profiles",
        "Cost profiles: bundled, measured (`fastserve profile`) or roofline-derived."),
    "serve": ("fastserve.serve_cli:serve",
        "Serve a trace with a real model, policy by policy, into one run directory."),
    "simulate": ("fastserve.simulate_cli:simulate_cmd",
        "Simulate POLICIES on a trace and write requests.parquet, summary.csv and config.json."),
    "sweep": ("fastserve.sweep_cli:sweep_cmd",
        "Run every cell of CONFIG_FILE's grid: a TOML file with [sweep], [grid], [scheduler] and [sim] sections."),
    "trace": ("fastserve.trace_cli:trace",
        "Workload traces: synthesize, inspect and convert."),
    "validate": ("fastserve.validate_cli:validate_cmd",
        "Run the live executor and the simulator on one trace and report how far apart they are."),
}


def load_command(name: str) -> click.Command:
    """Import the module of command `name` and return its click command."""
    module, _, attribute = COMMANDS[name][0].partition(":")
    return getattr(importlib.import_module(module), attribute)


def _shorten(summary: str, limit: int) -> str:
    """The summary cut at a word to `limit` characters, as click shortens a command's help."""
    if len(summary) <= limit:
        return summary
    return summary[:max(limit - 3, 0)].rsplit(" ", 1)[0].rstrip(" .,;:") + "..."


class LazyGroup(click.Group):
    """A click group whose subcommands are imported when invoked, not when listed."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(set(COMMANDS) | set(self.commands))

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name not in self.commands and cmd_name in COMMANDS:
            self.add_command(load_command(cmd_name), cmd_name)
        return self.commands.get(cmd_name)

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        """The command list from `COMMANDS` summaries, without importing the commands."""
        names = self.list_commands(ctx)
        if not names:
            return
        limit = formatter.width - 6 - max(len(n) for n in names)
        rows = []
        for name in names:
            if name in COMMANDS:
                summary = _shorten(COMMANDS[name][1], limit)
            else:
                summary = self.commands[name].get_short_help_str(limit)
            rows.append((name, summary))
        with formatter.section("Commands"):
            formatter.write_dl(rows)


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="fastserve")
def main() -> None:
    """fastserve: FastServe's skip-join MLFQ and proactive KV swapping, simulated and live."""
    from fastserve.warning_lines import install

    install()  # warnings as one line each, without Python's source lines
