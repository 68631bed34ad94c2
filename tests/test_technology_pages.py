"""Every technology page has the same ten sections, in order, each with real content.

Also: a "last reviewed" date, a decision record behind the choice, sources with dates on every
footnote, and no code pasted into the page (code is included from files that tests run).
"""

from __future__ import annotations

import datetime as dt
import re
from pathlib import Path

import pytest

from sitebuild.catalog import load_catalog

REPO_ROOT = Path(__file__).resolve().parent.parent
DOCS = REPO_ROOT / "docs"
CATALOG = load_catalog(DOCS / "data" / "stack.yaml")

SECTIONS = [
    "At a glance",
    "Purpose",
    "How it integrates",
    "Why this choice",
    "Configuration that matters",
    "Limits and quotas",
    "Security",
    "Failure modes and operations",
    "Cost drivers",
    "In the examples",
]
# Sections rendered mostly from the catalog need less prose of their own.
MIN_WORDS = dict.fromkeys(SECTIONS, 60) | {"At a glance": 0, "Limits and quotas": 0}

IDS = [tech.id for tech in CATALOG.technologies]


def page_text(tech_id: str) -> str:
    return (DOCS / "technologies" / f"{tech_id}.md").read_text(encoding="utf-8")


def front_matter(text: str) -> dict[str, str]:
    match = re.match(r"^---\n(?P<body>.*?)\n---\n", text, re.DOTALL)
    assert match, "no front matter"
    return dict(line.split(": ", 1) for line in match["body"].splitlines() if ": " in line)


def sections(text: str) -> dict[str, str]:
    parts = re.split(r"^## (.+?)\s*$", text, flags=re.MULTILINE)
    return dict(zip(parts[1::2], parts[2::2], strict=True))


def prose_words(markdown: str) -> int:
    without_code = re.sub(r"```.*?```", "", markdown, flags=re.DOTALL)
    without_markup = re.sub(r"<!--.*?-->|\[\^[^\]]+\]|\(https?://[^)]+\)", "", without_code)
    return len(re.findall(r"[A-Za-z][A-Za-z'-]+", without_markup))


@pytest.mark.parametrize("tech_id", IDS)
def test_page_has_the_ten_sections_in_order(tech_id: str) -> None:
    assert list(sections(page_text(tech_id))) == SECTIONS


@pytest.mark.parametrize("tech_id", IDS)
def test_every_section_has_real_content(tech_id: str) -> None:
    thin = {
        title: prose_words(body)
        for title, body in sections(page_text(tech_id)).items()
        if title in MIN_WORDS and prose_words(body) < MIN_WORDS[title]
    }
    assert not thin, f"sections under their word minimum: {thin}"


@pytest.mark.parametrize("tech_id", IDS)
def test_page_states_when_it_was_last_reviewed(tech_id: str) -> None:
    reviewed = front_matter(page_text(tech_id)).get("last_reviewed", "")
    assert re.fullmatch(r"\d{4}-\d{2}-\d{2}", reviewed), f"last_reviewed: {reviewed!r}"
    assert dt.date.fromisoformat(reviewed) <= dt.date.today()


@pytest.mark.parametrize("tech_id", IDS)
def test_limits_section_renders_the_catalog_limits(tech_id: str) -> None:
    body = sections(page_text(tech_id)).get("Limits and quotas", "")
    assert f"<!-- catalog:limits {tech_id} -->" in body


@pytest.mark.parametrize("tech_id", IDS)
def test_why_this_choice_links_to_an_existing_decision_record(tech_id: str) -> None:
    body = sections(page_text(tech_id)).get("Why this choice", "")
    records = re.findall(r"\]\(\.\./decisions/([0-9]{4}-[a-z0-9-]+\.md)(?:#[^)]*)?\)", body)
    assert records, "no link to ../decisions/NNNN-....md"
    assert all((DOCS / "decisions" / record).is_file() for record in records), records


@pytest.mark.parametrize("tech_id", IDS)
def test_every_footnote_gives_a_source_url_and_the_date_checked(tech_id: str) -> None:
    definitions = re.findall(r"^\[\^[^\]]+\]:(.*)$", page_text(tech_id), flags=re.MULTILINE)
    unsourced = [
        d
        for d in definitions
        if not re.search(r"https://\S+", d) or not re.search(r"checked \d{4}-\d{2}-\d{2}", d)
    ]
    assert not unsourced, f"footnotes without a URL and 'checked YYYY-MM-DD': {unsourced}"


@pytest.mark.parametrize("tech_id", IDS)
def test_code_on_the_page_is_included_never_pasted(tech_id: str) -> None:
    blocks = re.findall(r"^```[^\n]*\n(.*?)^```", page_text(tech_id), re.DOTALL | re.MULTILINE)
    pasted = [
        block
        for block in blocks
        if any(
            line.strip() and not line.strip().startswith("--8<--") for line in block.splitlines()
        )
    ]
    assert not pasted, f"code pasted instead of included with --8<--: {pasted}"


@pytest.mark.parametrize("tech_id", IDS)
def test_in_the_examples_includes_code_from_the_executable_examples(tech_id: str) -> None:
    body = sections(page_text(tech_id)).get("In the examples", "")
    includes = re.findall(r'^--8<-- "(examples/[^":]+):([a-z0-9-]+)"$', body, re.MULTILINE)
    assert includes, "no snippet from examples/ in 'In the examples'"
    assert "pytest" in body, "the section names no test command"


@pytest.mark.parametrize("tech_id", IDS)
def test_configuration_that_matters_includes_the_cdk_code_that_sets_it(tech_id: str) -> None:
    body = sections(page_text(tech_id)).get("Configuration that matters", "")
    assert re.search(r'^--8<-- "examples/infrastructure/[^"]+:[a-z0-9-]+"$', body, re.MULTILINE)
