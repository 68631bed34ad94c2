"""A small IAM policy evaluator for the subset of the policy language this repository uses.

It answers one question: does a set of policy statements allow one request (an action on a
resource, with some condition context)? It follows the documented evaluation logic for a single
policy type (https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_policies_evaluation-logic.html):
an explicit ``Deny`` that matches wins, else a matching ``Allow`` allows, else the request is
implicitly denied.

Supported, because the storefront's statements use it:

* ``Effect`` ``Allow`` / ``Deny``;
* ``Action`` / ``NotAction``, a string or a list, with ``*`` and ``?`` wildcards; action names are
  matched case-insensitively (IAM treats them so);
* ``Resource`` / ``NotResource`` with ``*`` and ``?`` wildcards (case-sensitive, as ARNs are);
* ``Principal`` (``"*"``, ``{"AWS": ...}``, ``{"Service": ...}``) for resource policies, matched
  exactly against the request's principal;
* ``Condition`` with the operators in :data:`SUPPORTED_OPERATORS`. Any other operator (or a
  ``ForAllValues:`` / ``ForAnyValue:`` / ``...IfExists`` form) raises
  :class:`UnsupportedConditionError`: a statement this evaluator cannot read is "not proven",
  never silently ignored.

Not modelled: permissions boundaries, SCPs, session policies, cross-account rules, policy
variables (``${aws:username}``), and key policies' delegation to IAM. The checks that use this
module say which policy they evaluate.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import cache
from typing import Any, Literal

Decision = Literal["allowed", "explicitly denied", "implicitly denied"]

# --8<-- [start:operators]
SUPPORTED_OPERATORS = frozenset(
    {"StringEquals", "StringLike", "ArnEquals", "ArnLike", "Bool", "IpAddress"}
)
# --8<-- [end:operators]


class UnsupportedConditionError(ValueError):
    """A statement uses a condition operator the evaluator does not implement."""


@dataclass(frozen=True)
class Request:
    """One authorization request.

    Attributes:
        action: ``service:Action`` as IAM names it (``sqs:ReceiveMessage``).
        resource: The resource's ARN.
        context: Condition keys and their values (``{"events:source": "storefront.orders"}``);
            a list value is a multi-valued key.
        principal: For resource policies: ``"AWS:<arn>"`` or ``"Service:<name>"``; None for
            identity policies (whose statements have no ``Principal``).
    """

    action: str
    resource: str
    context: Mapping[str, str | Sequence[str]] = field(default_factory=dict)
    principal: str | None = None


@dataclass(frozen=True)
class Evaluation:
    """The outcome of one request against a set of statements.

    Attributes:
        decision: ``allowed``, ``explicitly denied`` or ``implicitly denied``.
        allowed_by: The indexes (or ``Sid``) of the ``Allow`` statements that matched.
        denied_by: The indexes (or ``Sid``) of the ``Deny`` statements that matched.
    """

    decision: Decision
    allowed_by: tuple[str, ...] = ()
    denied_by: tuple[str, ...] = ()

    @property
    def allowed(self) -> bool:
        """Whether the request is allowed."""
        return self.decision == "allowed"


def as_list(value: Any) -> list[Any]:
    """A policy element's value as a list (IAM accepts a single string or a list)."""
    if value is None:
        return []
    return list(value) if isinstance(value, list | tuple) else [value]


# --8<-- [start:wildcards]
@cache
def _pattern(text: str, ignore_case: bool) -> re.Pattern[str]:
    """``*`` matches any run of characters, ``?`` exactly one; everything else is literal."""
    regex = "".join(
        ".*" if char == "*" else "." if char == "?" else re.escape(char) for char in text
    )
    return re.compile(f"^{regex}$", re.IGNORECASE | re.DOTALL if ignore_case else re.DOTALL)


def action_matches(pattern: str, action: str) -> bool:
    """Whether an ``Action`` entry covers an action (case-insensitive, ``*`` and ``?``)."""
    return bool(_pattern(pattern, True).match(action))


def resource_matches(pattern: str, resource: str) -> bool:
    """Whether a ``Resource`` entry covers an ARN (case-sensitive, ``*`` and ``?``)."""
    return bool(_pattern(pattern, False).match(resource))


