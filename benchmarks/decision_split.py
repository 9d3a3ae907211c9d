"""Where a simulator decision's time goes, and the command's start-up: the split behind issue
17's two targets (DESIGN.md, "Decision cost"). No target; `sim_speed.py --split` runs it.

A decision is one `Scheduler.schedule` call and the run of iterations the replica makes of its
plan. Each part below is timed by wrapping the method that does it with a perf_counter pair, in
one process, and given in microseconds per decision; "rest" is what the wrapped parts leave of
the simulation's time: the replica's loop, SimPy, the arrivals process, the plan's token lists.
The wrappers add ~0.3 us a call, so the wrapped total runs a few percent above the plain one,
which is printed beside it. Start-up is the CPU time (user + system) of fresh interpreters that
import more and more of what `fastserve simulate` imports.
"""

from __future__ import annotations

import resource
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable

# (label, owner, attribute): the wrapped parts, in the order printed; an indented label is part
# of the one above it
PARTS = (
    ("schedule", "policy.scheduler:Scheduler", "schedule"),
    ("  the batch walk", "policy.scheduler:Scheduler", "_form_batch"),
    ("run length", "sim.skip_run:SkipRuns", "length"),
    ("  horizon", "policy.scheduler:Scheduler", "horizon"),
    ("  pricing, lazy", "sim.skip_run", "cut_run"),
    ("  pricing, numpy", "sim.skip_run:SkipRuns", "_priced_run"),
    ("advance (service, demotions)", "policy.scheduler:Scheduler", "advance"),
    ("first iteration's price", "sim.replica:Replica", "_iteration_s"),
    ("iteration rows", "sim.replica:Replica", "_record"),
    ("finishes", "sim.replica:Replica", "_finish"),
)

STARTUP = (
    ("bare interpreter", "pass"),
    ("numpy", "import numpy"),
    ("numpy, pyarrow, simpy, click, tqdm", "import numpy, pyarrow, simpy, click, tqdm"),
    ("  + pandas", "import numpy, pyarrow, simpy, click, tqdm, pandas"),
    ("all that `simulate` imports", "import fastserve.cli, fastserve.simulate_cli, fastserve.rundir, fastserve.tables, "
                                    "policy, profiles, sim, traces"),
)


def _owner(spec: str):
    module, _, name = spec.partition(":")
    obj = __import__(module, fromlist=["_"])
    return getattr(obj, name) if name else obj


def _timed(original: Callable, totals: Counter, label: str) -> Callable:
    clock = time.perf_counter

    def wrapper(*args, **kwargs):
        start = clock()
        try:
            return original(*args, **kwargs)
        finally:
            totals[label] += clock() - start

    return wrapper


def split(run: Callable[[], dict]) -> None:
    """Run `run` (a simulation returning its stats) plain, then with every part wrapped, and
    print the parts per decision."""
    start = time.perf_counter()
    stats = run()
    plain_s = time.perf_counter() - start
    totals: Counter = Counter()
    saved = []
    for label, spec, attr in PARTS:
        owner = _owner(spec)
        saved.append((owner, attr, getattr(owner, attr)))
        setattr(owner, attr, _timed(getattr(owner, attr), totals, label))
    try:
        start = time.perf_counter()
        run()
        wrapped_s = time.perf_counter() - start
    finally:
        for owner, attr, original in reversed(saved):
            setattr(owner, attr, original)
    n = stats["num_decisions"]
    print(f"  {n:,} decisions; simulation {plain_s:.2f} s plain = {plain_s / n * 1e6:.1f} us a decision "
          f"({wrapped_s / n * 1e6:.1f} us with the timers)")
    top = sum(totals[label] for label, _, _ in PARTS if not label.startswith(" "))
    for label, _, _ in PARTS:
        print(f"    {label:<32} {totals[label] / n * 1e6:6.1f} us")
    print(f"    {'rest':<32} {(wrapped_s - top) / n * 1e6:6.1f} us")


def cpu_s(args: list[str]) -> float:
    """CPU time (user + system) of one subprocess run of `args`."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    subprocess.run(args, check=True, capture_output=True)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def startup(reps: int = 5) -> None:
    """CPU time of interpreters importing more and more of `simulate`'s imports (best of `reps`)."""
    for label, code in STARTUP:
        best = min(cpu_s([sys.executable, "-c", code]) for _ in range(reps))
        print(f"    {label:<40} {best:.3f} s")
