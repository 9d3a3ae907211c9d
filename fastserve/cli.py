"""The `fastserve` command: one click group; each subcommand lives in its own module."""

from __future__ import annotations

import click


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="fastserve")
def main() -> None:
    """fastserve: FastServe's skip-join MLFQ and proactive KV swapping, simulated and live."""


# Subcommands register themselves here, one import each (keep this list sorted).
from fastserve.analysis_cli import compare, plot  # noqa: E402, I001
main.add_command(compare)
main.add_command(plot)
from fastserve.trace_cli import trace  # noqa: E402, I001
main.add_command(trace)
from fastserve.simulate_cli import simulate_cmd  # noqa: E402

main.add_command(simulate_cmd)
from fastserve.sweep_cli import sweep_cmd  # noqa: E402

main.add_command(sweep_cmd)
from fastserve.profiles_cli import profiles  # noqa: E402, I001
main.add_command(profiles)
from fastserve.serve_cli import profile, serve  # noqa: E402, I001
for _command in (profile, serve): main.add_command(_command)  # noqa: E701
from fastserve.demo_cli import demo_cmd  # noqa: E402

main.add_command(demo_cmd)
from fastserve.validate_cli import validate_cmd  # noqa: E402, I001
main.add_command(validate_cmd)
from fastserve.check_policy_cli import check_policy_cmd  # noqa: E402, I001
main.add_command(check_policy_cmd)
from fastserve.trace_events_cli import export_timeline_cmd  # noqa: E402, I001
main.add_command(export_timeline_cmd)
