"""Network and deployment: the VPC across Availability Zones and its subnet tiers.

Shows the VPC link, the internal ALB, ECS services with their scaling signals and the VPC endpoints.
"""

from sitebuild.diagramkit import Drawing, box, cluster, flow, tech

TITLE = "Network and deployment"
ALT = (
    "One VPC across three Availability Zones. API Gateway reaches the private subnets through a "
    "VPC link to the internal ALB, which targets ECS Fargate services (APIs scaled on CPU and "
    "requests, workers on queue depth). Services reach AWS APIs through VPC endpoints. The data "
    "stores sit in isolated subnets with no route to the internet. Route 53 private hosted zones "
    "name internal endpoints."
)


def draw() -> Drawing:
    """Draw the network."""
    with Drawing(TITLE, direction="TB") as drawing:
        cloudflare = tech("cloudflare")
        origin_dns = tech("route53", "Route 53 origin subdomain")
        gateway = tech("api-gateway")
        dns = tech("route53", "Route 53 private zone")
        with cluster("VPC (three Availability Zones)"):
            with cluster("private subnets", tint="#E8F5E9"):
                vpc_link = box("VPC link ENIs")
                alb = tech("alb", "Internal ALB")
                with cluster("ECS cluster (Fargate)", tint="#FFFFFF"):
                    apis = tech(
                        "ecs-fargate",
                        "API services: scale on CPU, requests",
                        also=["nestjs", "typeorm"],
                    )
                    runtime = tech("nestjs", "NestJS in each task")
                    workers = tech(
                        "ecs-fargate", "workers: scale on queue depth", also=["nestjs", "typeorm"]
                    )
                endpoints = box(
                    "VPC endpoints: ECR, Logs, Secrets Manager, SSM, KMS, STS,\n"
                    "SQS, SNS, EventBridge, X-Ray; S3 gateway"
                )
            with cluster("isolated subnets", tint="#FFF3E0"):
                data = tech("rds", "RDS, DocumentDB, ElastiCache", also=["documentdb", "redis"])
            with cluster("public subnets", tint="#E3F2FD"):
                nat = box("NAT gateways (one per zone in production)")

        cloudflare >> flow("control", "resolves origin") >> origin_dns
        origin_dns >> flow("control", "alias") >> gateway
        gateway >> flow("request", "private integration") >> vpc_link
        vpc_link >> flow("request", "listener") >> alb
        alb >> flow("request", "ip targets") >> apis
        apis >> flow("control", "runs") >> runtime
        dns >> flow("control", "alias") >> alb
        apis >> flow("request", "SQL, RESP, MongoDB API") >> data
        workers >> flow("request", "SQL, MongoDB API") >> data
        apis >> flow("request", "AWS APIs") >> endpoints
        workers >> flow("request", "AWS APIs") >> endpoints
        workers >> flow("control", "egress: webhooks, public endpoints") >> nat
    return drawing
