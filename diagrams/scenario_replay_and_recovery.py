"""Scenario "Replay and recovery": the analytics store is lost and rebuilt, in numbered steps.

The step numbers on the edges match the numbered walk on docs/scenarios/replay-and-recovery.md.
"""

from sitebuild.diagramkit import Drawing, box, cluster, flow, tech

TITLE = "Scenario: replay and recovery"
ALT = (
    "Numbered steps of a rebuild: 1 the EventBridge bus archives every storefront event as it "
    "passes, for 90 days; 2 the DocumentDB event store is lost; 3 an operator runs the recovery "
    "job, which forgets the analytics consumer's idempotency records in PostgreSQL, starts a "
    "replay of the archive restricted to the analytics rule and polls DescribeReplay until it "
    "completes; 4 the replayed events reach the analytics queue only, not the fulfillment or "
    "notifications queues; 5 the analytics worker appends each event to the event store, "
    "idempotently on the event id; 6 the staff dashboard answers the same totals as before; "
    "7 the alternative: the recovery job appends the published outbox rows from PostgreSQL "
    "straight to the event store."
)


def draw() -> Drawing:
    """Draw the scenario."""
    with Drawing(TITLE, direction="LR") as drawing:
        operator = box("operator (runbook)")
        staff = box("staff (dashboard)")
        incident = box("incident")
        with cluster("AWS Region"):
            with cluster("ECS services and jobs", tint="#E8F5E9"):
                producers = tech("nestjs", "orders, fulfillment", also=["typeorm"])
                recovery = tech("nestjs", "recovery job", also=["typeorm"])
                analytics = tech("nestjs", "analytics", also=["typeorm"])
            with cluster("EventBridge"):
                bus = tech("eventbridge", "custom bus")
                archive = tech("eventbridge", "archive (90 days)")
            with cluster("SQS"):
                analytics_q = tech("sns-sqs", "analytics queue")
                other_qs = tech("sns-sqs", "other consumer queues")
            with cluster("Data", tint="#FFF3E0"):
                database = tech("rds", "PostgreSQL", also=["postgresql"])
                store = tech("documentdb", "event store")

        producers >> flow("event", "live: relay PutEvents") >> bus
        bus >> flow("event", "1 archive every event") >> archive
        incident >> flow("control", "2 the store is lost") >> store
        operator >> flow("control", "3 start the rebuild") >> recovery
        recovery >> flow("request", "3 forget analytics records") >> database
        recovery >> flow("control", "3 StartReplay, poll DescribeReplay") >> archive
        archive >> flow("event", "3 replay the window to the bus") >> bus
        bus >> flow("event", "4 FilterArns: analytics rule only") >> analytics_q
        bus >> flow("event", "live only, not replayed") >> other_qs
        analytics >> flow("event", "4 long poll") >> analytics_q
        analytics >> flow("request", "5 idempotency record") >> database
        analytics >> flow("request", "5 append, idempotent on the event id") >> store
        staff >> flow("request", "6 the same totals") >> analytics
        recovery >> flow("request", "7 alternative: read the outbox") >> database
        recovery >> flow("request", "7 append them") >> store
    return drawing
