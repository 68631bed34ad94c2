"""Scenario "Traffic spike": what absorbs a burst at each layer, in numbered steps.

The step numbers on the edges match the numbered walk on docs/scenarios/traffic-spike.md.
"""

from sitebuild.diagramkit import Drawing, box, cluster, flow, tech

TITLE = "Scenario: a traffic spike"
ALT = (
    "Numbered layers a burst meets: 1 Cloudflare answers catalog GETs and static assets from its "
    "cache for s-maxage seconds, fetching assets from S3 only on a miss; 2 what it forwards "
    "meets the AWS WAF rate rule per client and API Gateway's stage throttle, which answers 429 "
    "above 500 requests per second; 3 the orders service's rate limiter in Redis answers one "
    "client's burst with 429 and Retry-After; 4 the catalog service answers from Redis, and on a "
    "miss the stampede lock lets one request per product read PostgreSQL; 5 each accepted order "
    "is written with its outbox event in one PostgreSQL transaction and the relay puts the event "
    "on the EventBridge bus; 6 a rule delivers it to the fulfillment queue, where the backlog "
    "waits; 7 Application Auto Scaling watches the backlog per task and starts more fulfillment "
    "tasks, which poll the same queue; 8 each task reserves stock and records the order's "
    "fulfillment once, with its idempotency record, in PostgreSQL."
)


def draw() -> Drawing:
    """Draw the scenario."""
    with Drawing(TITLE, direction="LR") as drawing:
        crowd = tech("client", "a burst of shoppers")
        cloudflare = tech("cloudflare", "Cloudflare cache")
        with cluster("AWS Region"):
            assets = tech("s3", "static assets bucket")
            waf = tech("waf-shield", "AWS WAF rate rule")
            gateway = tech("api-gateway", "API Gateway (stage throttle)")
            alb = tech("alb", "Internal ALB")
            with cluster("ECS services", tint="#E8F5E9"):
                catalog = tech("nestjs", "catalog", also=["ecs-fargate", "typeorm"])
                orders = tech("nestjs", "orders (+ outbox relay)", also=["ecs-fargate", "typeorm"])
            redis = tech("redis", "Redis (cache, rate limiter)")
            database = tech("rds", "PostgreSQL", also=["postgresql"])
            with cluster("Messaging"):
                bus = tech("eventbridge", "custom bus")
                queue = tech("sns-sqs", "fulfillment queue")
            with cluster("Workers", tint="#E8F5E9"):
                scaling = box("Application Auto Scaling")
                workers = tech(
                    "nestjs", "fulfillment tasks (1 to 10)", also=["ecs-fargate", "typeorm"]
                )

        crowd >> flow("request", "1 cached GETs answered at the edge") >> cloudflare
        cloudflare >> flow("request", "1 assets on a miss") >> assets
        cloudflare >> flow("request", "2 misses and writes") >> gateway
        waf >> flow("control", "2 rate rule per client") >> gateway
        gateway >> flow("request", "2 under the throttle") >> alb
        alb >> flow("request", "") >> catalog
        alb >> flow("request", "") >> orders
        orders >> flow("request", "3 rate limiter: 429 + Retry-After") >> redis
        catalog >> flow("request", "4 hit") >> redis
        catalog >> flow("request", "4 miss: once per product") >> database
        orders >> flow("request", "5 order + outbox event") >> database
        orders >> flow("event", "5 relay: PutEvents") >> bus
        bus >> flow("event", "6 rule: order.placed") >> queue
        queue >> flow("telemetry", "7 backlog per task") >> scaling
        scaling >> flow("control", "7 more tasks") >> workers
        workers >> flow("event", "7 poll the backlog") >> queue
        workers >> flow("request", "8 fulfilled once") >> database
    return drawing
