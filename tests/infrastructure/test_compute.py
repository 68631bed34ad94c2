"""The compute stack sets what the ECS Fargate, ALB, OpenTelemetry and Pino pages claim."""

from __future__ import annotations

from typing import Any

import pytest
from aws_cdk.assertions import Match
from infrastructure.compute import ALB_SSL_POLICY
from infrastructure.services import CONTAINER_PORT, HEALTH_PATH, SERVICES, api_services

from tests.infrastructure.synthesis import Synthesized

LAYER = "compute"


def task_definitions(prod: Synthesized) -> dict[str, dict[str, Any]]:
    """Task definition properties by family suffix (the service name)."""
    prefix = prod.settings.resource_prefix + "-"
    return {
        r["Properties"]["Family"].removeprefix(prefix): r["Properties"]
        for r in prod.resources(LAYER, "AWS::ECS::TaskDefinition").values()
    }


def ecs_services(prod: Synthesized) -> dict[str, dict[str, Any]]:
    return {
        r["Properties"]["ServiceName"]: r["Properties"]
        for r in prod.resources(LAYER, "AWS::ECS::Service").values()
    }


def container(task: dict[str, Any], name: str) -> dict[str, Any]:
    return next(c for c in task["ContainerDefinitions"] if c["Name"] == name)


def policy_statements(synth: Synthesized, layer: str, role_logical_id: str) -> list[dict]:
    """Every statement of every inline policy attached to a role."""
    statements: list[dict] = []
    for policy in synth.resources(layer, "AWS::IAM::Policy").values():
        if {"Ref": role_logical_id} in policy["Properties"]["Roles"]:
            statements += policy["Properties"]["PolicyDocument"]["Statement"]
    return statements


def role_id(synth: Synthesized, arn: Any) -> str:
    """The logical id of a role from a ``Fn::GetAtt [id, Arn]`` value."""
    return arn["Fn::GetAtt"][0]


# --- Cluster and ALB (ECS Fargate, ALB pages) ---------------------------------------------------


def test_cluster_encrypts_ephemeral_storage_and_exec_sessions_with_customer_keys(
    prod: Synthesized,
) -> None:
    prod.template(LAYER).has_resource_properties(
        "AWS::ECS::Cluster",
        {
            "ClusterSettings": [{"Name": "containerInsights", "Value": "enabled"}],
            "Configuration": {
                "ManagedStorageConfiguration": {
                    "FargateEphemeralStorageKmsKeyId": Match.any_value()
                },
                "ExecuteCommandConfiguration": {
                    "KmsKeyId": Match.any_value(),
                    "Logging": "OVERRIDE",
                    "LogConfiguration": {"CloudWatchEncryptionEnabled": True},
                },
            },
        },
    )
    prod.template(LAYER).has_resource_properties(
        "AWS::ECS::ClusterCapacityProviderAssociations",
        {"CapacityProviders": Match.array_with(["FARGATE", "FARGATE_SPOT"])},
    )


def test_the_alb_is_internal_in_private_subnets_with_deletion_protection(prod: Synthesized) -> None:
    alb = prod.one(LAYER, "AWS::ElasticLoadBalancingV2::LoadBalancer")
    assert alb["Scheme"] == "internal"
    assert len(alb["Subnets"]) == 3
    assert all("privateSubnet" in s["Fn::ImportValue"] for s in alb["Subnets"]), alb["Subnets"]
    attributes = {a["Key"]: a["Value"] for a in alb["LoadBalancerAttributes"]}
    assert attributes["deletion_protection.enabled"] == "true"
    assert attributes["routing.http.drop_invalid_header_fields.enabled"] == "true"
    assert attributes["idle_timeout.timeout_seconds"] == "60"
    assert attributes["access_logs.s3.enabled"] == "true"


def test_the_listener_is_https_with_an_explicit_tls_policy_and_fails_closed(
    prod: Synthesized,
) -> None:
    prod.template(LAYER).has_resource_properties(
        "AWS::ElasticLoadBalancingV2::Listener",
        {
            "Port": 443,
            "Protocol": "HTTPS",
            "SslPolicy": ALB_SSL_POLICY,
            "Certificates": [{"CertificateArn": Match.any_value()}],
            "DefaultActions": [
                Match.object_like(
                    {
                        "Type": "fixed-response",
                        "FixedResponseConfig": {"StatusCode": "404"}
                        | {
                            "ContentType": "application/json",
                            "MessageBody": Match.any_value(),
                        },
                    }
                )
            ],
        },
    )


