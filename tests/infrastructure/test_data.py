"""The data stack sets what the RDS, PostgreSQL, DocumentDB, Redis and S3 pages claim."""

from __future__ import annotations

from typing import Any

import pytest
from aws_cdk.assertions import Match
from infrastructure.services import SERVICES, database_users

from tests.infrastructure.synthesis import Synthesized

LAYER = "data"


def isolated_only(subnets: list[Any]) -> bool:
    return len(subnets) == 3 and all("isolatedSubnet" in s["Fn::ImportValue"] for s in subnets)


# --- RDS for PostgreSQL (RDS, PostgreSQL pages) ---------------------------------------------


def test_the_database_is_multi_az_encrypted_private_and_protected(prod: Synthesized) -> None:
    instances = prod.resources(LAYER, "AWS::RDS::DBInstance")
    [(logical_id, resource)] = instances.items()
    db = resource["Properties"]
    assert db["MultiAZ"] is True
    assert db["StorageEncrypted"] is True
    key = prod.key_arn(LAYER, "alias/storefront-prod-database")
    assert db["KmsKeyId"] == key
    assert db["PerformanceInsightsKMSKeyId"] == key
    assert db["MasterUserSecret"] == {"KmsKeyId": key}
    assert db["PubliclyAccessible"] is False
    assert db["DeletionProtection"] is True
    assert resource["DeletionPolicy"] == "Snapshot"
    assert resource["UpdateReplacePolicy"] == "Snapshot"
    assert db["BackupRetentionPeriod"] == 14
    assert db["CopyTagsToSnapshot"] is True
    assert db["EnableIAMDatabaseAuthentication"] is True
    assert db["ManageMasterUserPassword"] is True
    assert "MasterUserPassword" not in db
    assert (db["Engine"], db["EngineVersion"]) == ("postgres", "18")
    assert db["AutoMinorVersionUpgrade"] is True
    assert db["EngineLifecycleSupport"] == "open-source-rds-extended-support-disabled"
    assert db["StorageType"] == "gp3"
    assert db["MaxAllocatedStorage"] == 2 * int(db["AllocatedStorage"])
    assert (db["DatabaseInsightsMode"], db["PerformanceInsightsRetentionPeriod"]) == (
        "advanced",
        465,
    )
    assert db["EnablePerformanceInsights"] is True
    # No burstable class in production.
    assert not db["DBInstanceClass"].startswith("db.t"), logical_id
    subnets = prod.one(LAYER, "AWS::RDS::DBSubnetGroup")["SubnetIds"]
    assert isolated_only(subnets)


def test_the_parameter_group_forces_tls_and_logs_slow_and_blocked_queries(
    prod: Synthesized,
) -> None:
    group = prod.one(LAYER, "AWS::RDS::DBParameterGroup")
    assert group["Family"] == "postgres18"
    assert group["Parameters"] == {
        "rds.force_ssl": "1",
        "log_min_duration_statement": "500",
        "log_lock_waits": "1",
        "idle_in_transaction_session_timeout": "60000",
    }
    # statement_timeout is per role, never global (PostgreSQL page).
    assert "statement_timeout" not in group["Parameters"]


def test_rds_proxy_requires_tls_and_iam_and_keeps_headroom(prod: Synthesized) -> None:
    prod.template(LAYER).has_resource_properties(
        "AWS::RDS::DBProxy",
        {
            "EngineFamily": "POSTGRESQL",
            "RequireTLS": True,
            "DefaultAuthScheme": "IAM_AUTH",
            "IdleClientTimeout": 1_800,
            "DebugLogging": False,
        },
    )
    pool = prod.one(LAYER, "AWS::RDS::DBProxyTargetGroup")["ConnectionPoolConfigurationInfo"]
    assert pool == {"MaxConnectionsPercent": 80, "ConnectionBorrowTimeout": 10}


def test_the_proxy_connects_only_as_the_services_database_roles(prod: Synthesized) -> None:
    [policy] = prod.resources(LAYER, "AWS::IAM::Policy").values()
    [statement] = policy["Properties"]["PolicyDocument"]["Statement"]
    assert statement["Action"] == "rds-db:connect"
    users = sorted(r["Fn::Join"][1][-1].lstrip("/") for r in statement["Resource"])
    assert users == sorted(database_users())


def test_the_database_log_group_has_retention_and_the_logs_key(prod: Synthesized) -> None:
    prod.template(LAYER).has_resource_properties(
        "AWS::Logs::LogGroup",
        {
            "LogGroupName": "/aws/rds/instance/storefront-prod-postgres/postgresql",
            "RetentionInDays": 30,
            "KmsKeyId": Match.any_value(),
        },
    )


# --- DocumentDB -----------------------------------------------------------------------------


