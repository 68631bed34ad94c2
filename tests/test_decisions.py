"""Every decision record has the MADR shape, is in the nav, and is listed by the index."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from mkdocs.config import load_config

REPO_ROOT = Path(__file__).resolve().parent.parent
DECISIONS = REPO_ROOT / "docs" / "decisions"
RECORDS = sorted(DECISIONS.glob("[0-9][0-9][0-9][0-9]-*.md"))
MADR_SECTIONS = [
    "Context and problem statement",
    "Decision drivers",
    "Considered options",
    "Decision outcome",
    "Pros and cons of the options",
]


def headings(text: str, level: int) -> list[str]:
    return re.findall(rf"^{'#' * level} (.+?)\s*$", text, flags=re.MULTILINE)


def section(text: str, title: str) -> str:
    match = re.search(
        rf"^## {re.escape(title)}\s*$(.*?)(?=^## |\Z)", text, re.MULTILINE | re.DOTALL
    )
    return match[1] if match else ""


def test_there_are_at_least_ten_decision_records() -> None:
    assert len(RECORDS) >= 10


@pytest.mark.parametrize("record", RECORDS, ids=[r.stem for r in RECORDS])
def test_record_has_the_madr_sections_in_order(record: Path) -> None:
    text = record.read_text(encoding="utf-8")
    assert re.match(rf"^# ADR-{record.name[:4]}: \S", text), "first line: '# ADR-NNNN: <title>'"
    assert re.search(r"^\*\*Status:\*\* \w+ · \*\*Date:\*\* \d{4}-\d{2}-\d{2}", text, re.M)
    assert headings(text, 2) == MADR_SECTIONS


@pytest.mark.parametrize("record", RECORDS, ids=[r.stem for r in RECORDS])
def test_outcome_states_consequences_both_ways_and_its_validation(record: Path) -> None:
    outcome = section(record.read_text(encoding="utf-8"), "Decision outcome")
    assert "Chosen option:" in outcome
    assert headings(outcome, 3)[:2] == ["Consequences", "Validation"]
    assert "Good, because" in outcome
    assert "Bad, because" in outcome


@pytest.mark.parametrize("record", RECORDS, ids=[r.stem for r in RECORDS])
def test_record_weighs_at_least_two_options(record: Path) -> None:
    options = section(record.read_text(encoding="utf-8"), "Pros and cons of the options")
    assert len(headings(options, 3)) >= 2


def test_every_record_is_in_the_nav() -> None:
    nav = load_config(str(REPO_ROOT / "mkdocs.yml"))["nav"]
    decisions = next(entry["Decisions"] for entry in nav if "Decisions" in entry)
    listed = {next(iter(e.values())) if isinstance(e, dict) else e for e in decisions}
    missing = [r.name for r in RECORDS if f"decisions/{r.name}" not in listed]
    assert not missing
