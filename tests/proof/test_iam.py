"""The IAM evaluator and the template resolver the least-privilege proof stands on."""

from __future__ import annotations

import pytest

from tests.proof.cloudformation import Place, ResolutionError, Resolver
from tests.proof.iam import (
    Request,
    UnsupportedConditionError,
    action_matches,
    broad_grants,
    evaluate,
    resource_matches,
)

QUEUE = "arn:aws:sqs:eu-west-1:111111111111:storefront-prod-fulfillment"
RECEIVE = {"Effect": "Allow", "Action": "sqs:ReceiveMessage", "Resource": QUEUE}


def test_a_matching_allow_statement_allows_the_request() -> None:
    decision = evaluate([RECEIVE], Request("sqs:ReceiveMessage", QUEUE))
    assert decision.allowed
    assert decision.allowed_by == ("0",)


def test_no_matching_statement_means_an_implicit_deny() -> None:
    assert evaluate([RECEIVE], Request("sqs:SendMessage", QUEUE)).decision == "implicitly denied"
    other_queue = QUEUE.replace("fulfillment", "analytics")
    assert evaluate([RECEIVE], Request("sqs:ReceiveMessage", other_queue)).decision == (
        "implicitly denied"
    )


def test_an_explicit_deny_wins_over_any_allow() -> None:
    deny = {"Sid": "NoSqs", "Effect": "Deny", "Action": "sqs:*", "Resource": "*"}
    decision = evaluate([RECEIVE, deny], Request("sqs:ReceiveMessage", QUEUE))
    assert decision.decision == "explicitly denied"
    assert decision.denied_by == ("NoSqs",)


def test_action_names_match_case_insensitively_with_wildcards() -> None:
    assert action_matches("sqs:receive*", "SQS:ReceiveMessage")
    assert action_matches("sqs:?eceiveMessage", "sqs:ReceiveMessage")
    assert not action_matches("sqs:Receive", "sqs:ReceiveMessage")  # no implicit prefix match
    assert not action_matches("sns:*", "sqs:ReceiveMessage")


def test_resource_wildcards_match_any_run_or_one_character_and_nothing_else() -> None:
    prefix = "arn:aws:s3:::storefront-prod-receipts/receipts/*"
    assert resource_matches(prefix, "arn:aws:s3:::storefront-prod-receipts/receipts/2026/12/a.pdf")
    assert not resource_matches(prefix, "arn:aws:s3:::storefront-prod-receipts/orders/a.pdf")
    assert resource_matches("arn:aws:sqs:eu-west-1:*:q?", "arn:aws:sqs:eu-west-1:111111111111:q1")
    assert not resource_matches("arn:aws:sqs:eu-west-1:*:q?", "arn:aws:sqs:eu-west-1:1:q12")
    assert not resource_matches("arn:aws:sqs:*:*:[ab]", "arn:aws:sqs:x:y:a")  # [] is literal
    assert not resource_matches(QUEUE.upper(), QUEUE)  # ARNs are case-sensitive


def test_not_action_allows_everything_except_the_named_actions() -> None:
    statement = {"Effect": "Allow", "NotAction": "sqs:Delete*", "Resource": QUEUE}
    assert evaluate([statement], Request("sqs:ReceiveMessage", QUEUE)).allowed
    assert not evaluate([statement], Request("sqs:DeleteMessage", QUEUE)).allowed


def test_a_condition_must_hold_for_the_statement_to_apply() -> None:
    bus = "arn:aws:events:eu-west-1:111111111111:event-bus/storefront-prod-events"
    statement = {
        "Effect": "Allow",
        "Action": "events:PutEvents",
        "Resource": bus,
        "Condition": {"StringEquals": {"events:source": "storefront.orders"}},
    }
    own = Request("events:PutEvents", bus, {"events:source": "storefront.orders"})
    other = Request("events:PutEvents", bus, {"events:source": "storefront.fulfillment"})
    assert evaluate([statement], own).allowed
    assert not evaluate([statement], other).allowed
    assert not evaluate([statement], Request("events:PutEvents", bus)).allowed  # key missing


def test_principals_and_arn_conditions_of_a_queue_policy() -> None:
    rule = "arn:aws:events:eu-west-1:111111111111:rule/storefront-prod-events/to-fulfillment"
    statement = {
        "Effect": "Allow",
        "Principal": {"Service": "events.amazonaws.com"},
        "Action": "sqs:SendMessage",
        "Resource": QUEUE,
        "Condition": {"ArnEquals": {"aws:SourceArn": rule}},
    }

    def send(principal: str, source: str) -> bool:
        request = Request("sqs:SendMessage", QUEUE, {"aws:SourceArn": source}, principal)
        return evaluate([statement], request).allowed

    assert send("Service:events.amazonaws.com", rule)
    assert not send("Service:events.amazonaws.com", rule.replace("fulfillment", "analytics"))
    assert not send("Service:sns.amazonaws.com", rule)
    assert not send("AWS:arn:aws:iam::999999999999:root", rule)


def test_bool_and_ip_conditions() -> None:
    statement = {
        "Effect": "Allow",
        "Principal": "*",
        "Action": "s3:GetObject",
        "Resource": "arn:aws:s3:::assets/*",
        "Condition": {
            "IpAddress": {"aws:SourceIp": ["173.245.48.0/20"]},
            "Bool": {"aws:SecureTransport": "true"},
        },
    }
    inside = {"aws:SourceIp": "173.245.48.7", "aws:SecureTransport": "true"}
    outside = {"aws:SourceIp": "203.0.113.7", "aws:SecureTransport": "true"}
    plain = {"aws:SourceIp": "173.245.48.7", "aws:SecureTransport": "false"}
    for context, allowed in ((inside, True), (outside, False), (plain, False)):
        request = Request("s3:GetObject", "arn:aws:s3:::assets/a.css", context, "AWS:*")
        assert evaluate([statement], request).allowed is allowed, context


