"""Kafka ACLs over real sockets: CreateAcls/DescribeAcls/DeleteAcls from confluent-kafka's and
kafka-python's admin clients, kept across a restart, and enforced for SCRAM users (per-topic,
per-group and cluster errors as Kafka answers them)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest
from aiokafka import AIOKafkaProducer
from aiokafka.errors import TopicAuthorizationFailedError
from aiokafka.helpers import create_ssl_context
from confluent_kafka import Consumer, KafkaException, Producer
from confluent_kafka import KafkaError as ConfluentError
from confluent_kafka.admin import (
    AclBinding,
    AclBindingFilter,
    AclOperation,
    AclPermissionType,
    AdminClient,
    ResourcePatternType,
    ResourceType,
)
from kafka import KafkaProducer
from kafka.admin import (
    ACL,
    ACLFilter,
    ACLOperation,
    ACLPermissionType,
    ACLResourcePatternType,
    KafkaAdminClient,
    ResourcePattern,
    ResourcePatternFilter,
)
from kafka.admin import ResourceType as KpResourceType
from kafka.errors import ClusterAuthorizationFailedError
from kafka.errors import TopicAuthorizationFailedError as KafkaPythonTopicAuthorizationFailed

from msklite import Cluster
from msklite.protocol.api_keys import ApiKey
from msklite.protocol.spec_messages import CreateAclsRequest, DeleteAclsRequest, DescribeAclsRequest
from tests.integration.rawclient import RawClient

ALLOW, DENY = AclPermissionType.ALLOW, AclPermissionType.DENY
# A filter's "any name / principal / host" (confluent-kafka's stubs type these str).
NULL: Any = None


def _binding(
    name: str,
    op: AclOperation,
    principal: str = "User:alice",
    permission: AclPermissionType = ALLOW,
    pattern: ResourcePatternType = ResourcePatternType.LITERAL,
    rtype: ResourceType = ResourceType.TOPIC,
) -> AclBinding:
    return AclBinding(rtype, name, pattern, principal, "*", op, permission)


def _everything() -> AclBindingFilter:
    return AclBindingFilter(
        ResourceType.ANY,
        NULL,
        ResourcePatternType.ANY,
        NULL,
        NULL,
        AclOperation.ANY,
        AclPermissionType.ANY,
    )


def _create(admin: AdminClient, bindings: list[AclBinding]) -> None:
    for f in admin.create_acls(bindings, request_timeout=10).values():
        f.result(timeout=15)


# The plaintext listener's principal is User:ANONYMOUS: made a super user here, so that the
# ACLs these tests create on the cluster resource do not lock the admin client out.
ADMIN = {"super.users": "User:ANONYMOUS"}


@pytest.fixture
def cluster(tmp_path: Any) -> Iterator[Cluster]:
    with Cluster(1, data_dir=str(tmp_path / "c"), config=ADMIN) as c:
        yield c


def test_confluent_admin_creates_describes_and_deletes_acls(cluster: Cluster) -> None:
    admin = AdminClient({"bootstrap.servers": cluster.bootstrap_servers})
    created = [
        _binding("orders", AclOperation.READ),
        _binding("pay", AclOperation.WRITE, pattern=ResourcePatternType.PREFIXED),
        _binding("*", AclOperation.DESCRIBE, principal="User:*", permission=DENY),
        _binding("kafka-cluster", AclOperation.ALTER, rtype=ResourceType.BROKER),
        _binding("g1", AclOperation.READ, rtype=ResourceType.GROUP),
    ]
    _create(admin, created)
    got = admin.describe_acls(_everything(), request_timeout=10).result(timeout=15)
    assert sorted(map(str, got)) == sorted(map(str, created))

    # MATCH: every pattern applying to the topic "payments"
    match = AclBindingFilter(
        ResourceType.TOPIC,
        "payments",
        ResourcePatternType.MATCH,
        NULL,
        NULL,
        AclOperation.ANY,
        AclPermissionType.ANY,
    )
    got = admin.describe_acls(match, request_timeout=10).result(timeout=15)
    assert sorted(b.name for b in got) == ["*", "pay"]

    # Kafka's validation: a CLUSTER resource is named kafka-cluster
    bad = _binding("other", AclOperation.ALTER, rtype=ResourceType.BROKER)
    with pytest.raises(KafkaException) as e:
        admin.create_acls([bad], request_timeout=10)[bad].result(timeout=15)
    assert "kafka-cluster" in str(e.value)

    deleted = admin.delete_acls([match], request_timeout=10)[match].result(timeout=15)
    assert sorted(b.name for b in deleted) == ["*", "pay"]
    left = admin.describe_acls(_everything(), request_timeout=10).result(timeout=15)
    assert sorted(b.name for b in left) == ["g1", "kafka-cluster", "orders"]


def test_acls_survive_a_restart(tmp_path: Any) -> None:
    data = str(tmp_path / "c")
    with Cluster(1, data_dir=data, config=ADMIN) as c:
        admin = AdminClient({"bootstrap.servers": c.bootstrap_servers})
        _create(admin, [_binding("orders", AclOperation.READ)])
        _create(admin, [_binding("t2", AclOperation.WRITE, principal="User:bob")])
        gone = _binding_filter("t2")
        admin.delete_acls([gone], request_timeout=10)[gone].result(timeout=15)
    with Cluster(1, data_dir=data, config=ADMIN) as c:
        admin = AdminClient({"bootstrap.servers": c.bootstrap_servers})
        got = admin.describe_acls(_everything(), request_timeout=10).result(timeout=15)
        assert [str(b) for b in got] == [str(_binding("orders", AclOperation.READ))]


def _binding_filter(name: str) -> AclBindingFilter:
    return AclBindingFilter(
        ResourceType.TOPIC,
        name,
        ResourcePatternType.LITERAL,
        NULL,
        NULL,
        AclOperation.ANY,
        AclPermissionType.ANY,
    )


def test_kafka_python_admin_acls(cluster: Cluster) -> None:
    admin = KafkaAdminClient(bootstrap_servers=cluster.bootstrap_servers)
    try:
        acl = ACL(
            "User:bob",
            "*",
            ACLOperation.WRITE,
            ACLPermissionType.ALLOW,
            ResourcePattern(KpResourceType.TOPIC, "logs", ACLResourcePatternType.PREFIXED),
        )
        result = admin.create_acls([acl])
        assert result["failed"] == [] and len(result["succeeded"]) == 1
        any_filter = ACLFilter(
            None,
            None,
            ACLOperation.ANY,
            ACLPermissionType.ANY,
            ResourcePatternFilter(KpResourceType.ANY, None, ACLResourcePatternType.ANY),
        )
        acls, error = admin.describe_acls(any_filter)
        assert error.errno == 0
        assert [(a.principal, a.resource_pattern.resource_name) for a in acls] == [
            ("User:bob", "logs")
        ]
        [(_, matched, error)] = admin.delete_acls([any_filter])
        assert error.errno == 0 and [m.principal for m in matched] == ["User:bob"]
        acls, _ = admin.describe_acls(any_filter)
        assert acls == []
    finally:
        admin.close()


def _v0_filter(name: str | None) -> dict[str, Any]:
    return {
        "resource_type_filter": ResourceType.ANY.value,
        "resource_name_filter": name,
        "principal_filter": None,
        "host_filter": None,
        "operation": AclOperation.ANY.value,
        "permission_type": AclPermissionType.ANY.value,
    }


def test_version_0_creates_describes_and_deletes_literal_acls(cluster: Cluster) -> None:
    # v0 (Kafka 2.0's; Kafka 3.9 still serves it) has no pattern type: its bindings are
    # LITERAL and its filters find only LITERAL bindings, the wildcard only by its name.
    admin = AdminClient({"bootstrap.servers": cluster.bootstrap_servers})
    _create(admin, [_binding("ord", AclOperation.WRITE, pattern=ResourcePatternType.PREFIXED)])
    with RawClient(cluster.bootstrap_servers) as raw:
        versions = {k.api_key: (k.min_version, k.max_version) for k in raw.api_versions().api_keys}
        assert versions[ApiKey.CREATE_ACLS] == versions[ApiKey.DELETE_ACLS] == (0, 3)
        assert versions[ApiKey.DESCRIBE_ACLS] == (0, 3)

        Creation = CreateAclsRequest.AclCreation
        created = raw.request(
            CreateAclsRequest(
                creations=[
                    Creation(
                        resource_type=ResourceType.TOPIC.value,
                        resource_name=name,
                        principal="User:alice",
                        host="*",
                        operation=AclOperation.READ.value,
                        permission_type=ALLOW.value,
                    )
                    for name in ("orders", "*")
                ]
            ),
            version=0,
        )
        assert [(r.error_code, r.error_message) for r in created.results] == [(0, None)] * 2

        listed = raw.request(DescribeAclsRequest(**_v0_filter(None)), version=0)
        assert listed.error_code == 0
        assert sorted(
            (r.resource_type, r.resource_name, [(a.principal, a.operation) for a in r.acls])
            for r in listed.resources
        ) == [
            (ResourceType.TOPIC.value, "*", [("User:alice", AclOperation.READ.value)]),
            (ResourceType.TOPIC.value, "orders", [("User:alice", AclOperation.READ.value)]),
        ]
        named = raw.request(DescribeAclsRequest(**_v0_filter("orders")), version=0)
        assert [r.resource_name for r in named.resources] == ["orders"]

        # what v0 created, a v3 client sees as LITERAL
        got = admin.describe_acls(_everything(), request_timeout=10).result(timeout=15)
        assert sorted((b.name, b.resource_pattern_type) for b in got) == [
            ("*", ResourcePatternType.LITERAL),
            ("ord", ResourcePatternType.PREFIXED),
            ("orders", ResourcePatternType.LITERAL),
        ]

        deleted = raw.request(
            DeleteAclsRequest(filters=[DeleteAclsRequest.DeleteAclsFilter(**_v0_filter(None))]),
            version=0,
        )
        [result] = deleted.filter_results
        assert result.error_code == 0
        assert sorted(m.resource_name for m in result.matching_acls) == ["*", "orders"]
    left = admin.describe_acls(_everything(), request_timeout=10).result(timeout=15)
    assert [(b.name, b.resource_pattern_type) for b in left] == [
        ("ord", ResourcePatternType.PREFIXED)
    ]


# ---- enforcement: SCRAM users with and without ACLs ----

PASSWORDS = {"admin": "admin-secret", "alice": "alice-secret", "bob": "bob-secret"}


def _as(cluster: Cluster, user: str) -> dict[str, Any]:
    return {
        "bootstrap.servers": cluster.bootstrap_servers_sasl_scram,
        "security.protocol": "SASL_SSL",
        "ssl.ca.location": cluster.ca_certificate,
        "sasl.mechanism": "SCRAM-SHA-512",
        "sasl.username": user,
        "sasl.password": PASSWORDS[user],
    }


@pytest.fixture(scope="module")
def secured() -> Iterator[Cluster]:
    """alice may write and read `mine` and use group `g-alice`; `secret` and `g-bob` are
    bob's; `open` has no ACL (allow.everyone.if.no.acl.found, MSK's default); only the
    admin (a super user) may change ACLs."""
    with Cluster(1, auth="scram", scram_users=PASSWORDS, config={"super.users": "User:admin"}) as c:
        for t in ("open", "mine", "secret"):
            c.create_topic(t, 1)
        admin = AdminClient(_as(c, "admin"))
        group, cluster_r = ResourceType.GROUP, ResourceType.BROKER
        _create(
            admin,
            [
                _binding("mine", AclOperation.WRITE),
                _binding("mine", AclOperation.READ),
                _binding("mine", AclOperation.READ, principal="User:bob"),
                _binding("secret", AclOperation.ALL, principal="User:bob"),
                _binding("g-alice", AclOperation.READ, rtype=group),
                _binding("g-bob", AclOperation.READ, principal="User:bob", rtype=group),
                _binding(
                    "kafka-cluster", AclOperation.ALTER, principal="User:admin", rtype=cluster_r
                ),
            ],
        )
        yield c


def _produce(conf: dict[str, Any], topic: str) -> int:
    """The delivery report's error code (0: delivered)."""
    errors: list[int] = []
    producer = Producer(conf)
    producer.produce(
        topic, b"v", on_delivery=lambda err, _: errors.append(err.code() if err else 0)
    )
    producer.flush(15)
    assert len(errors) == 1
    return errors[0]


