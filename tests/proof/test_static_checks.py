"""Static security checks: ruff's flake8-bandit rules (``S``) pass, and every suppression says why.

bandit itself is not a dependency: ruff's ``S`` rules are its port (flake8-bandit), and the test
command already runs them with the rest of ruff (``pyproject.toml`` selects ``S``). These tests
add what ruff does not check: that a ``# noqa: S...`` carries its justification, so a reviewer can
judge each exception to a security rule.
"""

from __future__ import annotations

import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
CHECKED = ("examples", "scripts")
RUFF = Path(sys.executable).parent / "ruff"

# --8<-- [start:justified-noqa]
NOQA = re.compile(
    r"#\s*(?:ruff:\s*)?noqa:\s*(?P<codes>[A-Z]+[0-9]+(?:\s*,\s*[A-Z]+[0-9]+)*)(?P<rest>.*)"
)
SECURITY_RULE = re.compile(r"S[0-9]+")  # S101, S608 ... (not SIM: letters only after the S)
JUSTIFICATION = re.compile(r"\s*[-:]\s*\w+(?:\W+\w+)+")  # "- a reason in words", ": words"


@dataclass(frozen=True)
class Suppression:
    """A ``# noqa`` of a security rule without a reason."""

    path: str
    line: int
    text: str


def unjustified_security_suppressions(root: Path, folders: tuple[str, ...]) -> list[Suppression]:
    """Every ``# noqa: S...`` under ``folders`` that is not followed by ``-`` or ``:`` and words."""
    found = []
    for folder in folders:
        for path in sorted((root / folder).rglob("*.py")):
            lines = path.read_text(encoding="utf-8").splitlines()
            for number, line in enumerate(lines, start=1):
                for match in NOQA.finditer(line):
                    codes = re.split(r"\s*,\s*", match["codes"])
                    security = any(SECURITY_RULE.fullmatch(code) for code in codes)
                    if security and not JUSTIFICATION.match(match["rest"]):
                        relative = str(path.relative_to(root))
                        found.append(Suppression(relative, number, line.strip()))
    return found


# --8<-- [end:justified-noqa]


def test_every_security_suppression_in_examples_and_scripts_says_why() -> None:
    offenders = unjustified_security_suppressions(REPO_ROOT, CHECKED)
    assert offenders == [], "\n".join(f"{o.path}:{o.line}: {o.text}" for o in offenders)


def test_the_justification_check_catches_a_bare_security_noqa(tmp_path: Path) -> None:
    (tmp_path / "examples").mkdir()
    (tmp_path / "examples" / "module.py").write_text(
        "import subprocess\n"
        "bare = eval(text)  # noqa: S307\n"
        "empty = eval(text)  # noqa: S307 -\n"
        "mixed = subprocess.run(args)  # noqa: E501, S603\n"
        "word = eval(text)  # noqa: S307 - ok\n"
        "fine = eval(text)  # noqa: S307 - the text is our own constant\n"
        "also = eval(text)  # noqa: S307: parsed from our own catalog\n"
        "style = [x for x in y]  # noqa: C416\n",
        encoding="utf-8",
    )
    offenders = unjustified_security_suppressions(tmp_path, ("examples",))
    assert [o.line for o in offenders] == [2, 3, 4, 5]
    assert offenders[0] == Suppression("examples/module.py", 2, "bare = eval(text)  # noqa: S307")


# --8<-- [start:ruff-security]
def test_ruff_security_rules_pass_on_examples_and_scripts() -> None:
    result = subprocess.run(
        [str(RUFF), "check", "--select", "S", "--no-cache", *CHECKED],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


# --8<-- [end:ruff-security]


def test_ruff_security_rules_flag_an_unsuppressed_eval(tmp_path: Path) -> None:
    module = tmp_path / "module.py"
    module.write_text('eval(input("? "))\n', encoding="utf-8")
    result = subprocess.run(
        [str(RUFF), "check", "--select", "S", "--no-cache", "--isolated", str(module)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 1
    assert "S307" in result.stdout
