"""Resolve the synthesized templates' intrinsic functions to the values a deployment would have.

A task role's policy names its resources with ``Ref``, ``Fn::GetAtt``, ``Fn::Join``,
``Fn::Sub``, ``Fn::Select``, ``Fn::Split`` and ``Fn::ImportValue`` (the CDK's cross-stack
references). :class:`Resolver` evaluates them over all the app's templates: pseudo parameters
come from the test's account and Region, an import from the exporting stack's ``Outputs``, and a
resource's ``Ref`` and attributes from :data:`RESOURCE_VALUES`, which builds them the way AWS
does from the names the templates (and so :mod:`storefront.topology`) give the resources. Where
AWS makes up an identifier at creation (a KMS key id, an RDS Proxy's resource id, a user pool
id), the resolver uses a stand-in derived from the logical id, marked ``stand-in``; the checks
compare ARNs built by the same resolver, so a stand-in never hides a mismatch of names.

Anything the resolver does not know (a function, a resource type, an attribute) raises
:class:`ResolutionError` with its location in the template, rather than guessing.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any


class ResolutionError(ValueError):
    """An intrinsic function or resource attribute the resolver cannot evaluate."""


@dataclass(frozen=True)
class Place:
    """Where a resource lives: its account, Region and partition."""

    account: str
    region: str
    partition: str = "aws"

    def arn(self, service: str, resource: str, *, regional: bool = True) -> str:
        """An ARN in this account (and Region, unless the service is global)."""
        region = self.region if regional else ""
        account = self.account if service != "s3" else ""
        return f"arn:{self.partition}:{service}:{region}:{account}:{resource}"


Values = dict[str, str]


def _stand_in(logical_id: str) -> str:
    return f"stand-in-{logical_id.lower()}"


def _name(props: Mapping[str, Any], key: str, logical_id: str) -> str:
    value = props.get(key)
    if not isinstance(value, str):
        raise ResolutionError(f"{logical_id}: {key} is not a literal name ({value!r})")
    return value


# --8<-- [start:resource-values]
def _queue(place: Place, lid: str, p: Mapping[str, Any]) -> Values:
    name = _name(p, "QueueName", lid)
    url = f"https://sqs.{place.region}.amazonaws.com/{place.account}/{name}"
    return {"Ref": url, "Arn": place.arn("sqs", name), "QueueName": name, "QueueUrl": url}


def _topic(place: Place, lid: str, p: Mapping[str, Any]) -> Values:
    arn = place.arn("sns", _name(p, "TopicName", lid))
    return {"Ref": arn, "TopicArn": arn, "TopicName": _name(p, "TopicName", lid)}


def _bus(place: Place, lid: str, p: Mapping[str, Any]) -> Values:
    name = _name(p, "Name", lid)
    return {"Ref": name, "Name": name, "Arn": place.arn("events", f"event-bus/{name}")}


def _key(place: Place, lid: str, p: Mapping[str, Any]) -> Values:
    key_id = _stand_in(lid)  # AWS assigns a UUID at creation
    return {"Ref": key_id, "KeyId": key_id, "Arn": place.arn("kms", f"key/{key_id}")}


def _log_group(place: Place, lid: str, p: Mapping[str, Any]) -> Values:
    name = _name(p, "LogGroupName", lid)
    # Fn::GetAtt Arn of a log group ends in ":*".
    return {"Ref": name, "Arn": place.arn("logs", f"log-group:{name}:*")}


def _proxy(place: Place, lid: str, p: Mapping[str, Any]) -> Values:
    name = _name(p, "DBProxyName", lid)
    arn = place.arn("rds", f"db-proxy:prx-{_stand_in(lid)}")  # the resource id is AWS's
    return {
        "Ref": name,
        "DBProxyArn": arn,
        "Endpoint": f"{name}.proxy-stand-in.{place.region}.rds.amazonaws.com",
    }


def _user_pool(place: Place, lid: str, p: Mapping[str, Any]) -> Values:
    pool_id = f"{place.region}_{_stand_in(lid)}"
    return {"Ref": pool_id, "Arn": place.arn("cognito-idp", f"userpool/{pool_id}")}


def _bucket(place: Place, lid: str, p: Mapping[str, Any]) -> Values:
    name = _name(p, "BucketName", lid)
    return {"Ref": name, "Arn": place.arn("s3", name, regional=False)}


RESOURCE_VALUES: dict[str, Callable[[Place, str, Mapping[str, Any]], Values]] = {
    "AWS::SQS::Queue": _queue,
    "AWS::SNS::Topic": _topic,
    "AWS::Events::EventBus": _bus,
    "AWS::KMS::Key": _key,
    "AWS::Logs::LogGroup": _log_group,
    "AWS::RDS::DBProxy": _proxy,
    "AWS::Cognito::UserPool": _user_pool,
    "AWS::S3::Bucket": _bucket,
}
# --8<-- [end:resource-values]

_SUB = re.compile(r"\$\{([^}!][^}]*)\}")


class Resolver:
    """Evaluates intrinsic functions over the templates of one app.

    Args:
        templates: Every stack's template, by stack name.
        place: The account, Region and partition the app deploys to.
    """

    def __init__(self, templates: Mapping[str, Mapping[str, Any]], place: Place) -> None:
        self.templates = templates
        self.place = place
        self._exports: dict[str, tuple[str, Any]] = {}
        for stack, template in templates.items():
            for output in template.get("Outputs", {}).values():
                if "Export" in output:
                    self._exports[str(output["Export"]["Name"])] = (stack, output["Value"])

    def pseudo(self, name: str, stack: str) -> str:
        """A pseudo parameter's value.

        Raises:
            ResolutionError: An unknown pseudo parameter.
        """
        values = {
            "AWS::Partition": self.place.partition,
            "AWS::Region": self.place.region,
            "AWS::AccountId": self.place.account,
            "AWS::URLSuffix": "amazonaws.com",
            "AWS::StackName": stack,
        }
        if name not in values:
            raise ResolutionError(f"{stack}: unknown pseudo parameter {name}")
        return values[name]

    def attribute(self, stack: str, logical_id: str, attribute: str, where: str) -> str:
        """``Ref`` (``attribute="Ref"``) or ``Fn::GetAtt`` of a resource.

        Raises:
            ResolutionError: No such resource, type or attribute.
        """
        resources = self.templates[stack].get("Resources", {})
        if logical_id not in resources:
            raise ResolutionError(f"{where}: {stack} has no resource {logical_id}")
        resource = resources[logical_id]
        builder = RESOURCE_VALUES.get(resource["Type"])
        if builder is None:
            raise ResolutionError(
                f"{where}: cannot resolve {attribute} of {logical_id} ({resource['Type']})"
            )
        values = builder(self.place, logical_id, resource.get("Properties", {}))
        if attribute not in values:
            raise ResolutionError(
                f"{where}: cannot resolve {attribute} of {logical_id} ({resource['Type']})"
            )
        return values[attribute]

    # --8<-- [start:resolve]
    def resolve(self, value: Any, stack: str, where: str) -> Any:
        """``value`` with every intrinsic function evaluated, in the context of ``stack``.

        Args:
            value: A template fragment.
            stack: The stack the fragment belongs to.
            where: Its location, for error messages.

        Raises:
            ResolutionError: A function or attribute the resolver does not know.
        """
        if isinstance(value, list):
            return [self.resolve(v, stack, f"{where}[{i}]") for i, v in enumerate(value)]
        if not isinstance(value, Mapping):
            return value
        key = next(iter(value), "")
        if len(value) != 1 or not (key == "Ref" or key.startswith("Fn::")):
            return {k: self.resolve(v, stack, f"{where}.{k}") for k, v in value.items()}
        function, argument = next(iter(value.items()))
        here = f"{where}.{function}"
        if function == "Ref":
            if str(argument).startswith("AWS::"):
                return self.pseudo(str(argument), stack)
            return self.attribute(stack, str(argument), "Ref", here)
        if function == "Fn::GetAtt":
            logical_id, attribute = (
                argument if isinstance(argument, list) else str(argument).split(".", 1)
            )
            return self.attribute(stack, logical_id, attribute, here)
        if function == "Fn::Join":
            separator, parts = argument
            return str(separator).join(str(p) for p in self.resolve(parts, stack, here))
        if function == "Fn::Select":
            index, items = argument
            return self.resolve(items, stack, here)[int(self.resolve(index, stack, here))]
        if function == "Fn::Split":
            separator, text = argument
            return str(self.resolve(text, stack, here)).split(str(separator))
        if function == "Fn::ImportValue":
            name = str(self.resolve(argument, stack, here))
            if name not in self._exports:
                raise ResolutionError(f"{here}: no stack exports {name}")
            exporter, exported = self._exports[name]
            return self.resolve(exported, exporter, f"{exporter}.Outputs[{name}]")
        if function == "Fn::Sub":
            text, variables = (argument, {}) if isinstance(argument, str) else argument
            bound = {k: self.resolve(v, stack, f"{here}.{k}") for k, v in variables.items()}

            def substitute(match: re.Match[str]) -> str:
                name = match.group(1)
                if name in bound:
                    return str(bound[name])
                if name.startswith("AWS::"):
                    return self.pseudo(name, stack)
                logical_id, _, attribute = name.partition(".")
                return self.attribute(stack, logical_id, attribute or "Ref", here)

            return _SUB.sub(substitute, str(text))
        raise ResolutionError(f"{here}: intrinsic function {function} is not supported")

    # --8<-- [end:resolve]


@dataclass(frozen=True)
class TaskRole:
    """One service's task role, with its policy resolved to concrete ARNs.

    Attributes:
        service: The service (the task definition's family without the prefix).
        logical_id: The role's logical id in the compute stack.
        statements: Its statements, every value resolved.
    """

    service: str
    logical_id: str
    statements: tuple[Mapping[str, Any], ...]


def task_roles(resolver: Resolver, compute_stack: str, prefix: str) -> dict[str, TaskRole]:
    """Each service's task role, found through its task definition, with resolved statements.

    Args:
        resolver: The app's resolver.
        compute_stack: The compute stack's name.
        prefix: The resource prefix (task definition families are ``<prefix>-<service>``).

    Raises:
        ResolutionError: A task role with managed or inline policies (grants this check does
            not see), or a value the resolver cannot evaluate.
    """
    resources = resolver.templates[compute_stack]["Resources"]
    roles: dict[str, str] = {}
    for resource in resources.values():
        if resource["Type"] != "AWS::ECS::TaskDefinition":
            continue
        properties = resource["Properties"]
        family = str(properties["Family"])
        role_id = properties["TaskRoleArn"]["Fn::GetAtt"][0]
        roles[role_id] = family.removeprefix(f"{prefix}-")
        role = resources[role_id]["Properties"]
        if role.get("ManagedPolicyArns") or role.get("Policies"):
            raise ResolutionError(f"{role_id}: managed or inline policies are not checked")
    statements: dict[str, list[Mapping[str, Any]]] = {role_id: [] for role_id in roles}
    for logical_id, resource in resources.items():
        if resource["Type"] != "AWS::IAM::Policy":
            continue
        attached = [ref["Ref"] for ref in resource["Properties"].get("Roles", [])]
        for role_id in set(attached) & set(roles):
            document = resolver.resolve(
                resource["Properties"]["PolicyDocument"], compute_stack, logical_id
            )
            statements[role_id].extend(document["Statement"])
    return {
        service: TaskRole(service, role_id, tuple(statements[role_id]))
        for role_id, service in roles.items()
    }