# --8<-- [end:wildcards]


def _principal_matches(principal: Any, requested: str | None) -> bool:
    if principal is None:
        return True  # an identity policy: the statement applies to whoever holds it
    if requested is None:
        return False
    if principal == "*":
        return True
    if not isinstance(principal, Mapping):
        raise UnsupportedConditionError(f"unsupported Principal {principal!r}")
    kind, _, name = requested.partition(":")
    return any(value == "*" or value == name for value in as_list(principal.get(kind))) or (
        kind == "AWS" and "*" in as_list(principal.get("AWS"))
    )


def _condition_holds(operator: str, key: str, expected: Any, request: Request) -> bool:
    if operator not in SUPPORTED_OPERATORS:
        raise UnsupportedConditionError(
            f"condition operator {operator!r} (on {key}) is not supported; "
            f"supported: {sorted(SUPPORTED_OPERATORS)}"
        )
    if key not in request.context:
        return False  # a missing key fails every operator here (none is ...IfExists)
    actual = [str(value) for value in as_list(request.context[key])]
    wanted = [str(value) for value in as_list(expected)]
    if operator == "StringEquals" or operator == "ArnEquals":
        return any(value in wanted for value in actual)
    if operator == "StringLike" or operator == "ArnLike":
        return any(resource_matches(pattern, value) for pattern in wanted for value in actual)
    if operator == "Bool":
        return any(value.lower() in (w.lower() for w in wanted) for value in actual)
    # IpAddress
    return any(
        ipaddress.ip_address(value) in ipaddress.ip_network(cidr, strict=False)
        for cidr in wanted
        for value in actual
    )


def _conditions_hold(conditions: Mapping[str, Any] | None, request: Request) -> bool:
    """Every operator block and every key in it must hold (a logical AND)."""
    for operator, block in (conditions or {}).items():
        for key, expected in block.items():
            if not _condition_holds(operator, key, expected, request):
                return False
    return True


def statement_applies(statement: Mapping[str, Any], request: Request) -> bool:
    """Whether one statement's principal, action, resource and conditions cover the request.

    Raises:
        UnsupportedConditionError: The statement has an element or operator not supported.
    """
    unknown = set(statement) - {
        "Sid",
        "Effect",
        "Principal",
        "Action",
        "NotAction",
        "Resource",
        "NotResource",
        "Condition",
    }
    if unknown:
        raise UnsupportedConditionError(f"unsupported statement elements {sorted(unknown)}")
    if not _principal_matches(statement.get("Principal"), request.principal):
        return False
    if "Action" in statement:
        if not any(action_matches(p, request.action) for p in as_list(statement["Action"])):
            return False
    elif any(action_matches(p, request.action) for p in as_list(statement.get("NotAction"))):
        return False
    if "Resource" in statement:
        if not any(resource_matches(p, request.resource) for p in as_list(statement["Resource"])):
            return False
    elif any(resource_matches(p, request.resource) for p in as_list(statement.get("NotResource"))):
        return False
    return _conditions_hold(statement.get("Condition"), request)


# --8<-- [start:evaluate]
def evaluate(statements: Iterable[Mapping[str, Any]], request: Request) -> Evaluation:
    """Evaluate a request against statements: an explicit Deny wins, then any Allow.

    Every statement is read, including those after a match, so that an unsupported condition
    anywhere in the policy raises instead of being skipped.

    Raises:
        UnsupportedConditionError: A statement the evaluator cannot read.
    """
    allowed: list[str] = []
    denied: list[str] = []
    for index, statement in enumerate(statements):
        name = str(statement.get("Sid", index))
        if statement_applies(statement, request):
            (denied if statement["Effect"] == "Deny" else allowed).append(name)
    if denied:
        return Evaluation("explicitly denied", tuple(allowed), tuple(denied))
    if allowed:
        return Evaluation("allowed", tuple(allowed))
    return Evaluation("implicitly denied")


# --8<-- [end:evaluate]


# --- Broad grants ------------------------------------------------------------------------------

