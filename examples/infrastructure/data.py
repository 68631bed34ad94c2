"""The data layer: RDS for PostgreSQL with RDS Proxy, DocumentDB, ElastiCache for Valkey, S3.

Every store sits in the isolated subnets with no public address, is encrypted at rest with its
own customer managed key and in transit with TLS, and is reachable only from the security
groups the network stack names. The S3 buckets are built from ``storefront.topology`` (names,
encryption, versioning, public access, ownership, policies and lifecycle), the same objects the
moto bootstrap of the executable examples creates.

The RDS resources are CloudFormation-level (``Cfn*``) on purpose: the values the RDS page claims
(RDS-managed master password, ``EngineLifecycleSupport``, Database Insights mode, the proxy's
end-to-end IAM authentication) map one to one onto template properties, and the tests read them
there.
"""

from __future__ import annotations

from aws_cdk import CfnDeletionPolicy, CfnOutput, Duration, Fn, RemovalPolicy, Stack
from aws_cdk import aws_docdb as docdb
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_elasticache as elasticache
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_logs as logs
from aws_cdk import aws_rds as rds
from aws_cdk import aws_s3 as s3
from aws_cdk import aws_secretsmanager as secretsmanager
from constructs import Construct
from storefront.topology import Bucket, LifecycleRule, Topology

from infrastructure.network import NetworkStack
from infrastructure.runtime import extras, retention
from infrastructure.services import SERVICES, database_users
from infrastructure.settings import EnvironmentSettings

RDS_CA = "rds-ca-rsa2048-g1"
STORAGE_CLASSES = {
    "STANDARD_IA": s3.StorageClass.INFREQUENT_ACCESS,
    "ONEZONE_IA": s3.StorageClass.ONE_ZONE_INFREQUENT_ACCESS,
    "INTELLIGENT_TIERING": s3.StorageClass.INTELLIGENT_TIERING,
    "GLACIER_IR": s3.StorageClass.GLACIER_INSTANT_RETRIEVAL,
    "GLACIER": s3.StorageClass.GLACIER,
    "DEEP_ARCHIVE": s3.StorageClass.DEEP_ARCHIVE,
}


