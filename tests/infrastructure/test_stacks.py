"""Every stack synthesizes offline, lints clean, and matches its committed resource inventory.

Refresh the inventory snapshots after an intended change (and commit them with it)::

    .venv/bin/python -m infrastructure.inventory tests/infrastructure/snapshots
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from infrastructure.inventory import inventory, render
from infrastructure.stacks import LAYERS

from tests.infrastructure.synthesis import Synthesized

REPO_ROOT = Path(__file__).resolve().parents[2]
SNAPSHOTS = Path(__file__).with_name("snapshots")
LINT_CONFIG = REPO_ROOT / "examples" / "infrastructure" / ".cfnlintrc"


def test_one_stack_per_layer_named_after_the_environment(prod: Synthesized) -> None:
    names = [stack.stack_name for stack in prod.storefront.stacks()]
    assert names == [f"storefront-prod-{layer}" for layer in LAYERS]
    for stack in prod.storefront.stacks():
        assert stack.termination_protection is True
        assert (stack.account, stack.region) == ("111111111111", "eu-west-1")


def test_the_stacks_depend_on_each_other_in_deployment_order(prod: Synthesized) -> None:
    order = {stack.stack_name: index for index, stack in enumerate(prod.storefront.stacks())}
    for stack in prod.storefront.stacks():
        for dependency in stack.dependencies:
            assert order[dependency.stack_name] < order[stack.stack_name], (
                stack.stack_name,
                dependency.stack_name,
            )
    assert not prod.storefront.network.dependencies


def test_the_resource_inventory_matches_the_committed_snapshot(prod: Synthesized) -> None:
    expected = {path.stem for path in SNAPSHOTS.glob("*.json")}
    actual = {stack.stack_name for stack in prod.storefront.stacks()}
    assert expected == actual, "refresh: .venv/bin/python -m infrastructure.inventory " + str(
        SNAPSHOTS.relative_to(REPO_ROOT)
    )
    for layer, stack in zip(LAYERS, prod.storefront.stacks(), strict=True):
        committed = json.loads((SNAPSHOTS / f"{stack.stack_name}.json").read_text())
        current = json.loads(render(inventory(prod.templates[layer])))
        assert current == committed, (
            f"{stack.stack_name} changed: review the diff, then refresh the snapshot with "
            f".venv/bin/python -m infrastructure.inventory {SNAPSHOTS.relative_to(REPO_ROOT)}"
        )


def test_cfn_lint_finds_no_problem_in_any_template(prod: Synthesized, variant: Synthesized) -> None:
    templates = [*prod.template_files(), *variant.template_files()]
    assert len(templates) == 2 * len(LAYERS)
    result = subprocess.run(
        [
            str(Path(sys.executable).with_name("cfn-lint")),
            "--config-file",
            str(LINT_CONFIG),
            "--format",
            "parseable",
            *map(str, templates),
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    # Exit code 0: no errors and no warnings (those that remain are justified in .cfnlintrc
    # or on the one generated resource that carries them).
    assert result.returncode == 0, result.stdout + result.stderr