@pytest.mark.parametrize(
    "condition",
    [
        {"NumericLessThan": {"aws:MultiFactorAuthAge": "3600"}},
        {"ForAllValues:StringEquals": {"kms:GrantOperations": ["Decrypt"]}},
        {"StringEqualsIfExists": {"aws:SourceAccount": "111111111111"}},
    ],
)
def test_an_unsupported_condition_raises_instead_of_being_ignored(condition: dict) -> None:
    statement = {**RECEIVE, "Condition": condition}
    with pytest.raises(UnsupportedConditionError, match="not supported"):
        evaluate([statement], Request("sqs:ReceiveMessage", QUEUE))


def test_an_unsupported_statement_later_in_the_policy_still_raises() -> None:
    later = {"Effect": "Allow", "NotPrincipal": {"AWS": "*"}, "Action": "*", "Resource": "*"}
    with pytest.raises(UnsupportedConditionError, match="NotPrincipal"):
        evaluate([RECEIVE, later], Request("sqs:ReceiveMessage", QUEUE))


def _template(statements: list[dict], resource_type: str = "AWS::IAM::Policy") -> dict:
    key = "KeyPolicy" if resource_type == "AWS::KMS::Key" else "PolicyDocument"
    document = {"Version": "2012-10-17", "Statement": statements}
    return {"Resources": {"P": {"Type": resource_type, "Properties": {key: document}}}}


def test_wildcard_actions_and_resources_are_reported_with_their_location() -> None:
    found = broad_grants(
        _template(
            [
                RECEIVE,
                {"Effect": "Allow", "Action": "sqs:*", "Resource": QUEUE},
                {"Effect": "Allow", "Action": "s3:GetObject", "Resource": "*"},
                {"Effect": "Allow", "Action": "xray:PutSpans", "Resource": "*"},
                {"Effect": "Deny", "Action": "*", "Resource": "*"},
            ]
        )
    )
    assert [(g.location, g.reason) for g in found] == [
        ("P.PolicyDocument.Statement[1]", "Action 'sqs:*'"),
        ("P.PolicyDocument.Statement[2]", "Resource '*' for s3:GetObject, which takes resources"),
    ]


def test_a_key_policy_may_name_this_key_as_star_and_keep_the_default_root_statement() -> None:
    root = {"Fn::Join": ["", ["arn:", {"Ref": "AWS::Partition"}, ":iam::111111111111:root"]]}
    default = {"Effect": "Allow", "Principal": {"AWS": root}, "Action": "kms:*", "Resource": "*"}
    others = {"Effect": "Allow", "Principal": {"AWS": "*"}, "Action": "kms:*", "Resource": "*"}
    assert broad_grants(_template([default], "AWS::KMS::Key")) == []
    assert [g.reason for g in broad_grants(_template([others], "AWS::KMS::Key"))] == [
        "Action 'kms:*'"
    ]


# --- The resolver ------------------------------------------------------------------------------

TEMPLATES = {
    "app-messaging": {
        "Resources": {
            "Queue": {"Type": "AWS::SQS::Queue", "Properties": {"QueueName": "app-orders"}},
            "Odd": {"Type": "AWS::Some::Thing", "Properties": {}},
        },
        "Outputs": {
            "QueueArn": {
                "Value": {"Fn::GetAtt": ["Queue", "Arn"]},
                "Export": {"Name": "app-messaging:QueueArn"},
            }
        },
    },
    "app-compute": {"Resources": {}},
}
RESOLVER = Resolver(TEMPLATES, Place(account="111111111111", region="eu-west-1"))


def test_the_resolver_follows_imports_joins_subs_and_splits_to_concrete_arns() -> None:
    imported = {"Fn::ImportValue": "app-messaging:QueueArn"}
    assert RESOLVER.resolve(imported, "app-compute", "here") == (
        "arn:aws:sqs:eu-west-1:111111111111:app-orders"
    )
    joined = {"Fn::Join": [":", ["arn", {"Ref": "AWS::Partition"}, "x"]]}
    assert RESOLVER.resolve(joined, "app-compute", "here") == "arn:aws:x"
    sub = {"Fn::Sub": "${Queue.QueueName}-in-${AWS::Region}"}
    assert RESOLVER.resolve(sub, "app-messaging", "here") == "app-orders-in-eu-west-1"
    select = {"Fn::Select": [5, {"Fn::Split": [":", imported]}]}
    assert RESOLVER.resolve(select, "app-compute", "here") == "app-orders"


@pytest.mark.parametrize(
    ("fragment", "message"),
    [
        ({"Fn::GetAtt": ["Odd", "Arn"]}, r"Policy\.Fn::GetAtt: cannot resolve Arn of Odd"),
        ({"Fn::GetAtt": ["Queue", "Nope"]}, "cannot resolve Nope of Queue"),
        ({"Ref": "Missing"}, "has no resource Missing"),
        ({"Fn::If": ["C", "a", "b"]}, r"Policy\.Fn::If: intrinsic function Fn::If"),
        ({"Fn::ImportValue": "elsewhere:X"}, "no stack exports elsewhere:X"),
    ],
)
def test_an_intrinsic_the_resolver_does_not_know_fails_with_its_location(
    fragment: dict, message: str
) -> None:
    with pytest.raises(ResolutionError, match=message):
        RESOLVER.resolve(fragment, "app-messaging", "Policy")