def test_documentdb_is_an_encrypted_80_cluster_with_three_instances_across_zones(
    prod: Synthesized,
) -> None:
    cluster = prod.resources(LAYER, "AWS::DocDB::DBCluster")
    [(_, resource)] = cluster.items()
    p = resource["Properties"]
    assert p["EngineVersion"] == "8.0.0"
    assert p["StorageEncrypted"] is True
    assert p["KmsKeyId"] == prod.key_arn(LAYER, "alias/storefront-prod-documentdb")
    assert p["BackupRetentionPeriod"] == 14
    assert p["DeletionProtection"] is True
    assert p["StorageType"] == "standard"
    assert resource["DeletionPolicy"] == "Snapshot"
    instances = [r["Properties"] for r in prod.resources(LAYER, "AWS::DocDB::DBInstance").values()]
    assert len(instances) == 3
    assert len({i["AvailabilityZone"] for i in instances}) == 3
    classes = {i["DBInstanceClass"] for i in instances}
    assert len(classes) == 1
    assert next(iter(classes)).startswith("db.r")
    parameters = prod.one(LAYER, "AWS::DocDB::DBClusterParameterGroup")
    assert parameters["Family"] == "docdb8.0"
    # TLS on; change streams stay off until a consumer needs them.
    assert parameters["Parameters"] == {"tls": "enabled"}
    assert isolated_only(prod.one(LAYER, "AWS::DocDB::DBSubnetGroup")["SubnetIds"])


# --- ElastiCache for Valkey (Redis page, ADR-0012) ------------------------------------------


def test_the_cache_is_valkey_multi_az_encrypted_in_transit_and_at_rest(prod: Synthesized) -> None:
    cache = prod.one(LAYER, "AWS::ElastiCache::ReplicationGroup")
    assert (cache["Engine"], cache["EngineVersion"]) == ("valkey", "9.0")
    # Cluster mode disabled: one shard, 1 primary + 2 replicas, one per AZ.
    assert cache["NumCacheClusters"] == 3
    assert "NumNodeGroups" not in cache
    assert len(set(cache["PreferredCacheClusterAZs"])) == 3
    assert cache["MultiAZEnabled"] is True
    assert cache["AutomaticFailoverEnabled"] is True
    assert cache["TransitEncryptionEnabled"] is True
    assert cache["TransitEncryptionMode"] == "required"
    assert cache["AtRestEncryptionEnabled"] is True
    assert cache["KmsKeyId"] == prod.key_arn(LAYER, "alias/storefront-prod-cache")
    assert cache["SnapshotRetentionLimit"] == 0
    assert not cache["CacheNodeType"].startswith("cache.t")
    parameters = prod.one(LAYER, "AWS::ElastiCache::ParameterGroup")
    assert parameters["CacheParameterGroupFamily"] == "valkey9"
    assert parameters["Properties"] == {
        "maxmemory-policy": "allkeys-lru",
        "reserved-memory-percent": "25",
    }
    assert isolated_only(prod.one(LAYER, "AWS::ElastiCache::SubnetGroup")["SubnetIds"])


def test_cache_users_are_one_per_service_and_the_default_user_is_off(prod: Synthesized) -> None:
    users = {
        r["Properties"]["UserName"]: r["Properties"]
        for r in prod.resources(LAYER, "AWS::ElastiCache::User").values()
    }
    assert users["default"]["AccessString"].startswith("off ")
    cached = [s for s in SERVICES if s.cache_user]
    assert set(users) == {"default"} | {s.name for s in cached}
    for service in cached:
        access = users[service.name]["AccessString"]
        assert access.startswith(f"on ~v1:{service.name}:* ")
        assert access.endswith("-@dangerous")
        assert ("~rl:*" in access) == service.rate_limiter
        assert users[service.name]["AuthenticationMode"]["Type"] == "password"
    group = prod.one(LAYER, "AWS::ElastiCache::UserGroup")
    assert len(group["UserIds"]) == len(users)


# --- S3 (S3 page, storefront.topology) ------------------------------------------------------


def buckets(prod: Synthesized) -> dict[str, dict[str, Any]]:
    return {
        r["Properties"]["BucketName"]: r
        for r in prod.resources(LAYER, "AWS::S3::Bucket").values()
        if "BucketName" in r["Properties"]
    }


def test_every_topology_bucket_is_versioned_private_and_encrypted_as_the_topology_says(
    prod: Synthesized,
) -> None:
    found = buckets(prod)
    for spec in prod.topology.buckets:
        bucket = found[spec.name]
        p = bucket["Properties"]
        assert bucket["DeletionPolicy"] == "Retain"
        assert p["VersioningConfiguration"] == {"Status": "Enabled"}
        assert p["PublicAccessBlockConfiguration"] == spec.public_access_block()
        assert p["OwnershipControls"] == {"Rules": [{"ObjectOwnership": "BucketOwnerEnforced"}]}
        [rule] = p["BucketEncryption"]["ServerSideEncryptionConfiguration"]
        default = rule["ServerSideEncryptionByDefault"]
        assert default["SSEAlgorithm"] == spec.encryption
        if spec.encryption == "aws:kms":
            assert spec.kms_key is not None
            assert rule["BucketKeyEnabled"] is True
            assert default["KMSMasterKeyID"] == prod.key_arn(LAYER, spec.kms_key.alias)


