"""Scenario "Abuse and attack": where each kind of attack is stopped, in numbered layers.

The step numbers on the edges match the numbered walk on docs/scenarios/abuse-and-attack.md.
"""

from sitebuild.diagramkit import Drawing, cluster, flow, tech

TITLE = "Scenario: abuse and attack"
ALT = (
    "Numbered layers an attack meets: 1 Cloudflare absorbs floods and applies its WAF and rate "
    "limiting rules before forwarding to the origin; 2 AWS WAF inspects each request at API "
    "Gateway and admits only Cloudflare's address ranges; 3 API Gateway's Cognito authorizer "
    "rejects missing or invalid tokens and its throttling rejects bursts; 4 the request reaches "
    "the service through the internal ALB; 5 the service counts the client's requests in Redis "
    "and answers 429 with Retry-After above the limit; 6 it verifies the token itself with the "
    "pool's cached keys (401) and the caller's role (403); 7 it validates the body (422 or 400) "
    "before anything is written to PostgreSQL."
)


def draw() -> Drawing:
    """Draw the scenario."""
    with Drawing(TITLE, direction="LR") as drawing:
        attacker = tech("client", "attacker or careless client")
        cloudflare = tech("cloudflare", "Cloudflare (DDoS, WAF, rate limiting)")
        with cluster("AWS Region"):
            waf = tech("waf-shield", "AWS WAF (IP set, managed rules)")
            gateway = tech("api-gateway", "API Gateway (authorizer, throttling)")
            cognito = tech("cognito", "Cognito user pool")
            alb = tech("alb", "Internal ALB")
            service = tech("nestjs", "orders service", also=["ecs-fargate", "typeorm"])
            redis = tech("redis", "Redis (rate limiter)")
            database = tech("rds", "PostgreSQL", also=["postgresql"])

        attacker >> flow("request", "1 flood, probes, forged tokens") >> cloudflare
        cloudflare >> flow("request", "2 what passed the edge") >> gateway
        waf >> flow("control", "2 inspects, origin lock") >> gateway
        gateway >> flow("request", "3 authorizer: verify JWT") >> cognito
        gateway >> flow("request", "4 VPC link") >> alb
        alb >> flow("request", "4") >> service
        service >> flow("request", "5 sliding window per client") >> redis
        service >> flow("request", "6 JWKS (cached)") >> cognito
        service >> flow("request", "7 only valid orders") >> database
    return drawing
