"""A baseline commit checked out beside this one, for benchmarks that compare old and new code
side by side on the same machine in the same run (noise on a shared machine cancels out)."""

from __future__ import annotations

import contextlib
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


@contextlib.contextmanager
def baseline_tree(rev: str) -> Iterator[Path]:
    """A temporary detached `git worktree` of `rev`, removed afterwards; one-line error if `rev`
    is unknown (a shallow clone lacks old commits: fetch them first)."""
    tmp = Path(tempfile.mkdtemp(prefix="baseline_"))
    tree = tmp / "tree"
    try:
        done = subprocess.run(["git", "worktree", "add", "--detach", "-q", str(tree), rev], cwd=REPO,
                              capture_output=True, text=True)
        if done.returncode:
            raise SystemExit(f"error: cannot check out baseline {rev!r}: {done.stderr.strip()}")
        yield tree
    finally:
        if tree.exists():
            subprocess.run(["git", "worktree", "remove", "--force", str(tree)], cwd=REPO, check=False)
        shutil.rmtree(tmp, ignore_errors=True)