def test_lifecycle_rules_are_the_topologys_plus_the_pages_additions(prod: Synthesized) -> None:
    found = buckets(prod)
    for spec in prod.topology.buckets:
        rules = {
            r["Id"]: r for r in found[spec.name]["Properties"]["LifecycleConfiguration"]["Rules"]
        }
        assert set(rules) == {r.id for r in spec.lifecycle} | {"expire-delete-markers"}
        assert rules["expire-delete-markers"]["ExpiredObjectDeleteMarker"] is True
        assert rules["abort-incomplete-multipart-uploads"]["AbortIncompleteMultipartUpload"] == {
            "DaysAfterInitiation": 7
        }
    assets = {
        r["Id"]: r
        for r in found["storefront-prod-assets"]["Properties"]["LifecycleConfiguration"]["Rules"]
    }
    assert assets["expire-old-builds"]["NoncurrentVersionExpiration"] == {
        "NoncurrentDays": 30,
        "NewerNoncurrentVersions": 3,
    }
    backups = {
        r["Id"]: r
        for r in found["storefront-prod-backups"]["Properties"]["LifecycleConfiguration"]["Rules"]
    }
    exports = backups["archive-then-expire-exports"]
    assert exports["Prefix"] == "exports/"
    assert exports["Transitions"] == [{"StorageClass": "GLACIER_IR", "TransitionInDays": 30}]
    assert exports["ExpirationInDays"] == 400


def test_backups_are_under_object_lock_in_compliance_mode_for_35_days(prod: Synthesized) -> None:
    backups = buckets(prod)["storefront-prod-backups"]["Properties"]
    assert backups["ObjectLockEnabled"] is True
    assert backups["ObjectLockConfiguration"] == {
        "ObjectLockEnabled": "Enabled",
        "Rule": {"DefaultRetention": {"Mode": "COMPLIANCE", "Days": 35}},
    }
    for name in ("storefront-prod-assets", "storefront-prod-receipts"):
        assert "ObjectLockConfiguration" not in buckets(prod)[name]["Properties"]


def bucket_policy(prod: Synthesized, bucket_logical_id: str) -> list[dict[str, Any]]:
    for policy in prod.resources(LAYER, "AWS::S3::BucketPolicy").values():
        if policy["Properties"]["Bucket"] == {"Ref": bucket_logical_id}:
            return policy["Properties"]["PolicyDocument"]["Statement"]
    raise AssertionError(f"no policy for {bucket_logical_id}")


@pytest.mark.parametrize("key", ["assets", "receipts", "backups"])
def test_bucket_policies_are_the_topologys_documents(prod: Synthesized, key: str) -> None:
    spec = prod.topology.bucket(key)
    logical_id = next(
        lid
        for lid, r in prod.resources(LAYER, "AWS::S3::Bucket").items()
        if r["Properties"].get("BucketName") == spec.name
    )
    statements = {s["Sid"]: s for s in bucket_policy(prod, logical_id)}
    for expected in (spec.policy(include_deny=True) or {"Statement": []})["Statement"]:
        actual = statements[expected["Sid"]]
        for field in ("Effect", "Action", "Condition"):
            assert actual[field] == expected[field], (key, field)
    if key == "assets":
        condition = statements["AllowGetFromCdnOnly"]["Condition"]["IpAddress"]["aws:SourceIp"]
        assert "173.245.48.0/20" in condition
    if key == "receipts":
        lock = statements["DenyPutOutsideTheVpcEndpoint"]
        assert (lock["Effect"], lock["Action"]) == ("Deny", "s3:PutObject")
        assert "aws:SourceVpce" in lock["Condition"]["StringNotEquals"]


def test_request_metrics_are_on_for_assets_and_receipts(prod: Synthesized) -> None:
    found = buckets(prod)
    for name, expected in (
        ("storefront-prod-assets", True),
        ("storefront-prod-receipts", True),
        ("storefront-prod-backups", False),
    ):
        assert ("MetricsConfigurations" in found[name]["Properties"]) is expected, name


def test_keys_rotate_and_are_kept(prod: Synthesized) -> None:
    keys = prod.resources(LAYER, "AWS::KMS::Key")
    assert len(keys) == 5  # database, documentdb, cache, receipts, backups
    for key in keys.values():
        assert key["Properties"]["EnableKeyRotation"] is True
        assert key["DeletionPolicy"] == "Retain"
