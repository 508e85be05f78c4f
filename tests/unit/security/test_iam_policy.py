"""IAM policy evaluation as MSK applies it to Kafka's authorization checks."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pytest

from msklite.authz import AclOperation, Action, ResourceType
from msklite.security.iam_policy import (
    IamPolicies,
    IamPolicyAuthorizer,
    IamResources,
    parse_policy,
)

ARN = "arn:aws:iam::123456789012:role/app"
RES = IamResources("uuid-1")
TOPIC = "arn:aws:kafka:*:*:topic/*/*/"


@dataclass
class _Session:
    principal: str = f"User:{ARN}"
    client_host: str = "127.0.0.1"
    listener: str = "CLIENT_IAM"


def _policy(*statements: dict[str, Any]) -> dict[str, Any]:
    return {"Version": "2012-10-17", "Statement": list(statements)}


def _authorizer(*statements: dict[str, Any]) -> IamPolicyAuthorizer:
    policies = IamPolicies()
    policies.attach(ARN, _policy(*statements))
    return IamPolicyAuthorizer(policies, RES)


def _allowed(auth: IamPolicyAuthorizer, op: AclOperation, rt: ResourceType, name: str) -> bool:
    return auth.authorize(_Session(), [Action(op, rt, name)])[0]


def test_each_kafka_check_is_one_msk_action_on_one_arn() -> None:
    auth = _authorizer(
        {"Effect": "Allow", "Action": "kafka-cluster:WriteData", "Resource": TOPIC + "orders"},
        {"Effect": "Allow", "Action": "kafka-cluster:AlterGroup", "Resource": "*"},
    )
    assert _allowed(auth, AclOperation.WRITE, ResourceType.TOPIC, "orders")
    assert not _allowed(auth, AclOperation.WRITE, ResourceType.TOPIC, "payments")
    # WriteData does not imply DescribeTopic: MSK lists it as a required action
    assert not _allowed(auth, AclOperation.DESCRIBE, ResourceType.TOPIC, "orders")
    assert _allowed(auth, AclOperation.READ, ResourceType.GROUP, "g1")  # READ GROUP: AlterGroup
    assert not _allowed(auth, AclOperation.DESCRIBE, ResourceType.GROUP, "g1")
    # internal cluster actions are not for IAM clients
    assert not _allowed(auth, AclOperation.CLUSTER_ACTION, ResourceType.CLUSTER, "kafka-cluster")


def test_resource_arns_have_msks_forms() -> None:
    assert RES.arn(ResourceType.CLUSTER, "kafka-cluster") == (
        "arn:aws:kafka:us-east-1:000000000000:cluster/msklite/uuid-1"
    )
    assert RES.arn(ResourceType.TRANSACTIONAL_ID, "tx") == (
        "arn:aws:kafka:us-east-1:000000000000:transactional-id/msklite/uuid-1/tx"
    )


def test_wildcards_and_an_explicit_deny_winning() -> None:
    auth = _authorizer(
        {"Effect": "Allow", "Action": "kafka-cluster:*Data", "Resource": TOPIC + "*"},
        {"Effect": "Deny", "Action": "KAFKA-CLUSTER:writedata", "Resource": TOPIC + "audit-?"},
    )
    assert _allowed(auth, AclOperation.READ, ResourceType.TOPIC, "audit-1")
    assert not _allowed(auth, AclOperation.WRITE, ResourceType.TOPIC, "audit-1")
    assert _allowed(auth, AclOperation.WRITE, ResourceType.TOPIC, "audit-12")  # ? is one char
    assert _allowed(auth, AclOperation.WRITE, ResourceType.TOPIC, "orders")


def test_not_action_and_not_resource() -> None:
    auth = _authorizer(
        {"Effect": "Allow", "NotAction": "kafka-cluster:DeleteTopic", "Resource": "*"},
        {"Effect": "Deny", "Action": "kafka-cluster:ReadData", "NotResource": TOPIC + "pub-*"},
    )
    assert not _allowed(auth, AclOperation.DELETE, ResourceType.TOPIC, "t")
    assert _allowed(auth, AclOperation.READ, ResourceType.TOPIC, "pub-1")
    assert not _allowed(auth, AclOperation.READ, ResourceType.TOPIC, "private")


def test_without_policies_everything_is_allowed_and_with_one_others_get_nothing() -> None:
    policies = IamPolicies()
    auth = IamPolicyAuthorizer(policies, RES)
    assert _allowed(auth, AclOperation.WRITE, ResourceType.TOPIC, "t")
    assert policies.may_connect(ARN, RES.arn(ResourceType.CLUSTER, ""))
    policies.attach(
        "arn:aws:iam::1:user/other", _policy({"Effect": "Allow", "Action": "*", "Resource": "*"})
    )
    assert not _allowed(auth, AclOperation.WRITE, ResourceType.TOPIC, "t")
    assert not policies.may_connect(ARN, RES.arn(ResourceType.CLUSTER, ""))


def test_authorize_by_resource_type() -> None:
    session = _Session()
    some = _authorizer(
        {"Effect": "Allow", "Action": "kafka-cluster:WriteData", "Resource": TOPIC + "o*"}
    )
    assert some.authorize_by_resource_type(session, AclOperation.WRITE, ResourceType.TOPIC)
    assert not some.authorize_by_resource_type(session, AclOperation.READ, ResourceType.TOPIC)
    groups_only = _authorizer(
        {
            "Effect": "Allow",
            "Action": "kafka-cluster:WriteData",
            "Resource": "arn:aws:kafka:*:*:group/*",
        }
    )
    assert not groups_only.authorize_by_resource_type(
        session, AclOperation.WRITE, ResourceType.TOPIC
    )
    denied_all = _authorizer(
        {"Effect": "Allow", "Action": "kafka-cluster:WriteData", "Resource": "*"},
        {"Effect": "Deny", "Action": "kafka-cluster:WriteData", "Resource": TOPIC + "*"},
    )
    assert not denied_all.authorize_by_resource_type(
        session, AclOperation.WRITE, ResourceType.TOPIC
    )


@pytest.mark.parametrize(
    ("statement", "error"),
    [
        (
            {"Condition": {"IpAddress": {"aws:SourceIp": "10.0.0.0/8"}}},
            "Condition is not supported",
        ),
        ({"Principal": "*"}, "Principal is not supported"),
        ({"Action": "kafka-cluster:Produce"}, "unknown action"),
        ({"Action": "s3:GetObject"}, "not a kafka-cluster: action"),
        ({"Effect": "Maybe"}, "Effect is Allow or Deny"),
        ({"NotResource": "*"}, "exactly one of Resource and NotResource"),
        ({"Resource": []}, "Resource is a string or a list"),
        ({"Sids": "x"}, "unknown statement fields"),
    ],
)
def test_what_a_policy_cannot_say_is_refused_at_load(statement: dict[str, Any], error: str) -> None:
    base = {"Effect": "Allow", "Action": "kafka-cluster:Connect", "Resource": "*"}
    with pytest.raises(ValueError, match=error):
        parse_policy(_policy({**base, **statement}))
    with pytest.raises(ValueError, match="not JSON"):
        parse_policy("{")