class DataStack(Stack):
    """Databases, cache and buckets.

    Attributes:
        database: The RDS DB instance.
        proxy: The RDS Proxy.
        proxy_resource_id: The proxy's resource id (``prx-...``), for ``rds-db:connect`` ARNs.
        documentdb: The DocumentDB cluster.
        documentdb_instances: Its instances.
        cache: The ElastiCache replication group.
        cache_secrets: Each cache user's password secret, by service name.
        event_store_secrets: Each DocumentDB user's secret, by service name.
        buckets: The S3 buckets, by topology key.
        bucket_keys: The buckets' customer managed keys, by topology key.
        truststore: The versioned bucket holding the mutual-TLS truststore.
    """

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        settings: EnvironmentSettings,
        topology: Topology,
        network: NetworkStack,
        **kwargs: object,
    ) -> None:
        super().__init__(scope, construct_id, **kwargs)  # type: ignore[arg-type]
        self._settings = settings
        self._network = network
        self._isolated = network.vpc.select_subnets(
            subnet_type=ec2.SubnetType.PRIVATE_ISOLATED
        ).subnet_ids
        self._postgres()
        self._documentdb()
        self._cache()
        self._buckets(topology)

    def _key(self, construct_id: str, alias: str, description: str) -> kms.Key:
        return kms.Key(
            self,
            construct_id,
            alias=alias,
            description=description,
            enable_key_rotation=True,
            removal_policy=RemovalPolicy.RETAIN,
        )

    # --- RDS for PostgreSQL and RDS Proxy -----------------------------------------------------

    def _postgres(self) -> None:
        settings, network = self._settings, self._network
        p = settings.resource_prefix
        db = settings.database
        key = self._key("DatabaseKey", f"alias/{p}-database", "RDS storage, backups, Insights")
        self.database_key = key
        subnets = rds.CfnDBSubnetGroup(
            self,
            "DatabaseSubnets",
            db_subnet_group_description="Isolated subnets of the storefront VPC",
            subnet_ids=self._isolated,
        )
        # --8<-- [start:rds-parameters]
        parameters = rds.CfnDBParameterGroup(
            self,
            "DatabaseParameters",
            family="postgres18",
            description="Storefront PostgreSQL: TLS only, slow and blocked queries logged",
            parameters={
                "rds.force_ssl": "1",
                "log_min_duration_statement": "500",
                "log_lock_waits": "1",
                # Milliseconds: an abandoned transaction cannot hold locks or block vacuum for
                # long. statement_timeout is set per database role, not here.
                "idle_in_transaction_session_timeout": "60000",
            },
        )
        # --8<-- [end:rds-parameters]
        identifier = f"{p}-postgres"
        log_group = logs.LogGroup(
            self,
            "DatabaseLogs",
            log_group_name=f"/aws/rds/instance/{identifier}/postgresql",
            retention=retention(settings.service_log_retention_days),
            encryption_key=network.logs_key,
            removal_policy=RemovalPolicy.DESTROY,
        )
        insights_retention = 465 if db.insights_mode == "advanced" else 7
        # --8<-- [start:rds-instance]
        self.database = rds.CfnDBInstance(
            self,
            "Database",
            db_instance_identifier=identifier,
            engine="postgres",
            engine_version="18",
            auto_minor_version_upgrade=True,
            engine_lifecycle_support="open-source-rds-extended-support-disabled",
            db_instance_class=f"db.{db.instance_class}",
            multi_az=db.multi_az,
            db_subnet_group_name=subnets.ref,
            vpc_security_groups=[network.database_sg.security_group_id],
            publicly_accessible=False,
            storage_type="gp3",
            allocated_storage=str(db.allocated_storage_gib),
            max_allocated_storage=db.max_allocated_storage_gib,
            storage_encrypted=True,
            kms_key_id=key.key_arn,
            backup_retention_period=db.backup_retention_days,
            preferred_backup_window="02:00-02:30",
            preferred_maintenance_window="sun:03:00-sun:03:30",
            copy_tags_to_snapshot=True,
            delete_automated_backups=False,
            deletion_protection=True,
            db_parameter_group_name=parameters.ref,
            db_name="storefront",
            master_username="storefront_admin",
            manage_master_user_password=True,
            master_user_secret=rds.CfnDBInstance.MasterUserSecretProperty(kms_key_id=key.key_arn),
            enable_iam_database_authentication=True,
            database_insights_mode=db.insights_mode,
            enable_performance_insights=True,
            performance_insights_kms_key_id=key.key_arn,
            performance_insights_retention_period=insights_retention,
            enable_cloudwatch_logs_exports=["postgresql"],
            ca_certificate_identifier=RDS_CA,
        )
        # A deleted instance leaves a final snapshot behind.
        self.database.cfn_options.deletion_policy = CfnDeletionPolicy.SNAPSHOT
        self.database.cfn_options.update_replace_policy = CfnDeletionPolicy.SNAPSHOT
        # --8<-- [end:rds-instance]
        self.database.node.add_dependency(log_group)

        # The proxy signs in to the database with IAM too (end-to-end IAM authentication), as
        # each service's own database role.
        proxy_role = iam.Role(
            self,
            "ProxyRole",
            assumed_by=iam.ServicePrincipal("rds.amazonaws.com"),
            description="RDS Proxy: IAM authentication to the storefront database",
        )
        proxy_role.add_to_policy(
            iam.PolicyStatement(
                sid="ConnectAsServiceRoles",
                actions=["rds-db:connect"],
                resources=[
                    f"arn:{self.partition}:rds-db:{self.region}:{self.account}:dbuser:"
                    f"{self.database.attr_dbi_resource_id}/{user}"
                    for user in database_users()
                ],
            )
        )
        # --8<-- [start:rds-proxy]
        self.proxy = rds.CfnDBProxy(
            self,
            "Proxy",
            db_proxy_name=identifier,
            engine_family="POSTGRESQL",
            role_arn=proxy_role.role_arn,
            vpc_subnet_ids=network.vpc.select_subnets(
                subnet_type=ec2.SubnetType.PRIVATE_WITH_EGRESS
            ).subnet_ids,
            vpc_security_group_ids=[network.proxy_sg.security_group_id],
            require_tls=True,
            default_auth_scheme="IAM_AUTH",
            idle_client_timeout=1_800,
            debug_logging=False,
        )
        rds.CfnDBProxyTargetGroup(
            self,
            "ProxyTargets",
            db_proxy_name=self.proxy.ref,
            target_group_name="default",
            db_instance_identifiers=[self.database.ref],
            connection_pool_configuration_info=rds.CfnDBProxyTargetGroup.ConnectionPoolConfigurationInfoFormatProperty(
                max_connections_percent=80,
                connection_borrow_timeout=10,
            ),
        )
        # --8<-- [end:rds-proxy]
        self.proxy_resource_id = Fn.select(6, Fn.split(":", self.proxy.attr_db_proxy_arn))
        CfnOutput(self, "ProxyEndpoint", value=self.proxy.attr_endpoint)

    # --- DocumentDB ---------------------------------------------------------------------------

    def _documentdb(self) -> None:
        settings, network = self._settings, self._network
        p = settings.resource_prefix
        key = self._key("DocumentDbKey", f"alias/{p}-documentdb", "DocumentDB event store")
        self.documentdb_key = key
        subnets = docdb.CfnDBSubnetGroup(
            self,
            "DocumentDbSubnets",
            db_subnet_group_description="Isolated subnets of the storefront VPC",
            subnet_ids=self._isolated,
        )
        # --8<-- [start:documentdb]
        parameters = docdb.CfnDBClusterParameterGroup(
            self,
            "DocumentDbParameters",
            family="docdb8.0",
            description="Storefront event store: TLS required",
            parameters={"tls": "enabled"},
        )
        self.documentdb = docdb.CfnDBCluster(
            self,
            "DocumentDb",
            db_cluster_identifier=f"{p}-events",
            engine_version="8.0.0",
            storage_type="standard",
            storage_encrypted=True,
            kms_key_id=key.key_arn,
            backup_retention_period=settings.documentdb.backup_retention_days,
            preferred_backup_window="02:30-03:00",
            deletion_protection=True,
            copy_tags_to_snapshot=True,
            master_username="docdb_admin",
            manage_master_user_password=True,
            master_user_secret_kms_key_id=key.key_arn,
            db_cluster_parameter_group_name=parameters.ref,
            db_subnet_group_name=subnets.ref,
            vpc_security_group_ids=[network.documentdb_sg.security_group_id],
        )
        self.documentdb.cfn_options.deletion_policy = CfnDeletionPolicy.SNAPSHOT
        self.documentdb.cfn_options.update_replace_policy = CfnDeletionPolicy.SNAPSHOT
        # One primary and replicas of the same class, one per Availability Zone.
        self.documentdb_instances = [
            docdb.CfnDBInstance(
                self,
                f"DocumentDbInstance{index + 1}",
                db_cluster_identifier=self.documentdb.ref,
                db_instance_class=f"db.{settings.documentdb.instance_class}",
                availability_zone=settings.availability_zones[index % 3],
                auto_minor_version_upgrade=True,
                ca_certificate_identifier=RDS_CA,
            )
            for index in range(settings.documentdb.instances)
        ]
        # --8<-- [end:documentdb]
        self.event_store_secrets: dict[str, secretsmanager.Secret] = {}
        for service in SERVICES:
            if service.event_store_user:
                self.event_store_secrets[service.name] = self._user_secret(
                    f"EventStoreUser{_pascal(service.name)}",
                    f"{p}/documentdb/{service.event_store_user}",
                    service.event_store_user,
                    key,
                )
        CfnOutput(self, "DocumentDbEndpoint", value=self.documentdb.attr_endpoint)

    def _user_secret(
        self, construct_id: str, name: str, username: str, key: kms.IKey
    ) -> secretsmanager.Secret:
        return secretsmanager.Secret(
            self,
            construct_id,
            secret_name=name,
            description=f"Credentials of the {username} user",
            encryption_key=key,
            generate_secret_string=secretsmanager.SecretStringGenerator(
                secret_string_template=f'{{"username": "{username}"}}',
                generate_string_key="password",
                exclude_punctuation=True,
                password_length=32,
            ),
        )

    # --- ElastiCache for Valkey ---------------------------------------------------------------

    def _cache(self) -> None:
        settings, network = self._settings, self._network
        p = settings.resource_prefix
        key = self._key("CacheKey", f"alias/{p}-cache", "ElastiCache for Valkey")
        self.cache_key = key
        subnets = elasticache.CfnSubnetGroup(
            self,
            "CacheSubnets",
            cache_subnet_group_name=f"{p}-cache",
            description="Isolated subnets of the storefront VPC",
            subnet_ids=self._isolated,
        )
        # --8<-- [start:cache-users]
        # RBAC: the default user is switched off, each service gets its own user limited to its
        # key prefix and without the @dangerous commands.
        default_user = elasticache.CfnUser(
            self,
            "CacheDefaultUser",
            engine="valkey",
            user_id=f"{p}-default-off",
            user_name="default",
            access_string="off -@all",
            authentication_mode={"Type": "no-password-required"},
        )
        self.cache_secrets: dict[str, secretsmanager.Secret] = {}
        users: list[elasticache.CfnUser] = [default_user]
        for service in SERVICES:
            if not service.cache_user:
                continue
            secret = self._user_secret(
                f"CacheUser{_pascal(service.name)}Secret",
                f"{p}/cache/{service.name}",
                service.name,
                key,
            )
            self.cache_secrets[service.name] = secret
            keys = f"~v1:{service.name}:* ~lock:v1:{service.name}:*"
            if service.rate_limiter:
                keys += " ~rl:*"
            users.append(
                elasticache.CfnUser(
                    self,
                    f"CacheUser{_pascal(service.name)}",
                    engine="valkey",
                    user_id=f"{p}-{service.name}",
                    user_name=service.name,
                    access_string=(
                        f"on {keys} -@all +@read +@write +@transaction +@connection -@dangerous"
                    ),
                    authentication_mode={
                        "Type": "password",
                        "Passwords": [secret.secret_value_from_json("password").unsafe_unwrap()],
                    },
                )
            )
        user_group = elasticache.CfnUserGroup(
            self,
            "CacheUsers",
            engine="valkey",
            user_group_id=f"{p}-cache",
            user_ids=[user.user_id for user in users],
        )
        for user in users:
            user_group.node.add_dependency(user)
        # --8<-- [end:cache-users]
        # --8<-- [start:cache]
        parameters = elasticache.CfnParameterGroup(
            self,
            "CacheParameters",
            cache_parameter_group_family="valkey9",
            description="Storefront cache: evict any key under memory pressure",
            properties={"maxmemory-policy": "allkeys-lru", "reserved-memory-percent": "25"},
        )
        cache = settings.cache
        self.cache = elasticache.CfnReplicationGroup(
            self,
            "Cache",
            replication_group_id=f"{p}-cache",
            replication_group_description="Storefront cache (cluster mode disabled)",
            engine="valkey",
            engine_version="9.0",
            cache_node_type=cache.node_type,
            num_cache_clusters=1 + cache.replicas,
            preferred_cache_cluster_a_zs=list(settings.availability_zones[: 1 + cache.replicas]),
            multi_az_enabled=cache.multi_az,
            automatic_failover_enabled=cache.multi_az,
            transit_encryption_enabled=True,
            transit_encryption_mode="required",
            at_rest_encryption_enabled=True,
            kms_key_id=key.key_arn,
            user_group_ids=[user_group.ref],
            cache_parameter_group_name=parameters.ref,
            cache_subnet_group_name=subnets.ref,
            security_group_ids=[network.cache_sg.security_group_id],
            snapshot_retention_limit=0,
            auto_minor_version_upgrade=True,
            preferred_maintenance_window="sun:04:00-sun:05:00",
        )
        # --8<-- [end:cache]
        CfnOutput(self, "CachePrimaryEndpoint", value=self.cache.attr_primary_end_point_address)

    # --- S3 -----------------------------------------------------------------------------------

    def _buckets(self, topology: Topology) -> None:
        add = extras(self._settings)
        self.buckets: dict[str, s3.Bucket] = {}
        self.bucket_keys: dict[str, kms.Key] = {}
        for spec in topology.buckets:
            self.buckets[spec.key] = self._bucket(
                spec, add.backup_lock_days, add.assets_newer_noncurrent_versions
            )
        # --8<-- [start:receipts-endpoint-lock]
        # Receipts are written only from inside the VPC; reads are not limited to the endpoint,
        # because customers fetch presigned URLs from the internet.
        receipts = topology.bucket("receipts")
        self.buckets["receipts"].add_to_resource_policy(
            iam.PolicyStatement(
                sid="DenyPutOutsideTheVpcEndpoint",
                effect=iam.Effect.DENY,
                principals=[iam.AnyPrincipal()],
                actions=["s3:PutObject"],
                resources=[f"arn:{self.partition}:s3:::{receipts.name}/*"],
                conditions={
                    "StringNotEquals": {"aws:SourceVpce": self._network.s3_endpoint.vpc_endpoint_id}
                },
            )
        )
        # --8<-- [end:receipts-endpoint-lock]
        self.truststore = s3.Bucket(
            self,
            "Truststore",
            bucket_name=self._settings.truststore_bucket,
            versioned=True,
            encryption=s3.BucketEncryption.S3_MANAGED,
            block_public_access=s3.BlockPublicAccess.BLOCK_ALL,
            object_ownership=s3.ObjectOwnership.BUCKET_OWNER_ENFORCED,
            enforce_ssl=True,
            removal_policy=RemovalPolicy.RETAIN,
        )

    def _bucket(self, spec: Bucket, lock_days: int, assets_newer: int) -> s3.Bucket:
        key = None
        if spec.kms_key is not None:
            key = self._key(f"{_pascal(spec.key)}Key", spec.kms_key.alias, spec.kms_key.description)
            self.bucket_keys[spec.key] = key
        # --8<-- [start:bucket]
        lifecycle = [_lifecycle_rule(rule, spec, assets_newer) for rule in spec.lifecycle]
        # Delete markers with no noncurrent versions left are clutter that listings must skip.
        lifecycle.append(
            s3.LifecycleRule(id="expire-delete-markers", expired_object_delete_marker=True)
        )
        bucket = s3.Bucket(
            self,
            _pascal(spec.key),
            bucket_name=spec.name,
            encryption=s3.BucketEncryption.KMS if key else s3.BucketEncryption.S3_MANAGED,
            encryption_key=key,
            bucket_key_enabled=key is not None,
            versioned=True,
            block_public_access=s3.BlockPublicAccess.BLOCK_ALL,
            object_ownership=s3.ObjectOwnership.BUCKET_OWNER_ENFORCED,
            lifecycle_rules=lifecycle,
            # Backups: no user can shorten the retention or delete a locked version.
            object_lock_enabled=spec.key == "backups" or None,
            object_lock_default_retention=(
                s3.ObjectLockRetention.compliance(Duration.days(lock_days))
                if spec.key == "backups"
                else None
            ),
            metrics=[s3.BucketMetrics(id="EntireBucket")]
            if spec.key in ("assets", "receipts")
            else None,
            removal_policy=RemovalPolicy.RETAIN,
        )
        # The same policy document the moto bootstrap applies (storefront.topology).
        policy = spec.policy(include_deny=True) or {"Statement": []}
        for statement in policy["Statement"]:
            bucket.add_to_resource_policy(iam.PolicyStatement.from_json(statement))
        # --8<-- [end:bucket]
        return bucket


def _lifecycle_rule(rule: LifecycleRule, spec: Bucket, assets_newer: int) -> s3.LifecycleRule:
    newer = rule.newer_noncurrent_versions
    if spec.key == "assets" and rule.noncurrent_expiration_days is not None and newer is None:
        # The S3 page's value; the topology leaves it out because moto drops it.
        newer = assets_newer
    return s3.LifecycleRule(
        id=rule.id,
        prefix=rule.prefix or None,
        enabled=True,
        transitions=[
            s3.Transition(
                storage_class=STORAGE_CLASSES[t.storage_class],
                transition_after=Duration.days(t.days),
            )
            for t in rule.transitions
        ]
        or None,
        expiration=Duration.days(rule.expiration_days) if rule.expiration_days else None,
        noncurrent_version_expiration=Duration.days(rule.noncurrent_expiration_days)
        if rule.noncurrent_expiration_days
        else None,
        noncurrent_versions_to_retain=newer,
        abort_incomplete_multipart_upload_after=Duration.days(rule.abort_incomplete_multipart_days)
        if rule.abort_incomplete_multipart_days
        else None,
    )


def _pascal(name: str) -> str:
    return "".join(part.capitalize() for part in name.split("-"))
