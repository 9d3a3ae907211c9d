"""Python warnings, as the CLI shows them: one line, `warning: MESSAGE`, on stderr.

Library code (profiles, traces) reports recoverable surprises with `warnings.warn`, which by
default prints the warning's class and the source line that raised it: noise to a user. Every
`fastserve` command routes warnings here instead.
"""

from __future__ import annotations

import warnings

import click


def _show(message, category, filename, lineno, file=None, line=None) -> None:
    click.echo(f"warning: {message}", err=True)


def install() -> None:
    warnings.showwarning = _show
