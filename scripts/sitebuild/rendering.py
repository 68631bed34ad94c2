"""Render the diagrams in ``diagrams/`` to self-contained SVG, in parallel, skipping unchanged ones.

Each module in ``diagrams/`` defines ``TITLE``, ``ALT`` and ``draw()``; a module with
``PER_TECHNOLOGY = True`` is rendered once per catalog technology (``draw(technology_id)``, output
``technologies/<id>.svg``, alt text from its ``alt_text(technology_id)``).

An output is re-rendered only when its fingerprint changes: the module's source, the shared
drawing code (:mod:`sitebuild.diagramkit`), the catalog, the ``diagrams`` library's version and
Graphviz's version. The MkDocs hook calls :func:`render_all` on every build, so ``mkdocs serve``
and ``mkdocs build`` always show current diagrams.
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass
from functools import cache
from importlib.metadata import version
from pathlib import Path
from types import ModuleType

REPO_ROOT = Path(__file__).resolve().parents[2]
DIAGRAMS_DIR = REPO_ROOT / "diagrams"
CATALOG_FILE = REPO_ROOT / "docs" / "data" / "stack.yaml"
KIT_FILE = Path(__file__).resolve().parent / "diagramkit.py"


@dataclass(frozen=True)
class Job:
    """One output to render: a module, and the technology for per-technology modules."""

    name: str
    module_path: str
    technology: str | None = None


@dataclass(frozen=True)
class Rendered:
    """One rendered diagram.

    Attributes:
        name: Its name, the path of the output below the output directory without ``.svg``.
        svg: The SVG file.
        title: The title drawn on it.
        alt: Its alt text.
        rendered: False when the existing output was current and nothing was rendered.
    """

    name: str
    svg: Path
    title: str
    alt: str
    rendered: bool


def load_module(path: Path) -> ModuleType:
    """Import a diagram module by file path (``diagrams/`` is not a package: the library is)."""
    name = f"architecture_diagrams.{path.stem}"
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot import {path}")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    for attribute in ("TITLE", "ALT", "draw"):
        if not hasattr(module, attribute):
            raise AttributeError(f"{path.relative_to(REPO_ROOT)} defines no {attribute}")
    return module


def diagram_modules() -> list[Path]:
    """The diagram modules, in name order."""
    return sorted(p for p in DIAGRAMS_DIR.glob("*.py") if not p.name.startswith("_"))


def jobs() -> list[Job]:
    """Every output the diagram modules produce."""
    from sitebuild.diagramkit import CATALOG

    result: list[Job] = []
    for path in diagram_modules():
        module = load_module(path)
        if getattr(module, "PER_TECHNOLOGY", False):
            result += [Job(f"technologies/{t.id}", str(path), t.id) for t in CATALOG.technologies]
        else:
            result.append(Job(path.stem, str(path)))
    return result


@cache
def _toolchain() -> bytes:
    dot = subprocess.run(["dot", "-V"], capture_output=True, check=True)
    return f"diagrams {version('diagrams')}; ".encode() + dot.stderr + dot.stdout


def fingerprint(job: Job) -> str:
    """Everything the output of ``job`` depends on, hashed."""
    from sitebuild.diagramkit import fingerprint as combine

    return combine(
        Path(job.module_path).read_bytes(),
        KIT_FILE.read_bytes(),
        CATALOG_FILE.read_bytes(),
        _toolchain(),
        (job.technology or "").encode(),
    )


def draw(job: Job):
    """Build the drawing of one job (no rendering)."""
    module = load_module(Path(job.module_path))
    return module.draw(job.technology) if job.technology else module.draw()


def describe(job: Job) -> tuple[str, str]:
    """The title and alt text of one job's output."""
    module = load_module(Path(job.module_path))
    if job.technology:
        from sitebuild.diagramkit import CATALOG

        return module.TITLE.format(name=CATALOG.name_of(job.technology)), module.alt_text(
            job.technology
        )
    return module.TITLE, module.ALT


def _render_one(job: Job, out_dir: str) -> Rendered:
    from sitebuild.diagramkit import render_svg

    svg_path = Path(out_dir) / f"{job.name}.svg"
    meta_path = svg_path.with_suffix(".json")
    wanted = fingerprint(job)
    title, alt = describe(job)
    if _is_current(job, Path(out_dir), wanted):
        return Rendered(job.name, svg_path, title, alt, rendered=False)
    svg_path.parent.mkdir(parents=True, exist_ok=True)
    svg_path.write_bytes(render_svg(draw(job)))
    meta_path.write_text(json.dumps({"fingerprint": wanted, "title": title, "alt": alt}))
    return Rendered(job.name, svg_path, title, alt, rendered=True)


def render_all(out_dir: Path, *, workers: int | None = None) -> list[Rendered]:
    """Render every diagram into ``out_dir``, in parallel, skipping the current ones.

    Args:
        out_dir: Where the SVGs (and their fingerprint files) go.
        workers: Processes to use; defaults to the number of CPUs.

    Returns:
        One entry per diagram, in job order.
    """
    todo = jobs()
    stale = [job for job in todo if not _is_current(job, out_dir)]
    results: dict[str, Rendered] = {}
    if len(stale) > 1 and (workers or os.cpu_count() or 1) > 1:
        with ProcessPoolExecutor(max_workers=workers or os.cpu_count()) as pool:
            futures = [pool.submit(_render_one, job, str(out_dir)) for job in stale]
            for future in futures:
                rendered = future.result()
                results[rendered.name] = rendered
    else:
        for job in stale:
            results[job.name] = _render_one(job, str(out_dir))
    return [results.get(job.name) or _render_one(job, str(out_dir)) for job in todo]


def _is_current(job: Job, out_dir: Path, wanted: str | None = None) -> bool:
    meta = out_dir / f"{job.name}.json"
    return (
        (out_dir / f"{job.name}.svg").exists()
        and meta.exists()
        and json.loads(meta.read_text()).get("fingerprint") == (wanted or fingerprint(job))
    )


def summary(results: list[Rendered]) -> dict[str, object]:
    """A JSON-friendly summary (for logs and scripts)."""
    return {
        "rendered": [r.name for r in results if r.rendered],
        "current": [r.name for r in results if not r.rendered],
        "outputs": [asdict(r) | {"svg": str(r.svg)} for r in results],
    }
