"""`fastserve check-policy SPEC`: the conformance properties (policy/conformance) against a class.

Prints one line per property, PASS / FAIL / SKIP, and for each failure the smallest failing
scenario found (configuration and trace, enough to reproduce it). Exit status 1 when any
property fails, 2 for a spec that does not load.
"""

from __future__ import annotations

import click

from fastserve.policy_options import POLICY_CHOICE


@click.command("check-policy")
@click.argument("spec", type=POLICY_CHOICE)
@click.option("--num-traces", type=click.IntRange(1), default=200, show_default=True, help="Random small traces (and configurations) each property is checked on.")
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of the random traces; the same seed checks the same traces.")
def check_policy_cmd(spec, num_traces, seed):
    """Check SPEC (a built-in name, module:Class or path/to/file.py:Class) for conservation, KV
    over-commit, determinism, skipping == stepping and, where the class claims it
    (`starvation_free = True`), no starvation."""
    from policy.conformance import PROPERTIES, check_class
    from policy.loading import parse_spec, resolve

    parsed = parse_spec(spec)
    cls = resolve(parsed)
    click.echo(f"check-policy {spec} (class {cls.__qualname__}): {num_traces} random traces, seed {seed}")
    with click.progressbar(length=num_traces * (len(PROPERTIES) - 1) + 1, label="checking", file=None) as bar:
        results = check_class(cls, parsed.kwargs(), num_traces, seed, progress=lambda: bar.update(1))
    failed = [r for r in results if r.status == "fail"]
    for r in results:
        click.echo(f"  {r.status.upper():<4}  {r.prop}: {r.message}")
    for r in failed:
        click.echo(f"\n{r.prop} fails; smallest failing trace found:\n{r.scenario.describe()}")
    if failed:
        raise SystemExit(1)
