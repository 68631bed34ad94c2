"""Benchmark the docs build: cold and warm diagram cache against a bare build of the same pages.

All builds run in one run, in a scratch directory that mirrors the repository with symbolic
links (so the diagram cache, ``.cache/diagrams``, is the scratch directory's own and the
repository's stays untouched):

* cold: ``mkdocs build`` with the hooks and an empty diagram cache (every diagram rendered);
* warm: the same build again, the cache filled (the best of ``repeats`` counts);
* bare: a copy of ``mkdocs.yml`` without the ``hooks:`` entry, so the same pages, theme,
  plugins and Markdown extensions, but no catalog rendering and no diagrams (best of
  ``repeats``). Its ``strict`` is off: without the hook, nothing checks the shortcodes.

Warm and bare builds alternate, so that a slow moment of the machine hits both alike.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from benchmarks.results import REPO_ROOT, DocsBuild, Target

NOT_MIRRORED = {".cache", ".git", ".venv", "site", "node_modules", ".pytest_cache"}
WARM_OVER_BARE_LIMIT = 1.2


def mirror(destination: Path) -> Path:
    """Link every top-level entry of the repository into ``destination``; copy ``mkdocs.yml``.

    Returns:
        The copied ``mkdocs.yml``.
    """
    for entry in REPO_ROOT.iterdir():
        if entry.name in NOT_MIRRORED or entry.name.startswith("mkdocs"):
            continue
        (destination / entry.name).symlink_to(entry)
    config = destination / "mkdocs.yml"
    config.write_text((REPO_ROOT / "mkdocs.yml").read_text(encoding="utf-8"), encoding="utf-8")
    return config


def bare_config(config: Path) -> Path:
    """A copy of ``config`` without hooks (and not strict), next to it as ``mkdocs-bare.yml``.

    Raises:
        ValueError: The configuration has no ``hooks:`` block to remove.
    """
    text = config.read_text(encoding="utf-8")
    bare, removed = re.subn(r"^hooks:\n(?:[ \t]+- .*\n)+", "", text, flags=re.MULTILINE)
    if not removed:
        raise ValueError(f"{config}: no 'hooks:' block found")
    bare = re.sub(r"^strict: true$", "strict: false", bare, flags=re.MULTILINE)
    path = config.with_name("mkdocs-bare.yml")
    path.write_text(bare, encoding="utf-8")
    return path


def timed_build(config: Path, site_dir: Path) -> float:
    """Run ``mkdocs build`` for ``config``; return the wall-clock seconds it took.

    Raises:
        RuntimeError: The build failed (its output is in the message).
    """
    mkdocs = Path(sys.executable).parent / "mkdocs"
    start = time.perf_counter()
    result = subprocess.run(
        [
            str(mkdocs),
            "build",
            "--quiet",
            "--config-file",
            str(config),
            "--site-dir",
            str(site_dir),
        ],
        cwd=config.parent,
        capture_output=True,
        text=True,
        check=False,
        env={**os.environ, "NO_MKDOCS_2_WARNING": "1"},
    )
    elapsed = time.perf_counter() - start
    if result.returncode != 0:
        raise RuntimeError(f"{config.name}: build failed:\n{result.stdout}{result.stderr}")
    return round(elapsed, 3)


def run(*, quick: bool) -> DocsBuild:
    """Measure the cold build once, then warm and bare builds alternately; evaluate the target."""
    repeats = 1 if quick else 3
    pages = sum(1 for page in (REPO_ROOT / "docs").rglob("*.md") if "includes" not in page.parts)
    with tempfile.TemporaryDirectory(prefix="bench-docs-") as name:
        scratch = Path(name)
        config = mirror(scratch)
        bare = bare_config(config)
        cold = timed_build(config, scratch / "site-cold")
        warm_runs, bare_runs = [], []
        for attempt in range(repeats):
            warm_runs.append(timed_build(config, scratch / f"site-warm-{attempt}"))
            bare_runs.append(timed_build(bare, scratch / f"site-bare-{attempt}"))
    return DocsBuild(
        pages=pages,
        cold_s=cold,
        warm_runs_s=warm_runs,
        bare_runs_s=bare_runs,
        targets=[
            Target.evaluate(
                "Warm docs build",
                "warm build within 1.2 x the bare build",
                min(warm_runs) / min(bare_runs),
                WARM_OVER_BARE_LIMIT,
                "x",
                higher=False,
            )
        ],
    )
