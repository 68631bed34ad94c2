"""Render every diagram in diagrams/ and report what was rendered and how long it took.

    .venv/bin/python scripts/render_diagrams.py            # into .cache/diagrams, as the build
    .venv/bin/python scripts/render_diagrams.py --cold     # empty the cache first
    .venv/bin/python scripts/render_diagrams.py --readme   # also rewrite diagrams/overview.png

The docs build renders the same way on every run (see sitebuild.hooks); this script is for
timing renders and for refreshing the committed README image, which a test keeps current.
"""

from __future__ import annotations

import argparse
import shutil
import time
from pathlib import Path

from sitebuild.rendering import REPO_ROOT, load_module, render_all

README_IMAGE = REPO_ROOT / "diagrams" / "overview.png"


def readme_image() -> bytes:
    """The PNG of the overview diagram that the README shows."""
    from sitebuild.diagramkit import render_png

    return render_png(load_module(REPO_ROOT / "diagrams" / "overview.py").draw())


def main() -> None:
    """Render, then print one line per diagram and the total time."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", type=Path, default=REPO_ROOT / ".cache" / "diagrams")
    parser.add_argument("--cold", action="store_true", help="empty the output directory first")
    parser.add_argument("--readme", action="store_true", help="rewrite diagrams/overview.png")
    args = parser.parse_args()
    if args.cold:
        shutil.rmtree(args.out, ignore_errors=True)
    start = time.perf_counter()
    results = render_all(args.out)
    elapsed = time.perf_counter() - start
    for result in results:
        state = "rendered" if result.rendered else "current "
        print(f"{state}  {result.svg.stat().st_size / 1024:7.1f} KiB  {result.name}")
    rendered = sum(r.rendered for r in results)
    print(f"{rendered} rendered, {len(results) - rendered} current, in {elapsed:.2f} s")
    if args.readme:
        README_IMAGE.write_bytes(readme_image())
        print(f"wrote {README_IMAGE.relative_to(REPO_ROOT)}")


if __name__ == "__main__":
    main()
