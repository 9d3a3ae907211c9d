"""The bundled samples load, have the documented shape, and are reproduced by their commands."""

from __future__ import annotations

import shlex

import pytest
from click.testing import CliRunner

import traces
from fastserve.cli import main

README = traces.sample_path("bursty-small").parent / "README.md"


def readme_commands() -> dict[str, list[str]]:
    """The `fastserve trace synth ...` commands in traces/data/README.md, by output file name."""
    text = README.read_text().replace("\\\n", " ")
    commands = {}
    for line in text.splitlines():
        if line.strip().startswith("fastserve trace synth"):
            words = shlex.split(line)
            commands[words[words.index("-o") + 1].rpartition("/")[2]] = words[1:]
    return commands


def test_available_samples():
    assert traces.available_samples() == ["bursty-small", "sharegpt-1k"]


def test_bursty_small_shape():
    trace = traces.resolve("sample:bursty-small")
    stats = trace.stats()
    assert len(trace) == 80
    assert 3.0 <= stats["interarrival_cv"] <= 4.0
    assert stats["duration_s"] < 30
    assert trace.prompt_tokens.min() >= 8 and trace.prompt_tokens.max() <= 64
    assert trace.output_tokens.min() >= 4 and trace.output_tokens.max() <= 64


def test_sharegpt_1k_shape():
    trace = traces.resolve("sample:sharegpt-1k")
    assert len(trace) == 1000
    assert trace.prompt_tokens.max() <= 1024
    assert (trace.prompt_tokens + trace.output_tokens).max() <= 2048
    assert trace.stats()["rate_rps"] == pytest.approx(1.5, rel=0.1)


@pytest.mark.parametrize("name", ["bursty-small.csv", "sharegpt-1k.csv"])
def test_sample_is_reproduced_byte_for_byte_by_its_readme_command(tmp_path, name):
    args = readme_commands()[name]
    args[args.index("-o") + 1] = str(tmp_path / name)
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    assert (tmp_path / name).read_bytes() == (README.parent / name).read_bytes()
