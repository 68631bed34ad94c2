"""The tables' constraints hold in the database itself, not only in application code."""

from __future__ import annotations

import uuid

import pytest
from sqlalchemy import Engine, exc, select
from sqlalchemy.orm import Session
from sqlalchemy.orm.exc import StaleDataError
from storefront.db.engine import make_session_factory
from storefront.db.models import Order, OrderLine, ProcessedMessage, Product


def test_stock_can_never_go_below_zero(engine: Engine) -> None:
    factory = make_session_factory(engine)
    with factory.begin() as session:
        session.add(Product(sku="MUG", name="Mug", price_minor=1299, stock=1))

    with factory() as session:
        product = session.get_one(Product, "MUG")
        product.stock -= 2
        with pytest.raises(exc.IntegrityError, match="ck_products_stock_not_negative"):
            session.commit()

    with Session(engine) as session:
        assert session.get_one(Product, "MUG").stock == 1


def test_a_concurrent_update_of_the_same_product_is_detected_by_its_version(engine: Engine) -> None:
    factory = make_session_factory(engine)
    with factory.begin() as session:
        session.add(Product(sku="CUP", name="Cup", price_minor=500, stock=5))

    first = factory()
    second = factory()
    try:
        a = first.get_one(Product, "CUP")
        b = second.get_one(Product, "CUP")
        a.stock -= 1
        first.commit()
        b.stock -= 1
        with pytest.raises(StaleDataError):
            second.commit()
    finally:
        first.close()
        second.close()

    with Session(engine) as session:
        product = session.get_one(Product, "CUP")
        assert (product.stock, product.version) == (4, 2)


def test_an_order_and_its_lines_are_stored_and_deleted_together(engine: Engine) -> None:
    factory = make_session_factory(engine)
    order_id = uuid.uuid4()
    with factory.begin() as session:
        session.add(Product(sku="TEA", name="Tea", price_minor=350, stock=10))
        session.flush()
        session.add(
            Order(
                id=order_id,
                customer="sub-123",
                total_minor=700,
                lines=[OrderLine(line_no=1, sku="TEA", quantity=2, unit_price_minor=350)],
            )
        )

    with factory.begin() as session:
        order = session.get_one(Order, order_id)
        assert order.status == "pending"
        assert [(line.sku, line.quantity) for line in order.lines] == [("TEA", 2)]
        session.delete(order)

    with Session(engine) as session:
        assert session.scalars(select(OrderLine)).all() == []


def test_an_unknown_order_status_is_rejected(engine: Engine) -> None:
    factory = make_session_factory(engine)
    with factory() as session:
        session.add(Order(customer="sub-1", status="lost", total_minor=0))
        with pytest.raises(exc.IntegrityError, match="ck_orders_status_known"):
            session.commit()


def test_a_message_is_recorded_once_per_consumer(engine: Engine) -> None:
    factory = make_session_factory(engine)
    with factory.begin() as session:
        session.add(ProcessedMessage(consumer="fulfillment", message_id="evt-1"))
        session.add(ProcessedMessage(consumer="analytics", message_id="evt-1"))

    with factory() as session:
        session.add(ProcessedMessage(consumer="fulfillment", message_id="evt-1"))
        with pytest.raises(exc.IntegrityError, match="uq_processed_messages_consumer"):
            session.commit()