def test_target_groups_are_ip_with_tuned_health_checks_and_draining(prod: Synthesized) -> None:
    groups = prod.resources(LAYER, "AWS::ElasticLoadBalancingV2::TargetGroup")
    assert len(groups) == len(api_services())
    for logical_id, group in groups.items():
        p = group["Properties"]
        assert p["TargetType"] == "ip", logical_id
        assert (p["Protocol"], p["ProtocolVersion"], p["Port"]) == ("HTTP", "HTTP1", CONTAINER_PORT)
        assert p["HealthCheckPath"] == HEALTH_PATH
        assert (p["HealthCheckIntervalSeconds"], p["HealthCheckTimeoutSeconds"]) == (10, 5)
        assert (p["HealthyThresholdCount"], p["UnhealthyThresholdCount"]) == (2, 2)
        assert p["Matcher"] == {"HttpCode": "200"}
        attributes = {a["Key"]: a["Value"] for a in p["TargetGroupAttributes"]}
        assert attributes["deregistration_delay.timeout_seconds"] == "30"
        assert attributes["slow_start.duration_seconds"] == "30"
        assert attributes["load_balancing.algorithm.type"] == "round_robin"


def test_each_api_service_has_a_path_rule(prod: Synthesized) -> None:
    rules = prod.resources(LAYER, "AWS::ElasticLoadBalancingV2::ListenerRule")
    patterns = sorted(
        tuple(r["Properties"]["Conditions"][0]["PathPatternConfig"]["Values"])
        for r in rules.values()
    )
    assert patterns == sorted((s.path, f"{s.path}/*") for s in api_services())


# --- Task definitions (ECS Fargate, OpenTelemetry, Pino pages) ---------------------------------


def test_task_sizes_and_architectures_follow_the_settings(prod: Synthesized) -> None:
    tasks = task_definitions(prod)
    assert sorted(tasks) == sorted(s.name for s in SERVICES)
    for service in SERVICES:
        task = tasks[service.name]
        size = prod.settings.api if service.is_api else prod.settings.worker
        assert (task["Cpu"], task["Memory"]) == (str(size.cpu), str(size.memory_mib))
        assert task["RequiresCompatibilities"] == ["FARGATE"]
        assert task["NetworkMode"] == "awsvpc"
        expected = "ARM64" if service.is_api else "X86_64"
        assert task["RuntimePlatform"]["CpuArchitecture"] == expected, service.name
    assert (prod.settings.api.cpu, prod.settings.api.memory_mib) == (512, 1024)


def test_app_containers_stop_gracefully_and_log_without_blocking(prod: Synthesized) -> None:
    for service in SERVICES:
        task = task_definitions(prod)[service.name]
        app = container(task, "app")
        assert app["StopTimeout"] == service.stop_timeout_s
        assert app["ReadonlyRootFilesystem"] is True
        tmp = {"ContainerPath": "/tmp", "SourceVolume": "tmp", "ReadOnly": False}  # noqa: S108
        assert tmp in app["MountPoints"]
        options = app["LogConfiguration"]["Options"]
        assert app["LogConfiguration"]["LogDriver"] == "awslogs"
        # 25 MiB, which the CDK writes in bytes.
        assert (options["mode"], options["max-buffer-size"]) == ("non-blocking", "26214400b")
        assert app["DependsOn"] == [{"Condition": "START", "ContainerName": "otel-collector"}]
        environment = {e["Name"]: e["Value"] for e in app["Environment"]}
        assert environment["OTEL_TRACES_SAMPLER"] == "parentbased_traceidratio"
        assert environment["OTEL_TRACES_SAMPLER_ARG"] == "0.1"
        assert environment["OTEL_EXPORTER_OTLP_ENDPOINT"] == "http://localhost:4318"
    assert {s.stop_timeout_s for s in SERVICES} == {30, 110}