def test_producers_get_topic_authorization_failed_where_acls_deny(secured: Cluster) -> None:
    alice, bob = _as(secured, "alice"), _as(secured, "bob")
    assert _produce(alice, "mine") == 0
    assert _produce(alice, "open") == 0
    assert _produce(alice, "secret") == ConfluentError.TOPIC_AUTHORIZATION_FAILED
    assert _produce(bob, "mine") == ConfluentError.TOPIC_AUTHORIZATION_FAILED  # READ only
    assert _produce(bob, "secret") == 0


def test_metadata_hides_topics_the_principal_may_not_describe(secured: Cluster) -> None:
    alice = AdminClient(_as(secured, "alice"))
    topics = alice.list_topics(timeout=10).topics
    assert {"open", "mine"} <= set(topics) and "secret" not in topics
    named = alice.list_topics("secret", timeout=10).topics["secret"]
    assert named.error is not None
    assert named.error.code() == ConfluentError.TOPIC_AUTHORIZATION_FAILED
    bob = AdminClient(_as(secured, "bob")).list_topics(timeout=10).topics
    assert {"open", "mine", "secret"} <= set(bob)


def _consume_error(conf: dict[str, Any], group: str, topic: str) -> tuple[int, list[bytes]]:
    consumer = Consumer({**conf, "group.id": group, "auto.offset.reset": "earliest"})
    consumer.subscribe([topic])
    got: list[bytes] = []
    code = 0
    deadline = time.monotonic() + 20
    try:
        while time.monotonic() < deadline and not got and not code:
            m = consumer.poll(0.2)
            if m is None:
                continue
            err = m.error()
            if err is not None:
                code = err.code()
            else:
                got.append(m.value() or b"")
    finally:
        consumer.close()
    return code, got


