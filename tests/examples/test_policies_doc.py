"""docs/policies.md: linked from the README, and its Python examples run as written (in order,
in one namespace, from the repository root), with the asserts they contain."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
DOC = ROOT / "docs" / "policies.md"


def test_the_readme_links_the_policy_guide():
    assert "[docs/policies.md](docs/policies.md)" in (ROOT / "README.md").read_text()


def test_the_examples_in_the_guide_run(monkeypatch, capsys):
    blocks = re.findall(r"```python\n(.*?)```", DOC.read_text(), flags=re.S)
    assert len(blocks) == 3
    monkeypatch.chdir(ROOT)  # the guide names example files relative to the repository root
    namespace: dict = {"__name__": "policies_doc"}
    for k, block in enumerate(blocks):
        exec(compile(block, f"{DOC}:block{k}", "exec"), namespace)  # noqa: S102 - the guide's own code
    out = capsys.readouterr().out.splitlines()
    assert out[:5] == ["pass conservation 20 traces", "pass no KV over-commit 20 traces", "pass determinism 20 traces",
                       "pass skipping == stepping 20 traces",
                       "skip no starvation not claimed (set starvation_free = True to check it)"]
    assert out[5] == "50 finished"


def test_the_guides_policy_is_the_example_file():
    """The guide's first block is examples/policies/shortest_prompt_first.py's class, so that the
    commands it shows run the code it shows."""
    block = re.findall(r"```python\n(.*?)```", DOC.read_text(), flags=re.S)[0]
    example = (ROOT / "examples" / "policies" / "shortest_prompt_first.py").read_text()
    body = block[block.index("class ShortestPromptFirst"):]
    for line in body.splitlines():
        code = line.split("#")[0].strip()
        if code and "self._fresh, self._started" not in code and "<< 32" not in code:
            assert code in example, code