def test_the_collector_sidecar_is_essential_and_reserves_its_share(prod: Synthesized) -> None:
    for task in task_definitions(prod).values():
        collector = container(task, "otel-collector")
        assert collector["Essential"] is True
        assert (collector["Cpu"], collector["MemoryReservation"]) == (128, 128)
        assert [s["Name"] for s in collector["Secrets"]] == ["AOT_CONFIG_CONTENT"]
    config = prod.one(LAYER, "AWS::SSM::Parameter")["Value"]
    assert "endpoint: 127.0.0.1:4318" in config
    # memory_limiter first, then batch.
    assert "processors: [memory_limiter, batch]" in config


def test_secrets_are_injected_from_secrets_manager_by_json_key(prod: Synthesized) -> None:
    cart = container(task_definitions(prod)["cart"], "app")
    [secret] = cart["Secrets"]
    assert secret["Name"] == "STOREFRONT_REDIS_PASSWORD"
    value_from = secret["ValueFrom"]["Fn::Join"][1]
    assert value_from[-1] == ":password::"


def test_every_ecs_log_group_has_retention_and_the_logs_key(prod: Synthesized) -> None:
    groups = prod.resources(LAYER, "AWS::Logs::LogGroup")
    assert len(groups) == 2 * len(SERVICES) + 1
    for group in groups.values():
        assert group["Properties"]["RetentionInDays"] == 30
        assert "KmsKeyId" in group["Properties"]


# --- Services (ECS Fargate page) --------------------------------------------------------------


def test_services_roll_back_on_the_circuit_breaker_and_keep_full_capacity(
    prod: Synthesized,
) -> None:
    services = ecs_services(prod)
    assert sorted(services) == sorted(s.name for s in SERVICES)
    for service in SERVICES:
        properties = services[service.name]
        deployment = properties["DeploymentConfiguration"]
        assert deployment["DeploymentCircuitBreaker"] == {"Enable": True, "Rollback": True}
        assert (deployment["MinimumHealthyPercent"], deployment["MaximumPercent"]) == (100, 200)
        assert properties["PlatformVersion"] == "LATEST"
        assert properties["EnableExecuteCommand"] is False
        network = properties["NetworkConfiguration"]["AwsvpcConfiguration"]
        assert network["AssignPublicIp"] == "DISABLED"
        assert len(network["SecurityGroups"]) == 1
        if service.is_api:
            assert properties["HealthCheckGracePeriodSeconds"] == 60
            assert deployment["Alarms"]["Enable"] is True
            assert deployment["Alarms"]["Rollback"] is True
            assert len(deployment["Alarms"]["AlarmNames"]) == 2
            assert properties["CapacityProviderStrategy"] == [
                {"CapacityProvider": "FARGATE", "Weight": 1}
            ]
        else:
            assert "HealthCheckGracePeriodSeconds" not in properties
            assert properties["CapacityProviderStrategy"] == [
                {"CapacityProvider": "FARGATE", "Base": 1, "Weight": 1},
                {"CapacityProvider": "FARGATE_SPOT", "Weight": 3},
            ]
        assert (
            properties["DesiredCount"]
            == (prod.settings.api if service.is_api else prod.settings.worker).min_tasks
        )


def test_deployment_alarms_watch_target_5xx_and_p99_latency(prod: Synthesized) -> None:
    alarms = prod.resources(LAYER, "AWS::CloudWatch::Alarm")
    names = {a["Properties"].get("AlarmName"): a["Properties"] for a in alarms.values()}
    for service in api_services():
        errors = names[f"{prod.settings.resource_prefix}-{service.name}-HTTPCode_Target_5XX_Count"]
        assert errors["MetricName"] == "HTTPCode_Target_5XX_Count"
        latency = names[f"{prod.settings.resource_prefix}-{service.name}-TargetResponseTime-p99"]
        assert (latency["MetricName"], latency["ExtendedStatistic"]) == (
            "TargetResponseTime",
            "p99",
        )


