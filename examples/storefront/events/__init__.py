"""Domain events: the envelope, the transactional outbox and the relay to EventBridge.

A service never publishes to EventBridge inside a request. It records the event in the
``outbox_events`` table in the same transaction as the change it describes
(:func:`storefront.events.outbox.record`); the relay (:mod:`storefront.events.relay`) publishes
committed rows afterwards. The event exists if and only if the change committed, and a failed
publish is retried instead of lost. Delivery is at least once: consumers deduplicate on the
envelope's ``id`` (:class:`storefront.db.models.ProcessedMessage`).
"""
