"""The code examples in docs/ are part of the documentation's promise: run them."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

DOCS = Path(__file__).resolve().parents[1] / "docs"
_BLOCK = re.compile(r"```python\n(.*?)```", re.DOTALL)


def _examples() -> list[tuple[str, str]]:
    found = []
    for page in [DOCS.parent / "README.md", *sorted(DOCS.glob("*.md"))]:
        for n, block in enumerate(_BLOCK.findall(page.read_text(encoding="utf-8"))):
            found.append((f"{page.name}#{n}", block))
    return found


@pytest.mark.parametrize(("name", "code"), _examples(), ids=[n for n, _ in _examples()])
def test_doc_example_runs(name: str, code: str, capsys: pytest.CaptureFixture[str]) -> None:
    namespace: dict[str, object] = {"__name__": "__doc_example__"}
    exec(compile(code, name, "exec"), namespace)
    # Every example ends by printing what it demonstrated; silence would mean it did not
    # reach its end.
    assert capsys.readouterr().out.strip()


def test_ready_loop_page_has_an_example() -> None:
    assert any(name.startswith("ready-loop.md") for name, _ in _examples())
