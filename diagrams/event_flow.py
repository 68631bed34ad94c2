"""Event flow: order events from the outbox through EventBridge rules to SQS consumers.

Shows SNS fan-out with filter policies, the dead-letter queues, the archive and replay, and the
DocumentDB event store.
"""

from sitebuild.diagramkit import Drawing, box, cluster, flow, tech

TITLE = "Event flow: outbox, EventBridge, SQS, SNS fan-out and the event store"
ALT = (
    "The orders service writes the order and an outbox row to PostgreSQL in one transaction; a "
    "relay publishes the event to an EventBridge custom bus. Rules route OrderPlaced to the "
    "fulfillment queue and every event to the analytics queue; each queue has a dead-letter "
    "queue. The archive keeps events for replay. Notifications are published to an SNS topic "
    "that fans out to email, SMS and webhook queues by filter policy. The analytics consumer "
    "appends every event to the DocumentDB event store."
)


def draw() -> Drawing:
    """Draw the event flow."""
    with Drawing(TITLE) as drawing:
        with cluster("orders service"):
            orders = tech("nestjs", "orders (NestJS)", also=["typeorm"])
            outbox = tech("postgresql", "orders + outbox (PostgreSQL)")
        with cluster("EventBridge"):
            bus = tech("eventbridge", "custom bus")
            archive = box("archive (replay)")
        with cluster("SQS, one queue per consumer"):
            fulfillment_q = tech("sns-sqs", "fulfillment queue")
            analytics_q = tech("sns-sqs", "analytics queue")
            dlq = box("dead-letter queues")
        with cluster("Notifications"):
            topic = tech("sns-sqs", "notifications topic", icon="sns")
            email_q = tech("sns-sqs", "email queue")
            sms_q = tech("sns-sqs", "SMS queue")
            webhook_q = tech("sns-sqs", "webhook queue")
        fulfillment = tech("nestjs", "fulfillment worker")
        analytics = tech("nestjs", "analytics worker")
        store = tech("documentdb", "event store")

        orders >> flow("request", "one transaction") >> outbox
        orders >> flow("event", "relay: PutEvents") >> bus
        bus >> flow("event", "archive") >> archive
        bus >> flow("event", "rule: OrderPlaced") >> fulfillment_q
        bus >> flow("event", "rule: all events") >> analytics_q
        fulfillment_q >> flow("event", "after maxReceiveCount") >> dlq
        analytics_q >> flow("event", "after maxReceiveCount") >> dlq
        fulfillment >> flow("event", "long poll") >> fulfillment_q
        analytics >> flow("event", "long poll") >> analytics_q
        analytics >> flow("request", "append") >> store
        fulfillment >> flow("event", "publish notification") >> topic
        topic >> flow("event", "filter: channel=email") >> email_q
        topic >> flow("event", "filter: channel=sms") >> sms_q
        topic >> flow("event", "filter: channel=webhook") >> webhook_q
    return drawing
