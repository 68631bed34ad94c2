"""Fixtures for the event tests: a migrated database, and a bus routed to SQS in moto."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest
from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker
from storefront import aws
from storefront.db import migrations
from storefront.db.engine import PoolSettings, make_engine, make_session_factory

from tests.storefront.events.eventbus import BUS, SOURCE, Bus


@pytest.fixture
def engine(postgres_dsn: str) -> Iterator[Engine]:
    migrations.upgrade(postgres_dsn)
    engine = make_engine(postgres_dsn, PoolSettings(pool_size=4, max_overflow=4))
    yield engine
    engine.dispose()


@pytest.fixture
def sessions(engine: Engine) -> sessionmaker[Session]:
    return make_session_factory(engine)


@pytest.fixture
def bus(aws_environment: str) -> Bus:
    events = aws.client("events")
    sqs = aws.client("sqs")
    events.create_event_bus(Name=BUS)
    queue_url = sqs.create_queue(QueueName="fulfillment-events")["QueueUrl"]
    queue_arn = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])[
        "Attributes"
    ]["QueueArn"]
    events.put_rule(
        Name="orders-to-fulfillment",
        EventBusName=BUS,
        EventPattern=json.dumps({"source": [SOURCE]}),
    )
    events.put_targets(
        Rule="orders-to-fulfillment",
        EventBusName=BUS,
        Targets=[{"Id": "fulfillment", "Arn": queue_arn}],
    )
    return Bus(BUS, queue_url, events, sqs)