def test_consumers_get_group_and_topic_authorization_errors(secured: Cluster) -> None:
    alice = _as(secured, "alice")
    assert _produce(alice, "mine") == 0
    code, got = _consume_error(alice, "g-alice", "mine")
    assert code == 0 and got == [b"v"]
    code, _ = _consume_error(alice, "g-bob", "mine")
    assert code == ConfluentError.GROUP_AUTHORIZATION_FAILED
    code, _ = _consume_error(alice, "g-alice", "secret")
    assert code == ConfluentError.TOPIC_AUTHORIZATION_FAILED


def test_only_the_admin_may_change_or_read_acls(secured: Cluster) -> None:
    alice = AdminClient(_as(secured, "alice"))
    acl = _binding("open", AclOperation.READ)
    with pytest.raises(KafkaException) as e:
        alice.create_acls([acl], request_timeout=10)[acl].result(timeout=15)
    assert e.value.args[0].code() == ConfluentError.CLUSTER_AUTHORIZATION_FAILED
    # librdkafka drops DescribeAcls' top-level error (an empty list): kafka-python reads it
    kp = KafkaAdminClient(
        bootstrap_servers=secured.bootstrap_servers_sasl_scram,
        security_protocol="SASL_SSL",
        ssl_cafile=secured.ca_certificate,
        sasl_mechanism="SCRAM-SHA-512",
        sasl_plain_username="alice",
        sasl_plain_password=PASSWORDS["alice"],
    )
    try:
        any_filter = ACLFilter(
            None,
            None,
            ACLOperation.ANY,
            ACLPermissionType.ANY,
            ResourcePatternFilter(KpResourceType.ANY, None, ACLResourcePatternType.ANY),
        )
        with pytest.raises(ClusterAuthorizationFailedError):
            kp.describe_acls(any_filter)
    finally:
        kp.close()
    admin = AdminClient(_as(secured, "admin"))
    assert len(admin.describe_acls(_everything(), request_timeout=10).result(timeout=15)) == 7


