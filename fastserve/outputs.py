"""Every path a command writes goes through here, before any work starts.

`output_file(path, option)` and `output_dir(path, option)` create the missing parent folders
and turn every failure (a parent that is a file, no permission, a file where a folder is
wanted) into one `click.ClickException` line naming the option and the path.
`run_dir(path, option, overwrite)` checks a run directory the same way and refuses one that
already holds files, unless `overwrite`: a second run must never silently replace the first
run's results. It creates only the parents: the run writer makes the directory with its first
results, so a run that fails early leaves nothing half-written behind.
"""

from __future__ import annotations

import os
from pathlib import Path

import click

RUN_FILES = ("requests.parquet", "summary.csv", "config.json", "iterations.parquet", "spans.parquet")


def _fail(option: str, path: Path | str, why: str) -> click.ClickException:
    return click.ClickException(f"{option} {path}: {why}")


def _check_ancestors(path: Path, option: str) -> None:
    """Refuse a path under a file; name the first ancestor that is not a folder."""
    for parent in reversed(path.parents):
        if parent.exists() and not parent.is_dir():
            raise _fail(option, path, f"{parent} is a file, not a folder")


def _make_parents(path: Path, option: str) -> None:
    _check_ancestors(path, option)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise _fail(option, path, f"cannot create its folder ({e.strerror or e})") from None
    if not os.access(path.parent, os.W_OK):
        raise _fail(option, path, f"{path.parent} is not writable")


def output_file(path: str | os.PathLike, option: str) -> Path:
    """A file to write: parents created, not a folder."""
    out = Path(path)
    _make_parents(out, option)
    if out.is_dir():
        raise _fail(option, out, "is a folder, not a file")
    return out


def output_dir(path: str | os.PathLike, option: str) -> Path:
    """A folder to write into (plots, a sweep): created with its parents."""
    out = Path(path)
    _make_parents(out, option)
    if out.exists() and not out.is_dir():
        raise _fail(option, out, "is a file, not a folder")
    try:
        out.mkdir(exist_ok=True)
    except OSError as e:
        raise _fail(option, out, f"cannot create it ({e.strerror or e})") from None
    return out


def run_dir(path: str | os.PathLike, option: str, overwrite: bool) -> Path:
    """A run directory: empty or absent, or with `overwrite` its earlier run files removed."""
    out = Path(path)
    _make_parents(out, option)
    if out.exists() and not out.is_dir():
        raise _fail(option, out, "is a file, not a folder")
    existing = sorted(p.name for p in out.iterdir()) if out.is_dir() else []
    if existing and not overwrite:
        shown = ", ".join(existing[:3]) + (", ..." if len(existing) > 3 else "")
        raise _fail(option, out, f"already holds results ({shown}); pass --overwrite to replace them, "
                                 "or choose another directory")
    if overwrite:
        for name in RUN_FILES:
            (out / name).unlink(missing_ok=True)
    return out


def overwrite_option(func):
    return click.option("--overwrite", is_flag=True,
                        help="Replace the results already in the run directory (refused otherwise).")(func)