def test_api_services_scale_on_requests_and_cpu_with_a_slow_scale_in(prod: Synthesized) -> None:
    policies = [
        p["Properties"]["TargetTrackingScalingPolicyConfiguration"]
        for p in prod.resources(LAYER, "AWS::ApplicationAutoScaling::ScalingPolicy").values()
        if p["Properties"]["PolicyType"] == "TargetTrackingScaling"
    ]
    predefined = [
        p["PredefinedMetricSpecification"]["PredefinedMetricType"]
        for p in policies
        if "PredefinedMetricSpecification" in p
    ]
    apis = len(api_services())
    assert predefined.count("ALBRequestCountPerTarget") == apis
    cpu = [
        p
        for p in policies
        if p.get("PredefinedMetricSpecification", {}).get("PredefinedMetricType")
        == "ECSServiceAverageCPUUtilization"
    ]
    assert all(p["TargetValue"] == 60 for p in cpu)
    assert all(p["ScaleInCooldown"] == 300 for p in policies)
    targets = prod.resources(LAYER, "AWS::ApplicationAutoScaling::ScalableTarget")
    minimums = sorted(t["Properties"]["MinCapacity"] for t in targets.values())
    assert minimums.count(prod.settings.api.min_tasks) >= apis
    assert prod.settings.api.min_tasks == 3  # one per Availability Zone


def test_workers_scale_on_backlog_per_task_and_the_age_of_the_oldest_message(
    prod: Synthesized,
) -> None:
    policies = prod.resources(LAYER, "AWS::ApplicationAutoScaling::ScalingPolicy")
    backlog = [
        p["Properties"]["TargetTrackingScalingPolicyConfiguration"]
        for p in policies.values()
        if "CustomizedMetricSpecification"
        in p["Properties"].get("TargetTrackingScalingPolicyConfiguration", {})
    ]
    consumers = [s for s in SERVICES if s.consumes]
    assert len(backlog) == len(consumers)
    for configuration in backlog:
        metrics = configuration["CustomizedMetricSpecification"]["Metrics"]
        names = {m.get("MetricStat", {}).get("Metric", {}).get("MetricName") for m in metrics}
        assert {"ApproximateNumberOfMessagesVisible", "RunningTaskCount"} <= names
        [expression] = [m for m in metrics if m.get("ReturnData")]
        assert expression["Expression"].endswith("/ running")
    steps = [p for p in policies.values() if p["Properties"]["PolicyType"] == "StepScaling"]
    assert len(steps) >= len(consumers)
    age_alarms = [
        a
        for a in prod.resources(LAYER, "AWS::CloudWatch::Alarm").values()
        if any(
            m.get("MetricStat", {}).get("Metric", {}).get("MetricName")
            == "ApproximateAgeOfOldestMessage"
            for m in a["Properties"].get("Metrics", [])
        )
    ]
    assert len(age_alarms) >= len(consumers)


# --- Least privilege (ECS Fargate, SNS + SQS, EventBridge, S3, Cognito pages) ------------------


def task_role_statements(prod: Synthesized) -> dict[str, list[dict]]:
    tasks = task_definitions(prod)
    return {
        name: policy_statements(prod, LAYER, role_id(prod, task["TaskRoleArn"]))
        for name, task in tasks.items()
    }


def test_every_service_has_its_own_task_and_execution_role(prod: Synthesized) -> None:
    tasks = task_definitions(prod).values()
    task_roles = [role_id(prod, t["TaskRoleArn"]) for t in tasks]
    execution_roles = [role_id(prod, t["ExecutionRoleArn"]) for t in tasks]
    assert len(set(task_roles)) == len(SERVICES)
    assert len(set(execution_roles)) == len(SERVICES)
    assert not set(task_roles) & set(execution_roles)
    roles = prod.resources(LAYER, "AWS::IAM::Role")
    for logical_id in task_roles + execution_roles:
        [statement] = roles[logical_id]["Properties"]["AssumeRolePolicyDocument"]["Statement"]
        assert statement["Principal"] == {"Service": "ecs-tasks.amazonaws.com"}
        assert statement["Condition"]["StringEquals"]["aws:SourceAccount"] == "111111111111"
        assert "ManagedPolicyArns" not in roles[logical_id]["Properties"]