async def test_aiokafka_gets_the_topic_error(secured: Cluster) -> None:
    ssl_context = create_ssl_context(cafile=secured.ca_certificate)
    producer = AIOKafkaProducer(
        bootstrap_servers=secured.bootstrap_servers_sasl_scram,
        security_protocol="SASL_SSL",
        ssl_context=ssl_context,
        sasl_mechanism="SCRAM-SHA-512",
        sasl_plain_username="alice",
        sasl_plain_password=PASSWORDS["alice"],
    )
    await producer.start()
    try:
        await producer.send_and_wait("mine", b"ok")
        with pytest.raises(TopicAuthorizationFailedError):
            await producer.send_and_wait("secret", b"no")
    finally:
        await producer.stop()


def test_kafka_python_gets_the_topic_error(secured: Cluster) -> None:
    producer = KafkaProducer(
        bootstrap_servers=secured.bootstrap_servers_sasl_scram,
        security_protocol="SASL_SSL",
        ssl_cafile=secured.ca_certificate,
        sasl_mechanism="SCRAM-SHA-512",
        sasl_plain_username="alice",
        sasl_plain_password=PASSWORDS["alice"],
        max_block_ms=10000,
    )
    try:
        producer.send("mine", b"ok").get(timeout=15)
        with pytest.raises(KafkaPythonTopicAuthorizationFailed):
            producer.send("secret", b"no").get(timeout=15)
    finally:
        producer.close()