# --8<-- [start:no-resource-actions]
# Actions that support no resource-level permission: IAM accepts only "Resource": "*" for them.
# Each cites the Service Authorization Reference page whose "Resource types" column is empty.
ACTIONS_WITHOUT_RESOURCE_TYPES: dict[str, str] = {
    "xray:PutSpans": "https://docs.aws.amazon.com/service-authorization/latest/reference/list_awsx-ray.html",
    "xray:PutSpansForIndexing": "https://docs.aws.amazon.com/service-authorization/latest/reference/list_awsx-ray.html",
    "ecr:GetAuthorizationToken": "https://docs.aws.amazon.com/service-authorization/latest/reference/list_amazonelasticcontainerregistry.html",
}
# --8<-- [end:no-resource-actions]

KEY_POLICY_TYPES = frozenset({"AWS::KMS::Key"})


@dataclass(frozen=True)
class BroadGrant:
    """A statement that grants more than a narrower statement could.

    Attributes:
        location: ``<logical id>.<property path>.Statement[<n>]``.
        reason: What is too broad.
    """

    location: str
    reason: str


def policy_documents(template: Mapping[str, Any]) -> Iterable[tuple[str, str, Mapping[str, Any]]]:
    """Every policy document in a template: ``(location, resource type, document)``."""

    def walk(value: Any, path: str) -> Iterable[tuple[str, Mapping[str, Any]]]:
        if isinstance(value, Mapping):
            if isinstance(value.get("Statement"), list | Mapping) and "Version" in value:
                yield path, value
                return
            for key, inner in value.items():
                yield from walk(inner, f"{path}.{key}")
        elif isinstance(value, list):
            for index, inner in enumerate(value):
                yield from walk(inner, f"{path}[{index}]")

    for logical_id, resource in template.get("Resources", {}).items():
        for path, document in walk(resource.get("Properties", {}), logical_id):
            yield path, resource["Type"], document


# --8<-- [start:broad-grants]
def broad_grants(template: Mapping[str, Any]) -> list[BroadGrant]:
    """The Allow statements of a template that use ``*`` where a narrower grant works.

    * ``Action`` ``"*"`` or ``"<service>:*"`` (or any ``NotAction``) in an Allow statement;
    * ``Resource`` ``"*"`` in an identity policy for an action that supports resource-level
      permissions (:data:`ACTIONS_WITHOUT_RESOURCE_TYPES` lists the ones that do not).

    Deny statements may be broad (they only take away). In a KMS key policy ``"Resource": "*"``
    means "this key" (https://docs.aws.amazon.com/kms/latest/developerguide/key-policy-overview.html),
    so key policies are checked for actions only, and their default statement, which gives the
    account (``:root``) ``kms:*`` so that IAM policies can grant use of the key
    (https://docs.aws.amazon.com/kms/latest/developerguide/key-policy-default.html), is allowed.
    """
    found: list[BroadGrant] = []
    for path, resource_type, document in policy_documents(template):
        for index, statement in enumerate(as_list(document["Statement"])):
            if statement.get("Effect") != "Allow":
                continue
            where = f"{path}.Statement[{index}]"
            if "NotAction" in statement:
                found.append(BroadGrant(where, "NotAction in an Allow statement"))
            actions = [str(a) for a in as_list(statement.get("Action"))]
            default_key_statement = (
                resource_type in KEY_POLICY_TYPES
                and actions == ["kms:*"]
                and _is_account_root(statement.get("Principal"))
            )
            for action in actions:
                if (action == "*" or action.endswith(":*")) and not default_key_statement:
                    found.append(BroadGrant(where, f"Action {action!r}"))
            if resource_type in KEY_POLICY_TYPES or "Principal" in statement:
                continue  # resource policies: the resource is the one the policy is attached to
            if "*" in as_list(statement.get("Resource")):
                for action in actions:
                    if action not in ACTIONS_WITHOUT_RESOURCE_TYPES:
                        found.append(
                            BroadGrant(where, f"Resource '*' for {action}, which takes resources")
                        )
    return found


# --8<-- [end:broad-grants]


def _is_account_root(principal: Any) -> bool:
    """Whether a principal is ``{"AWS": <...:root>}`` (a Fn::Join of the root ARN counts)."""
    if not isinstance(principal, Mapping):
        return False
    return ":root" in repr(principal.get("AWS"))
