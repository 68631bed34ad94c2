"""Security layers: from Cloudflare to the database, each layer assuming the one before can fail."""

from sitebuild.diagramkit import Drawing, box, cluster, flow, tech

TITLE = "Security layers: defence in depth"
ALT = (
    "Security layers in order: Cloudflare at the edge with its WAF and DDoS protection; the origin "
    "lock (mutual TLS with Authenticated Origin Pulls and a secret header) so that only Cloudflare "
    "reaches the API; AWS WAF and Shield on the API Gateway stage; the Cognito authorizer; the VPC "
    "with private and isolated subnets and security groups that name their callers; services that "
    "verify the token again; data stores reachable only from the services' security groups."
)


def draw() -> Drawing:
    """Draw the security layers."""
    with Drawing(TITLE, direction="TB") as drawing:
        client = tech("client")
        with cluster("Layer 1: edge"):
            cloudflare = tech("cloudflare", "Cloudflare WAF, DDoS, bot rules")
        lock = box("origin lock: mTLS + secret header")
        with cluster("Layer 2: AWS edge security"):
            waf = tech("waf-shield", "AWS WAF + Shield")
        with cluster("Layer 3: API authentication"):
            gateway = tech("api-gateway")
            cognito = tech("cognito", "Cognito authorizer")
        with cluster("Layer 4: network (VPC)", tint="#E8F5E9"):
            with cluster("private subnets: SG admits the VPC link only", tint="#FFFFFF"):
                alb = tech("alb", "Internal ALB")
            with cluster("private subnets: SG admits the ALB only", tint="#FFFFFF"):
                service = tech(
                    "nestjs", "service verifies JWT + role", also=["ecs-fargate", "typeorm"]
                )
            with cluster("isolated subnets: SG admits services only", tint="#FFFFFF"):
                database = tech("postgresql", "PostgreSQL (TLS, KMS)", also=["rds"])

        client >> flow("request", "HTTPS") >> cloudflare
        cloudflare >> flow("request", "presents client cert") >> lock
        lock >> flow("request", "only Cloudflare passes") >> gateway
        waf >> flow("control", "inspects") >> gateway
        gateway >> flow("request", "token check") >> cognito
        client >> flow("request", "sign-in, tokens") >> cognito
        service >> flow("request", "JWKS (cached)") >> cognito
        gateway >> flow("request", "VPC link") >> alb
        alb >> flow("request", "HTTP") >> service
        service >> flow("request", "least-privilege DB user") >> database
    return drawing