def test_task_roles_name_their_actions_and_resources(prod: Synthesized) -> None:
    for name, statements in task_role_statements(prod).items():
        for statement in statements:
            actions = (
                statement["Action"]
                if isinstance(statement["Action"], list)
                else [statement["Action"]]
            )
            assert not any(a.endswith("*") for a in actions), (name, statement)
            if statement["Resource"] == "*":
                # X-Ray's span APIs take no resource.
                assert set(actions) == {"xray:PutSpans", "xray:PutSpansForIndexing"}, name
            forbidden = {"sqs:SendMessage", "events:PutRule", "events:PutTargets", "iam:PassRole"}
            assert not forbidden & set(actions), (name, statement)


def _actions(statements: list[dict]) -> dict[str, Any]:
    found: dict[str, Any] = {}
    for statement in statements:
        actions = (
            statement["Action"] if isinstance(statement["Action"], list) else [statement["Action"]]
        )
        for action in actions:
            found[action] = statement
    return found


def test_consumers_may_receive_only_from_their_own_queues(prod: Synthesized) -> None:
    statements = task_role_statements(prod)
    for service in SERVICES:
        actions = _actions(statements[service.name])
        if not service.consumes:
            assert "sqs:ReceiveMessage" not in actions, service.name
            continue
        statement = actions["sqs:ReceiveMessage"]
        assert set(statement["Action"]) == {
            "sqs:ReceiveMessage",
            "sqs:DeleteMessage",
            "sqs:ChangeMessageVisibility",
        }
        resources = (
            statement["Resource"]
            if isinstance(statement["Resource"], list)
            else [statement["Resource"]]
        )
        assert len(resources) == len(service.consumes), service.name


def test_only_the_relays_publish_events_and_only_their_own_source(prod: Synthesized) -> None:
    for name, statements in task_role_statements(prod).items():
        actions = _actions(statements)
        relay = name.endswith("-relay")
        assert ("events:PutEvents" in actions) == relay, name
        if relay:
            condition = actions["events:PutEvents"]["Condition"]
            assert condition == {"StringEquals": {"events:source": f"storefront.{name[:-6]}"}}


def test_only_the_notifications_worker_writes_receipts_and_only_under_its_prefix(
    prod: Synthesized,
) -> None:
    statements = task_role_statements(prod)
    notifications = _actions(statements["notifications"])
    statement = notifications["s3:PutObject"]
    assert statement["Action"] == "s3:PutObject"  # it writes receipts; it reads none
    assert statement["Resource"]["Fn::Join"][1][-1].endswith(
        f":s3:::{prod.settings.resource_prefix}-receipts/receipts/*"
    )
    for name, other in statements.items():
        if name != "notifications":
            assert not any(a.startswith("s3:") for a in _actions(other)), name


def test_only_the_accounts_service_administers_staff_and_only_in_the_staff_pool(
    prod: Synthesized,
) -> None:
    statements = task_role_statements(prod)
    accounts = _actions(statements["accounts"])
    statement = accounts["cognito-idp:AdminCreateUser"]
    assert "StaffPool" in str(statement["Resource"])
    assert "CustomerPool" not in str(statement["Resource"])
    for name, other in statements.items():
        if name != "accounts":
            assert not any(a.startswith("cognito-idp:") for a in _actions(other)), name


def test_database_access_is_one_iam_database_user_per_service(prod: Synthesized) -> None:
    for service in SERVICES:
        actions = _actions(task_role_statements(prod)[service.name])
        if service.database_user is None:
            assert "rds-db:connect" not in actions
            continue
        resource = actions["rds-db:connect"]["Resource"]
        assert resource["Fn::Join"][1][-1] == f"/{service.database_user}"


@pytest.mark.parametrize("service_name", ["cart", "event-store"])
def test_execution_roles_read_only_their_own_secrets(prod: Synthesized, service_name: str) -> None:
    task = task_definitions(prod)[service_name]
    statements = policy_statements(prod, LAYER, role_id(prod, task["ExecutionRoleArn"]))
    secrets = [s for s in statements if "secretsmanager:GetSecretValue" in s["Action"]]
    assert secrets
    for statement in secrets:
        assert statement["Resource"] != "*"
    decrypt = [s for s in statements if s.get("Sid") == "DecryptItsSecrets"]
    assert decrypt[0]["Condition"]["StringEquals"]["kms:ViaService"].startswith("secretsmanager.")
