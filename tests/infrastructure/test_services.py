"""The service table agrees with ``storefront.topology``: every queue has one consumer."""

from __future__ import annotations

import pytest
from infrastructure.runtime import load_topology
from infrastructure.services import SERVICES, api_services, database_users, service
from infrastructure.settings import settings_for


def test_the_service_table_refers_to_topology_queues_and_unique_names() -> None:
    topology = load_topology(settings_for("prod", region="eu-west-1"))
    names = [s.name for s in SERVICES]
    assert len(names) == len(set(names))
    consumed = [key for s in SERVICES for key in s.consumes]
    assert len(consumed) == len(set(consumed)), "a queue has one consumer"
    consumer_queues = {q.key for q in topology.queues if q.dead_letter_queue is not None}
    assert set(consumed) == consumer_queues
    sources = {s.event_source for s in SERVICES if s.event_source}
    assert sources == {"storefront.orders", "storefront.fulfillment"}
    assert service("notifications").publishes_notifications
    with pytest.raises(KeyError):
        service("nope")


def test_api_services_have_two_scopes_and_a_path_each() -> None:
    for entry in api_services():
        assert entry.path == f"/{entry.name}"
        assert entry.scopes == (f"{entry.name}.read", f"{entry.name}.write")
    assert len(set(database_users())) == len(database_users())
