"""Request lifecycle: one API call from the browser to the database and back, in numbered steps.

The step numbers on the edges match the numbered steps on docs/architecture/request-lifecycle.md
(a test checks that they agree).
"""

from sitebuild.diagramkit import Drawing, cluster, flow, tech

TITLE = "Request lifecycle (north-south)"
ALT = (
    "Numbered request path: 1 the browser calls Cloudflare over HTTPS; 2 Cloudflare forwards to "
    "the API Gateway custom domain, where AWS WAF inspects the request; 3 the Cognito authorizer "
    "checks the token; 4 API Gateway forwards over the VPC link to the internal ALB; 5 the ALB "
    "picks a healthy ECS Fargate task running the NestJS service; 6 the service reads Redis or "
    "queries PostgreSQL on RDS through TypeORM."
)


def draw() -> Drawing:
    """Draw the request lifecycle."""
    with Drawing(TITLE, direction="TB") as drawing:
        browser = tech("client")
        cloudflare = tech("cloudflare")
        assets = tech("s3", "static assets bucket")
        with cluster("AWS Region"):
            waf = tech("waf-shield")
            gateway = tech("api-gateway", "API Gateway (REST, Regional)")
            cognito = tech("cognito")
            with cluster("VPC, private subnets", tint="#E8F5E9"):
                alb = tech("alb", "Internal ALB")
                service = tech("nestjs", "NestJS service", also=["ecs-fargate", "typeorm"])
            with cluster("VPC, isolated subnets", tint="#FFF3E0"):
                redis = tech("redis")
                database = tech("rds", "RDS for PostgreSQL", also=["postgresql"])

        browser >> flow("request", "1 HTTPS") >> cloudflare
        cloudflare >> flow("request", "assets on a cache miss") >> assets
        cloudflare >> flow("request", "2 HTTPS, origin lock") >> gateway
        waf >> flow("control", "2 inspects") >> gateway
        gateway >> flow("request", "3 verify JWT") >> cognito
        gateway >> flow("request", "4 VPC link") >> alb
        alb >> flow("request", "5 HTTP to task") >> service
        service >> flow("request", "6 cache-aside") >> redis
        service >> flow("request", "6 SQL over TLS") >> database
    return drawing
