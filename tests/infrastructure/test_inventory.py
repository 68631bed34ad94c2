"""The inventory counts resources by type and lists logical ids, stably."""

from __future__ import annotations

import json

from infrastructure.inventory import inventory, main, render


def test_an_inventory_counts_types_and_sorts_logical_ids() -> None:
    template = {
        "Resources": {
            "B": {"Type": "AWS::SQS::Queue"},
            "A": {"Type": "AWS::SQS::Queue"},
            "C": {"Type": "AWS::SNS::Topic"},
        }
    }
    found = inventory(template)
    assert found == {
        "resource_counts": {"AWS::SNS::Topic": 1, "AWS::SQS::Queue": 2},
        "logical_ids": ["A", "B", "C"],
    }
    assert json.loads(render(found)) == found
    assert render(found).endswith("}\n")


def test_the_refresh_command_needs_one_folder() -> None:
    assert main([]) == 2
