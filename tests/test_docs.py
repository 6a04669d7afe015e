"""Every Python code block in README.md and docs/ runs, so the docs cannot rot.

The blocks of one page run in order in one namespace (a later block may use what an earlier one
defined), in a temporary working directory. A block that should not run has no business in the
docs: show shell commands as ``bash`` blocks instead.
"""
from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PAGES = [ROOT / "README.md"] + sorted((ROOT / "docs").rglob("*.md"))
FENCE = re.compile(r"^```python[ \t]*\n(.*?)^```[ \t]*$", re.S | re.M)


def blocks(page: Path) -> list[str]:
    return FENCE.findall(page.read_text(encoding="utf-8"))


def test_there_are_code_blocks_to_run():
    assert sum(len(blocks(p)) for p in PAGES if p.exists()) >= 5


@pytest.mark.parametrize("page", [p for p in PAGES if p.exists() and blocks(p)],
                         ids=lambda p: p.relative_to(ROOT).as_posix())
def test_code_blocks_run(page, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.syspath_prepend(str(ROOT))
    namespace: dict = {"__name__": "__docs__"}
    for i, code in enumerate(blocks(page)):
        try:
            exec(compile(code, f"{page.name} block {i + 1}", "exec"), namespace)
        except Exception as e:  # noqa: BLE001 - reported with the block that failed
            raise AssertionError(f"{page.relative_to(ROOT)} block {i + 1} failed: "
                                 f"{type(e).__name__}: {e}\n{code}") from e


def test_no_page_points_outside_the_repository():
    bad = [p.name for p in PAGES + [ROOT / "pyproject.toml"] if p.exists()
           and re.search(r"\.\./shared|shared/DESIGN\.md", p.read_text(encoding="utf-8"))]
    assert not bad, f"these pages point at files outside the repository: {bad}"
