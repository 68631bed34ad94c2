"""Data and backup: the stores across Availability Zones and where their backups go."""

from sitebuild.diagramkit import Drawing, box, cluster, flow, tech

TITLE = "Data and backup across Availability Zones"
ALT = (
    "Data tier across three Availability Zones: RDS for PostgreSQL Multi-AZ with a primary and a "
    "synchronous standby behind RDS Proxy; a DocumentDB cluster with a primary and replicas; an "
    "ElastiCache replication group with a primary and replicas. RDS snapshot exports land in an "
    "S3 backup bucket with versioning and lifecycle rules."
)


def draw() -> Drawing:
    """Draw the data tier and its backups."""
    with Drawing(TITLE, direction="TB") as drawing:
        services = tech("nestjs", "services (TypeORM, drivers)", also=["typeorm"])
        with cluster("Isolated subnets, three Availability Zones"):
            with cluster("RDS for PostgreSQL, Multi-AZ", tint="#E3F2FD"):
                proxy = box("RDS Proxy")
                primary = tech("rds", "primary (AZ a)", also=["postgresql"])
                standby = tech("rds", "standby (AZ b)", also=["postgresql"])
            with cluster("DocumentDB cluster", tint="#F3E5F5"):
                doc_primary = tech("documentdb", "primary (AZ a)")
                doc_replicas = tech("documentdb", "replicas (AZ b, c)")
            with cluster("ElastiCache replication group", tint="#FFEBEE"):
                cache_primary = tech("redis", "primary (AZ a)")
                cache_replicas = tech("redis", "replicas (AZ b, c)")
        backups = tech("s3", "backup bucket (versioned, lifecycle)")
        receipts = tech("s3", "receipts bucket")

        services >> flow("request", "SQL over TLS") >> proxy
        proxy >> flow("request", "pooled connections") >> primary
        primary >> flow("control", "synchronous replication") >> standby
        services >> flow("request", "MongoDB API over TLS") >> doc_primary
        doc_primary >> flow("control", "shared cluster volume") >> doc_replicas
        services >> flow("request", "RESP over TLS") >> cache_primary
        cache_primary >> flow("control", "async replication") >> cache_replicas
        primary >> flow("control", "snapshot export") >> backups
        services >> flow("request", "put receipts") >> receipts
    return drawing
