"""The `fastserve` command: one click group; each subcommand lives in its own module."""

from __future__ import annotations

import click


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="fastserve")
def main() -> None:
    """fastserve: FastServe's skip-join MLFQ and proactive KV swapping, simulated and live."""


# Subcommands register themselves here, one import each (keep this list sorted).
