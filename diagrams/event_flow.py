"""Event flow: order events from the outbox through EventBridge rules to SQS consumers.

Shows SNS fan-out with filter policies, the dead-letter queues, the archive and replay, and the
DocumentDB event store. Queue and rule names follow ``storefront.topology``.
"""

from sitebuild.diagramkit import Drawing, box, cluster, flow, tech

TITLE = "Event flow: outbox, EventBridge, SQS, SNS fan-out and the event store"
ALT = (
    "The orders service writes the order and an outbox row to PostgreSQL in one transaction; its "
    "relay publishes the event to an EventBridge custom bus. Rules route order.placed to the "
    "fulfillment queue, every storefront event to the analytics queue, and order.fulfilled and "
    "order.rejected to the notifications queue; each target and queue has a dead-letter queue, and "
    "the archive keeps events for replay. The fulfillment worker publishes its outcome through its "
    "own outbox and relay. The notifications worker publishes to an SNS topic that fans out to "
    "email, SMS and webhook queues by filter policy, drained by the notification sender. The "
    "event-store worker appends every event to DocumentDB."
)


def draw() -> Drawing:
    """Draw the event flow."""
    with Drawing(TITLE) as drawing:
        with cluster("orders service"):
            orders = tech("nestjs", "orders + relay (NestJS)", also=["typeorm"])
            outbox = tech("postgresql", "orders + outbox (PostgreSQL)")
        with cluster("EventBridge"):
            bus = tech("eventbridge", "custom bus")
            archive = box("archive (replay)")
        with cluster("SQS, one queue per consumer"):
            fulfillment_q = tech("sns-sqs", "fulfillment queue")
            analytics_q = tech("sns-sqs", "analytics queue")
            notifications_q = tech("sns-sqs", "notifications queue")
            dlq = box("dead-letter queues")
        with cluster("Notifications fan-out"):
            topic = tech("sns-sqs", "notifications topic", icon="sns")
            email_q = tech("sns-sqs", "email queue")
            sms_q = tech("sns-sqs", "SMS queue")
            webhook_q = tech("sns-sqs", "webhook queue")
        fulfillment = tech("nestjs", "fulfillment worker + relay", also=["typeorm"])
        notifier = tech("nestjs", "notifications worker")
        sender = tech("nestjs", "notification sender")
        event_store = tech("nestjs", "event-store worker")
        store = tech("documentdb", "event store")

        orders >> flow("request", "one transaction") >> outbox
        orders >> flow("event", "relay: PutEvents") >> bus
        bus >> flow("event", "archive") >> archive
        bus >> flow("event", "rule: order.placed") >> fulfillment_q
        bus >> flow("event", "rule: every storefront event") >> analytics_q
        bus >> flow("event", "rule: order.fulfilled, order.rejected") >> notifications_q
        for queue in (fulfillment_q, analytics_q, notifications_q):
            queue >> flow("event", "after maxReceiveCount") >> dlq
        fulfillment >> flow("event", "long poll") >> fulfillment_q
        fulfillment >> flow("event", "outcome: PutEvents") >> bus
        event_store >> flow("event", "long poll") >> analytics_q
        event_store >> flow("request", "append") >> store
        notifier >> flow("event", "long poll") >> notifications_q
        notifier >> flow("event", "publish, channel attribute") >> topic
        topic >> flow("event", "filter: channel=email") >> email_q
        topic >> flow("event", "filter: channel=sms") >> sms_q
        topic >> flow("event", "filter: channel=webhook") >> webhook_q
        for queue in (email_q, sms_q, webhook_q):
            sender >> flow("event", "long poll") >> queue
    return drawing
