"""The examples in docstrings (shown on the API reference pages) run and give what they show."""

from __future__ import annotations

import doctest
import importlib
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parent.parent
SOURCES = [REPO_ROOT / "examples" / "storefront", REPO_ROOT / "scripts" / "sitebuild"]


def modules_with_examples() -> list[str]:
    names = []
    for root in SOURCES:
        for path in sorted(root.rglob("*.py")):
            if ">>> " not in path.read_text(encoding="utf-8"):
                continue
            relative = path.relative_to(root.parent).with_suffix("")
            parts = relative.parts[:-1] if relative.name == "__init__" else relative.parts
            names.append(".".join(parts))
    return names


def test_docstring_examples_exist_to_be_run() -> None:
    assert modules_with_examples(), "no docstring examples found: the discovery is broken"


@pytest.mark.parametrize("module_name", modules_with_examples())
def test_docstring_examples_run_and_match(module_name: str) -> None:
    module = importlib.import_module(module_name)
    finder = doctest.DocTestFinder()
    runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS)
    tests = [t for t in finder.find(module) if t.examples]
    assert tests, f"{module_name} has '>>> ' but no example doctest can find"
    for test in tests:
        assert not any("doctest: +SKIP" in e.source for e in test.examples), "no skipped examples"
        runner.run(test)
    results = runner.summarize(verbose=False)
    assert results.failed == 0, f"{module_name}: {results.failed} docstring example(s) failed"
