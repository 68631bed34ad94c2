"""The resource inventory of each synthesized template, committed as a review snapshot.

An inventory is the number of resources of each CloudFormation type and the sorted logical ids,
per stack. ``tests/infrastructure/test_stacks.py`` compares the production app's inventory with
the files in ``tests/infrastructure/snapshots/``, so that a change that adds, removes or
replaces a resource (a new logical id) shows up in review as a diff of those files.

Refresh the snapshots after an intended change, and commit them with it::

    .venv/bin/python -m infrastructure.inventory tests/infrastructure/snapshots
"""

from __future__ import annotations

import json
import sys
from collections import Counter
from pathlib import Path
from typing import Any

SNAPSHOT_ENVIRONMENT = "prod"
SNAPSHOT_REGION = "eu-west-1"
SNAPSHOT_ACCOUNT = "111111111111"


def inventory(template: dict[str, Any]) -> dict[str, Any]:
    """Resource counts by type and the logical ids of one template."""
    resources = template.get("Resources", {})
    return {
        "resource_counts": dict(sorted(Counter(r["Type"] for r in resources.values()).items())),
        "logical_ids": sorted(resources),
    }


def render(inventory_: dict[str, Any]) -> str:
    """An inventory as the committed file's text (stable, one id per line)."""
    return json.dumps(inventory_, indent=2, sort_keys=True) + "\n"


def cdk_context() -> dict[str, Any]:
    """The context of ``cdk.json``, so that in-process apps match ``cdk synth``."""
    return json.loads((Path(__file__).with_name("cdk.json")).read_text())["context"]


def synthesize(outdir: str | None = None) -> dict[str, dict[str, Any]]:
    """Synthesize the snapshot environment; the templates by stack name."""
    import aws_cdk as cdk

    from infrastructure.settings import settings_for
    from infrastructure.stacks import build

    app = cdk.App(outdir=outdir, context=cdk_context())
    build(
        app,
        settings_for(SNAPSHOT_ENVIRONMENT, region=SNAPSHOT_REGION, account=SNAPSHOT_ACCOUNT),
    )
    assembly = app.synth()
    return {stack.stack_name: stack.template for stack in assembly.stacks}


def main(argv: list[str] | None = None) -> int:
    """Write one ``<stack name>.json`` inventory per stack into the given folder."""
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1:
        print("usage: python -m infrastructure.inventory <snapshot folder>", file=sys.stderr)
        return 2
    folder = Path(args[0])
    folder.mkdir(parents=True, exist_ok=True)
    for old in folder.glob("*.json"):
        old.unlink()
    for name, template in synthesize().items():
        (folder / f"{name}.json").write_text(render(inventory(template)))
        print(f"wrote {folder / f'{name}.json'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
