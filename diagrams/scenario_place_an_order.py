"""Scenario "Place an order": one order through every service, in numbered steps.

The step numbers on the edges match the numbered walk on docs/scenarios/place-an-order.md.
"""

from sitebuild.diagramkit import Drawing, cluster, flow, tech

TITLE = "Scenario: place an order"
ALT = (
    "Numbered steps of one order: 1 the customer signs up and signs in with Cognito; 2 the "
    "browser reads a product through Cloudflare, API Gateway and the internal ALB to the catalog "
    "service; 3 the catalog reads Redis and, on a miss, PostgreSQL; 4 the order goes the same way "
    "to the orders service, which verifies the token with the pool's cached keys and writes the "
    "order and an outbox row in one PostgreSQL transaction; 5 the outbox relay publishes "
    "order.placed to EventBridge; 6 rules deliver it to the fulfillment and analytics queues; "
    "7 fulfillment reserves stock and publishes order.fulfilled through its outbox; 8 "
    "notifications stores the receipt in S3 and publishes to the SNS topic, whose filter policy "
    "delivers it to the email queue; 9 analytics appends every event to the DocumentDB event "
    "store, which the staff dashboard aggregates; 10 every hop reports its span to OpenTelemetry "
    "under one trace id."
)


def draw() -> Drawing:
    """Draw the scenario."""
    with Drawing(TITLE, direction="LR") as drawing:
        browser = tech("client", "customer's browser")
        cloudflare = tech("cloudflare")
        with cluster("AWS Region"):
            cognito = tech("cognito", "Cognito user pool")
            gateway = tech("api-gateway", "API Gateway")
            alb = tech("alb", "Internal ALB")
            with cluster("ECS services", tint="#E8F5E9"):
                catalog = tech("nestjs", "catalog", also=["ecs-fargate", "typeorm"])
                orders = tech("nestjs", "orders (+ outbox relay)", also=["ecs-fargate", "typeorm"])
                fulfillment = tech("nestjs", "fulfillment worker", also=["typeorm"])
                notifications = tech("nestjs", "notifications worker")
                analytics = tech("nestjs", "analytics worker + dashboard")
            bus = tech("eventbridge", "custom bus")
            with cluster("SQS and SNS"):
                fulfillment_q = tech("sns-sqs", "fulfillment queue")
                analytics_q = tech("sns-sqs", "analytics queue")
                notifications_q = tech("sns-sqs", "notifications queue")
                topic = tech("sns-sqs", "notifications topic", icon="sns")
                email_q = tech("sns-sqs", "email queue")
            with cluster("Data", tint="#FFF3E0"):
                redis = tech("redis")
                database = tech("rds", "PostgreSQL (orders, stock, outbox)", also=["postgresql"])
                store = tech("documentdb", "event store")
                receipts = tech("s3", "receipts bucket (SSE-KMS)")
            otel = tech("opentelemetry", "OpenTelemetry (one trace id)")

        browser >> flow("request", "1 sign up, sign in") >> cognito
        browser >> flow("request", "2 GET product, 4 POST order") >> cloudflare
        cloudflare >> flow("request", "2 cache miss, 4 always") >> gateway
        gateway >> flow("request", "2, 4 VPC link") >> alb
        alb >> flow("request", "2") >> catalog
        alb >> flow("request", "4") >> orders
        catalog >> flow("request", "3 cache-aside") >> redis
        catalog >> flow("request", "3 on a miss") >> database
        orders >> flow("request", "4 JWKS (cached)") >> cognito
        orders >> flow("request", "4 order + outbox, one transaction") >> database
        orders >> flow("event", "5 relay: PutEvents") >> bus
        bus >> flow("event", "6 rule: order.placed") >> fulfillment_q
        bus >> flow("event", "6 rule: every event") >> analytics_q
        bus >> flow("event", "7 rule: order outcomes") >> notifications_q
        fulfillment >> flow("event", "6 long poll") >> fulfillment_q
        fulfillment >> flow("request", "7 reserve stock + outbox") >> database
        notifications >> flow("event", "7 long poll") >> notifications_q
        notifications >> flow("request", "8 put receipt") >> receipts
        notifications >> flow("event", "8 publish, channel=email") >> topic
        topic >> flow("event", "8 filter policy") >> email_q
        analytics >> flow("event", "6, 7 long poll") >> analytics_q
        analytics >> flow("request", "9 append, aggregate") >> store
        orders >> flow("telemetry", "10 spans") >> otel
        fulfillment >> flow("telemetry", "10 spans") >> otel
        notifications >> flow("telemetry", "10 spans") >> otel
        analytics >> flow("telemetry", "10 spans") >> otel
    return drawing
