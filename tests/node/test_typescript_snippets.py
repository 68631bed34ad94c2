"""The TypeScript snippets shown on the Node.js pages type-check against the real npm packages.

They are never run (the executable examples are Python stand-ins, ADR-0002), so the type check is
what keeps them honest: an option renamed in NestJS, TypeORM, Pino or the OpenTelemetry SDK fails
here. The second test proves that the check can fail at all.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent.parent
SNIPPETS = REPO_ROOT / "examples" / "node"
TSC = REPO_ROOT / "node_modules" / ".bin" / "tsc"
PAGES = REPO_ROOT / "docs"

# A real API misuse: NestFactory.create() takes NestApplicationOptions, where bufferLogs is boolean.
MISUSE_FILE = Path("examples") / "node" / "src" / "main.ts"
CORRECT_USE = "bufferLogs: true,"
MISUSE = "bufferLogs: 'yes',"

INCLUDE = re.compile(r'^--8<-- "(?P<path>examples/node/src/[^":]+\.ts):(?P<section>[a-z0-9-]+)"$')


def run_tsc(project: Path, cwd: Path) -> subprocess.CompletedProcess[str]:
    assert TSC.exists(), f"{TSC} is missing: run `npm ci` in {REPO_ROOT}"
    return subprocess.run(
        [str(TSC), "--noEmit", "--pretty", "false", "-p", str(project)],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def test_snippets_type_check_against_the_pinned_packages() -> None:
    result = run_tsc(Path("examples/node/tsconfig.json"), cwd=REPO_ROOT)
    assert result.returncode == 0, f"tsc failed:\n{result.stdout}{result.stderr}"


def test_an_api_misuse_in_a_snippet_fails_the_type_check(tmp_path: Path) -> None:
    copy = tmp_path / "examples" / "node"
    shutil.copytree(SNIPPETS, copy)
    # Module resolution walks up from the copy, as it does from examples/node in the repository.
    (tmp_path / "node_modules").symlink_to(REPO_ROOT / "node_modules", target_is_directory=True)

    broken = tmp_path / MISUSE_FILE
    source = broken.read_text(encoding="utf-8")
    assert source.count(CORRECT_USE) == 1, f"{MISUSE_FILE} no longer contains {CORRECT_USE!r}"
    broken.write_text(source.replace(CORRECT_USE, MISUSE), encoding="utf-8")

    result = run_tsc(copy / "tsconfig.json", cwd=tmp_path)
    output = result.stdout + result.stderr
    assert result.returncode != 0, f"tsc accepted the misuse:\n{output}"
    errors = [line for line in output.splitlines() if ": error TS" in line]
    assert errors, f"no TypeScript error reported:\n{output}"
    assert all(line.startswith(MISUSE_FILE.as_posix()) for line in errors), output
    assert "bufferLogs" in output, output


def test_every_snippet_a_page_includes_is_a_marked_section() -> None:
    includes = [
        (page.relative_to(REPO_ROOT), match)
        for page in sorted(PAGES.rglob("*.md"))
        for line in page.read_text(encoding="utf-8").splitlines()
        if (match := INCLUDE.match(line.strip()))
    ]
    assert includes, "no page includes a TypeScript snippet"
    for page, match in includes:
        source = REPO_ROOT / match["path"]
        assert source.is_file(), f"{page}: {match['path']} does not exist"
        text = source.read_text(encoding="utf-8")
        section = match["section"]
        start = text.find(f"// --8<-- [start:{section}]")
        end = text.find(f"// --8<-- [end:{section}]")
        assert 0 <= start < end, f"{page}: {match['path']} has no section {section!r}"
        body = text[start:end].splitlines()[1:]
        assert any(line.strip() for line in body), f"{page}: section {section!r} is empty"


def test_snippet_sections_are_balanced() -> None:
    for source in sorted((SNIPPETS / "src").rglob("*.ts")):
        name = source.relative_to(REPO_ROOT)
        text = source.read_text(encoding="utf-8")
        starts = re.findall(r"// --8<-- \[start:([a-z0-9-]+)\]", text)
        ends = re.findall(r"// --8<-- \[end:([a-z0-9-]+)\]", text)
        assert sorted(starts) == sorted(ends), f"{name}: starts {starts}, ends {ends}"
        assert len(set(starts)) == len(starts), f"{name}: a section name is used twice"
