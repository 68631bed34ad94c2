"""Overview: all eighteen technologies, grouped by layer, along the main request and event paths.

The other diagrams each show one concern in detail; together they draw every connection in the
catalog (a test checks this).
"""

from sitebuild.diagramkit import Drawing, cluster, flow, tech

TITLE = "Stack overview: the eighteen technologies by layer"
ALT = (
    "Overview of the stack by layer. Customers reach Cloudflare at the edge, where Route 53 names "
    "the origin. Cloudflare forwards API calls to API Gateway, guarded by AWS WAF and Shield and "
    "authenticating with Cognito, and asset requests to S3. API Gateway reaches the internal ALB, "
    "which spreads requests over ECS Fargate tasks running NestJS services with TypeORM. The "
    "services use PostgreSQL on RDS, Redis on ElastiCache and the DocumentDB event store, publish "
    "events to EventBridge, which routes them to SNS and SQS, and report through OpenTelemetry "
    "and Pino."
)


def draw() -> Drawing:
    """Draw the overview."""
    with Drawing(TITLE, direction="TB") as drawing:
        client = tech("client")
        with cluster("Edge"):
            cloudflare = tech("cloudflare")
            route53 = tech("route53")
        with cluster("AWS edge security"):
            waf = tech("waf-shield")
        with cluster("API"):
            gateway = tech("api-gateway")
            cognito = tech("cognito")
        with cluster("Compute"):
            alb = tech("alb")
            fargate = tech("ecs-fargate")
            nest = tech("nestjs")
            orm = tech("typeorm")
        with cluster("Observability"):
            otel = tech("opentelemetry")
            pino = tech("pino")
        with cluster("Messaging"):
            bus = tech("eventbridge")
            queues = tech("sns-sqs")
        with cluster("Data"):
            rds = tech("rds")
            postgres = tech("postgresql")
            redis = tech("redis")
            documentdb = tech("documentdb")
            s3 = tech("s3")

        client >> flow("request", "HTTPS") >> cloudflare
        cloudflare >> flow("control", "origin DNS") >> route53
        cloudflare >> flow("request", "API calls") >> gateway
        cloudflare >> flow("request", "assets") >> s3
        waf >> flow("control", "inspects") >> gateway
        gateway >> flow("request", "authorizer") >> cognito
        gateway >> flow("request", "VPC link") >> alb
        alb >> flow("request", "targets") >> fargate
        fargate >> flow("control", "runs") >> nest
        nest >> flow("request", "in-process") >> orm
        orm >> flow("request", "SQL") >> postgres
        rds >> flow("control", "operates") >> postgres
        nest >> flow("request", "cache") >> redis
        nest >> flow("request", "append events") >> documentdb
        nest >> flow("event", "PutEvents") >> bus
        bus >> flow("event", "rules") >> queues
        nest >> flow("telemetry", "spans") >> otel
        nest >> flow("telemetry", "logs") >> pino
    return drawing
