"""Scenario "A dependency fails": what each failure does and what contains it, in numbered steps.

The step numbers on the edges match the numbered walk on docs/scenarios/a-dependency-fails.md.
"""

from sitebuild.diagramkit import Drawing, box, cluster, flow, tech

TITLE = "Scenario: a dependency fails"
ALT = (
    "Numbered failures: 1 Redis is down, so the catalog service bypasses the cache and reads "
    "PostgreSQL; 2 PostgreSQL is lost in the middle of an order's transaction, so the orders "
    "service rolls back and answers 503 with Retry-After, and the retry succeeds; 3 the "
    "fulfillment worker crashes mid-message, the message reappears in its SQS queue and the "
    "idempotency record in PostgreSQL makes it apply once; 4 a poison event fails "
    "maxReceiveCount times and SQS moves it to the dead-letter queue, where an alarm watches "
    "the depth; 5 after the fix the dead-letter queue is redriven to its source queue."
)


def draw() -> Drawing:
    """Draw the scenario."""
    with Drawing(TITLE, direction="LR") as drawing:
        with cluster("ECS services", tint="#E8F5E9"):
            catalog = tech("nestjs", "catalog", also=["ecs-fargate", "typeorm"])
            orders = tech("nestjs", "orders (+ outbox relay)", also=["ecs-fargate", "typeorm"])
            fulfillment = tech("nestjs", "fulfillment worker", also=["typeorm"])
        with cluster("Data", tint="#FFF3E0"):
            redis = tech("redis", "Redis (down)")
            database = tech("rds", "PostgreSQL", also=["postgresql"])
        bus = tech("eventbridge", "custom bus")
        with cluster("SQS"):
            queue = tech("sns-sqs", "fulfillment queue")
            dlq = tech("sns-sqs", "fulfillment DLQ")
        alarm = box("DLQ depth alarm")

        catalog >> flow("request", "1 error: bypass the cache") >> redis
        catalog >> flow("request", "1 read from PostgreSQL") >> database
        orders >> flow("request", "2 lost mid-transaction: rollback, 503") >> database
        orders >> flow("event", "relay: PutEvents") >> bus
        bus >> flow("event", "rule: order.placed") >> queue
        fulfillment >> flow("event", "3 crash: redelivered") >> queue
        fulfillment >> flow("request", "3 idempotency record: applied once") >> database
        queue >> flow("event", "4 after maxReceiveCount") >> dlq
        dlq >> flow("telemetry", "4 depth > 0") >> alarm
        dlq >> flow("event", "5 redrive after the fix") >> queue
    return drawing
