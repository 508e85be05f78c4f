"""Share groups (KIP-932) over raw sockets: the error answers real clients never provoke —
share-session epochs, acknowledgements of records not held, wrong brokers, unknown topics,
fenced members — and the gate by emulated Kafka version."""

from __future__ import annotations

import time
import uuid
from typing import Any

import pytest
from confluent_kafka.admin import (
    AclBinding,
    AclOperation,
    AclPermissionType,
    AdminClient,
    ResourcePatternType,
)
from confluent_kafka.admin import ResourceType as ConfluentResourceType
from kafka import KafkaAdminClient
from kafka.protocol.admin.groups import DescribeGroupsRequest, ListGroupsRequest
from kafka.protocol.metadata.find_coordinator import FindCoordinatorRequest

from msklite import Cluster
from msklite.errors import ErrorCode
from msklite.protocol.api_keys import ApiKey
from msklite.protocol.records import read_header
from msklite.protocol.share_messages import (
    AlterShareGroupOffsetsRequest,
    DeleteShareGroupOffsetsRequest,
    DescribeShareGroupOffsetsRequest,
    ShareAcknowledgeRequest,
    ShareFetchRequest,
    ShareGroupDescribeRequest,
    ShareGroupHeartbeatRequest,
)
from tests.integration.rawclient import RawClient

SHARE = pytest.mark.msk(brokers=3, kafka_version="4.2.x")
ALLOW = AclPermissionType.ALLOW
FetchTopic = ShareFetchRequest.FetchTopic
FetchPartition = FetchTopic.FetchPartition
AckBatch = FetchPartition.AcknowledgementBatch
AckTopic = ShareAcknowledgeRequest.AcknowledgeTopic


def _addr(cluster: Cluster, node: int) -> str:
    return f"127.0.0.1:{cluster.brokers[node].info.port}"


def _topic_id(cluster: Cluster, topic: str) -> uuid.UUID:
    return cluster.brokers[1].ctx.controller.topics[topic].topic_id


def _fetch(
    group: str,
    member: str,
    epoch: int,
    topic_id: uuid.UUID,
    acks: list[tuple[int, int, list[int]]] | None = None,
    max_wait_ms: int = 0,
) -> Any:
    batches = [
        AckBatch(first_offset=f, last_offset=last, acknowledge_types=t) for f, last, t in acks or []
    ]
    return ShareFetchRequest(
        group_id=group,
        member_id=member,
        share_session_epoch=epoch,
        max_wait_ms=max_wait_ms,
        min_bytes=1,
        max_bytes=1 << 20,
        max_records=100,
        batch_size=100,
        topics=[
            FetchTopic(
                topic_id=topic_id,
                partitions=[FetchPartition(partition_index=0, acknowledgement_batches=batches)],
            )
        ],
        forgotten_topics_data=[],
    )


def _setup(cluster: Cluster, topic: str, records: int, batch: int = 0) -> tuple[uuid.UUID, str]:
    """The topic with `records` records produced (in batches of `batch`, 0: one) after a
    share partition was set up for group "g" at its (empty) log end; the address of the
    partition's leader."""
    from confluent_kafka import Producer

    cluster.create_topic(topic, partitions=1, replication_factor=3)
    topic_id = _topic_id(cluster, topic)
    leader = _addr(cluster, cluster.partition(topic, 0).leader)
    with RawClient(leader) as raw:
        # until the share partition is set up: `__share_group_state` is created by the first
        # share fetch and its leaders take a moment (COORDINATOR_NOT_AVAILABLE meanwhile)
        deadline = time.monotonic() + 10
        while True:
            resp = raw.request(_fetch("g", "init", 0, topic_id), version=1)
            assert resp.error_code == 0
            if not resp.responses:
                break
            assert _partition(resp).error_code == ErrorCode.COORDINATOR_NOT_AVAILABLE
            assert time.monotonic() < deadline, "the share partition never started"
    p = Producer({"bootstrap.servers": cluster.bootstrap_servers})
    for i in range(records):
        p.produce(topic, b"%d" % i, partition=0)
        if batch and (i + 1) % batch == 0:
            assert p.flush(10) == 0
    assert p.flush(10) == 0
    return topic_id, leader


def _partition(resp: Any) -> Any:
    return resp.responses[0].partitions[0]


@SHARE
def test_share_session_epochs(msk_cluster: Cluster, topic_name: str) -> None:
    topic_id, leader = _setup(msk_cluster, topic_name, 3)
    with RawClient(leader) as raw:
        # no session yet
        assert (
            raw.request(_fetch("g", "m", 1, topic_id), 1).error_code
            == ErrorCode.SHARE_SESSION_NOT_FOUND
        )
        # a session cannot open with acknowledgements
        opening = _fetch("g", "m", 0, topic_id, acks=[(0, 0, [1])])
        assert raw.request(opening, 1).error_code == ErrorCode.INVALID_REQUEST
        first = raw.request(_fetch("g", "m", 0, topic_id), 1)
        assert first.error_code == 0
        part = _partition(first)
        assert [
            (a.first_offset, a.last_offset, a.delivery_count) for a in part.acquired_records
        ] == [(0, 2, 1)]
        assert first.acquisition_lock_timeout_ms == 30000
        assert (
            raw.request(_fetch("g", "m", 5, topic_id), 1).error_code
            == ErrorCode.INVALID_SHARE_SESSION_EPOCH
        )
        # epoch 1 is next: accept 0, release 1, and offset 7 was never acquired
        bad = raw.request(_fetch("g", "m", 1, topic_id, acks=[(7, 7, [1])]), 1)
        assert _partition(bad).acknowledge_error_code == ErrorCode.INVALID_RECORD_STATE
        ok = raw.request(_fetch("g", "m", 2, topic_id, acks=[(0, 1, [1, 2])]), 1)
        part = _partition(ok)
        assert part.acknowledge_error_code == 0
        # the released record comes straight back, delivered a second time
        assert [
            (a.first_offset, a.last_offset, a.delivery_count) for a in part.acquired_records
        ] == [(1, 1, 2)]
        # ShareAcknowledge cannot open a session, and v1 has no RENEW
        ack = ShareAcknowledgeRequest(
            group_id="g",
            member_id="m",
            share_session_epoch=0,
            topics=[],
        )
        assert raw.request(ack, 1).error_code == ErrorCode.INVALID_SHARE_SESSION_EPOCH
        renew = ShareAcknowledgeRequest(
            group_id="g",
            member_id="m",
            share_session_epoch=3,
            topics=[
                AckTopic(
                    topic_id=topic_id,
                    partitions=[
                        AckTopic.AcknowledgePartition(
                            partition_index=0,
                            acknowledgement_batches=[
                                AckTopic.AcknowledgePartition.AcknowledgementBatch(
                                    first_offset=2, last_offset=2, acknowledge_types=[4]
                                )
                            ],
                        )
                    ],
                )
            ],
        )
        resp = raw.request(renew, 1)
        assert resp.error_code == 0
        assert resp.responses[0].partitions[0].error_code == ErrorCode.INVALID_REQUEST
        # v2 knows RENEW: the lock is extended
        renew.share_session_epoch = 4
        assert raw.request(renew, 2).responses[0].partitions[0].error_code == 0
        # closing the session releases what the member still holds
        close = _fetch("g", "m", -1, topic_id)
        close.topics = []
        assert raw.request(close, 1).error_code == 0
        other = raw.request(_fetch("g", "m2", 0, topic_id), 1)
        # runs of equal delivery count: offset 1 goes out a third time, offset 2 a second
        assert [
            (a.first_offset, a.last_offset, a.delivery_count)
            for a in _partition(other).acquired_records
        ] == [(1, 1, 3), (2, 2, 2)]


@SHARE
def test_wrong_broker_and_unknown_topic(msk_cluster: Cluster, topic_name: str) -> None:
    topic_id, _ = _setup(msk_cluster, topic_name, 1)
    leader_id = msk_cluster.partition(topic_name, 0).leader
    follower = next(n for n in msk_cluster.brokers if n != leader_id)
    with RawClient(_addr(msk_cluster, follower)) as raw:
        resp = raw.request(_fetch("g", "m", 0, topic_id), 1)
        part = _partition(resp)
        assert part.error_code == ErrorCode.NOT_LEADER_OR_FOLLOWER
        assert part.current_leader.leader_id == leader_id
        assert [e.node_id for e in resp.node_endpoints] == [leader_id]
        assert resp.node_endpoints[0].port == msk_cluster.brokers[leader_id].info.port
        unknown = raw.request(_fetch("g", "m2", 0, uuid.uuid4()), 1)
        assert _partition(unknown).error_code == ErrorCode.UNKNOWN_TOPIC_ID


@SHARE
def test_heartbeat_errors(msk_cluster: Cluster, topic_name: str) -> None:
    msk_cluster.create_topic(topic_name, partitions=2, replication_factor=3)
    with RawClient(msk_cluster.bootstrap_servers) as raw:
        found = raw.request(FindCoordinatorRequest(key="hb", key_type=0), version=3)
    coordinator = found.node_id
    other = next(n for n in msk_cluster.brokers if n != coordinator)

    def beat(member: str, epoch: int, topics: list[str] | None) -> Any:
        return ShareGroupHeartbeatRequest(
            group_id="hb", member_id=member, member_epoch=epoch, subscribed_topic_names=topics
        )

    with RawClient(_addr(msk_cluster, other)) as raw:
        assert raw.request(beat("m", 0, [topic_name]), 1).error_code == ErrorCode.NOT_COORDINATOR
    with RawClient(_addr(msk_cluster, coordinator)) as raw:
        assert raw.request(beat("m", 0, None), 1).error_code == ErrorCode.INVALID_REQUEST
        joined = raw.request(beat("m", 0, [topic_name]), 1)
        assert (joined.error_code, joined.member_epoch) == (0, 1)
        assert joined.heartbeat_interval_ms == 5000
        assignment = joined.assignment.topic_partitions
        assert [(t.topic_id, t.partitions) for t in assignment] == [
            (_topic_id(msk_cluster, topic_name), [0, 1])
        ]
        assert raw.request(beat("m", 7, None), 1).error_code == ErrorCode.FENCED_MEMBER_EPOCH
        assert raw.request(beat("x", 1, None), 1).error_code == ErrorCode.UNKNOWN_MEMBER_ID
        described = raw.request(
            ShareGroupDescribeRequest(
                group_ids=["hb", "nope"], include_authorized_operations=False
            ),
            1,
        )
        hb, nope = described.groups
        assert (hb.error_code, hb.group_state, hb.assignor_name) == (0, "Stable", "simple")
        assert [(m.member_id, m.member_epoch, m.subscribed_topic_names) for m in hb.members] == [
            ("m", 1, [topic_name])
        ]
        assert (nope.error_code, nope.group_state) == (ErrorCode.GROUP_ID_NOT_FOUND, "Dead")
        listed = raw.request(ListGroupsRequest(states_filter=[], types_filter=["share"]), 5)
        assert [
            (g.group_id, g.protocol_type, g.group_state, g.group_type) for g in listed.groups
        ] == [("hb", "share", "Stable", "share")]
        classic_only = raw.request(ListGroupsRequest(states_filter=[], types_filter=["classic"]), 5)
        assert "hb" not in [g.group_id for g in classic_only.groups]
        left = raw.request(beat("m", -1, None), 1)
        assert (left.error_code, left.member_epoch) == (0, -1)


@pytest.mark.msk(brokers=1, kafka_version="4.1.x")
def test_kafka_4_1_advertises_share_apis_but_refuses_them(msk_cluster: Cluster) -> None:
    with RawClient(msk_cluster.bootstrap_servers) as raw:
        versions = {k.api_key: (k.min_version, k.max_version) for k in raw.api_versions().api_keys}
        assert versions[ApiKey.SHARE_FETCH] == (1, 1)
        resp = raw.request(
            ShareGroupHeartbeatRequest(
                group_id="g", member_id="m", member_epoch=0, subscribed_topic_names=["t"]
            ),
            1,
        )
        assert resp.error_code == ErrorCode.UNSUPPORTED_VERSION


@pytest.mark.msk(brokers=1)
def test_default_release_does_not_advertise_share_apis(msk_cluster: Cluster) -> None:
    with RawClient(msk_cluster.bootstrap_servers) as raw:
        keys = {k.api_key for k in raw.api_versions().api_keys}
    assert not keys & {76, 77, 78, 79, 90}


@pytest.mark.msk(brokers=3, kafka_version="4.2.x")
def test_kafka_4_2_advertises_the_share_apis_it_serves(msk_cluster: Cluster) -> None:
    with RawClient(msk_cluster.bootstrap_servers) as raw:
        versions = {k.api_key: (k.min_version, k.max_version) for k in raw.api_versions().api_keys}
    assert versions[ApiKey.SHARE_GROUP_HEARTBEAT] == (1, 1)
    assert versions[ApiKey.SHARE_GROUP_DESCRIBE] == (1, 1)
    assert versions[ApiKey.SHARE_FETCH] == (1, 2)
    assert versions[ApiKey.SHARE_ACKNOWLEDGE] == (1, 2)
    assert versions[ApiKey.DESCRIBE_SHARE_GROUP_OFFSETS] == (0, 1)
    assert versions[ApiKey.ALTER_SHARE_GROUP_OFFSETS] == (0, 0)
    assert versions[ApiKey.DELETE_SHARE_GROUP_OFFSETS] == (0, 0)


def _coordinator_addr(cluster: Cluster, group: str) -> str:
    with RawClient(cluster.bootstrap_servers) as raw:
        found = raw.request(FindCoordinatorRequest(key=group, key_type=0), version=3)
    assert found.error_code == 0
    return f"{found.host}:{found.port}"


def _describe(raw: RawClient, group: str, topic: str, version: int = 0) -> Any:
    req_group = DescribeShareGroupOffsetsRequest.DescribeShareGroupOffsetsRequestGroup
    resp = raw.request(
        DescribeShareGroupOffsetsRequest(
            groups=[
                req_group(
                    group_id=group,
                    topics=[
                        req_group.DescribeShareGroupOffsetsRequestTopic(
                            topic_name=topic, partitions=[0]
                        )
                    ],
                )
            ]
        ),
        version,
    )
    assert resp.groups[0].error_code == 0
    return resp.groups[0].topics[0].partitions[0]


def _describe_start(raw: RawClient, group: str, topic: str) -> int:
    return int(_describe(raw, group, topic).start_offset)


def _alter(group: str, topic: str, offset: int) -> Any:
    topic_t = AlterShareGroupOffsetsRequest.AlterShareGroupOffsetsRequestTopic
    return AlterShareGroupOffsetsRequest(
        group_id=group,
        topics=[
            topic_t(
                topic_name=topic,
                partitions=[
                    topic_t.AlterShareGroupOffsetsRequestPartition(
                        partition_index=0, start_offset=offset
                    )
                ],
            )
        ],
    )


@SHARE
def test_alter_and_delete_share_group_offsets(msk_cluster: Cluster, topic_name: str) -> None:
    topic_id, leader = _setup(msk_cluster, topic_name, 10)
    coordinator = _coordinator_addr(msk_cluster, "g")
    with RawClient(coordinator) as admin:
        assert _describe_start(admin, "g", topic_name) == 0
        resp = admin.request(_alter("g", topic_name, 5), 0)
        assert resp.error_code == 0
        assert [(p.partition_index, p.error_code) for p in resp.responses[0].partitions] == [(0, 0)]
        assert resp.responses[0].topic_id == topic_id
        assert _describe_start(admin, "g", topic_name) == 5
        # v1: the lag, offsets 5-9 of the 10 below the high watermark
        assert _describe(admin, "g", topic_name, version=1).lag == 5
        # a topic that does not exist has no state: -1, no error (as Kafka answers)
        missing = _describe(admin, "g", "no-such-topic", version=1)
        assert (missing.start_offset, missing.lag, missing.error_code) == (-1, -1, 0)
        bad = admin.request(_alter("g", "no-such-topic", 1), 0).responses[0].partitions[0]
        assert bad.error_code == ErrorCode.UNKNOWN_TOPIC_OR_PARTITION
        negative = admin.request(_alter("g", topic_name, -3), 0).responses[0].partitions[0]
        assert negative.error_code == ErrorCode.INVALID_REQUEST
    with RawClient(leader) as raw:
        # the partition's leader reads the new state: delivery starts at 5
        got = _partition(raw.request(_fetch("g", "after-alter", 0, topic_id), 1))
        assert [(a.first_offset, a.last_offset) for a in got.acquired_records] == [(5, 9)]
        accept = _fetch("g", "after-alter", 1, topic_id, acks=[(5, 6, [1])])
        assert _partition(raw.request(accept, 1)).acknowledge_error_code == 0
    with RawClient(coordinator) as admin:
        # 5 and 6 are done; 7-9 are not (acquired, not acknowledged)
        done = _describe(admin, "g", topic_name, version=1)
        assert (done.start_offset, done.lag) == (7, 3)
    with RawClient(coordinator) as admin:
        joined = admin.request(
            ShareGroupHeartbeatRequest(
                group_id="g", member_id="m", member_epoch=0, subscribed_topic_names=[topic_name]
            ),
            1,
        )
        assert joined.error_code == 0
        busy = admin.request(_alter("g", topic_name, 0), 0)
        assert busy.error_code == ErrorCode.NON_EMPTY_GROUP
        delete = DeleteShareGroupOffsetsRequest(
            group_id="g",
            topics=[
                DeleteShareGroupOffsetsRequest.DeleteShareGroupOffsetsRequestTopic(
                    topic_name=topic_name
                )
            ],
        )
        assert admin.request(delete, 0).error_code == ErrorCode.NON_EMPTY_GROUP
        left = admin.request(
            ShareGroupHeartbeatRequest(group_id="g", member_id="m", member_epoch=-1), 1
        )
        assert left.error_code == 0
        deleted = admin.request(delete, 0)
        assert deleted.error_code == 0
        assert [(t.topic_name, t.error_code) for t in deleted.responses] == [(topic_name, 0)]
        assert _describe_start(admin, "g", topic_name) == -1
    delete.group_id = "never-seen"
    with RawClient(_coordinator_addr(msk_cluster, "never-seen")) as admin:
        assert admin.request(delete, 0).error_code == ErrorCode.GROUP_ID_NOT_FOUND


def _batches(records: bytes) -> list[tuple[int, int]]:
    out = []
    pos = 0
    while pos < len(records):
        h = read_header(records, pos)
        out.append((h.base_offset, h.last_offset))
        pos += h.size
    return out


@SHARE
def test_acquisition_takes_whole_batches_and_sends_only_those(
    msk_cluster: Cluster, topic_name: str
) -> None:
    topic_id, leader = _setup(msk_cluster, topic_name, 9, batch=3)
    with RawClient(leader) as raw:
        req = _fetch("g", "m", 0, topic_id)
        req.max_records = 1  # a soft limit: the whole first batch
        part = _partition(raw.request(req, 1))
        assert [(a.first_offset, a.last_offset) for a in part.acquired_records] == [(0, 2)]
        assert _batches(part.records) == [(0, 2)], "records the member did not acquire were sent"
        req = _fetch("g", "m2", 0, topic_id)
        req.max_records = 4
        part = _partition(raw.request(req, 1))
        assert [(a.first_offset, a.last_offset) for a in part.acquired_records] == [(3, 8)]
        assert _batches(part.records) == [(3, 5), (6, 8)]


def test_share_apis_ask_the_authorizer() -> None:
    """Raw requests come in on the plaintext listener as User:ANONYMOUS; the admin (a SCRAM
    super user) gives group `locked` and topic `locked-t` ACLs of its own, so that only it may
    use them (everything without an ACL stays open: allow.everyone.if.no.acl.found, MSK's)."""
    users = {"admin": "admin-secret"}
    with Cluster(
        1,
        auth="plaintext,scram",
        scram_users=users,
        config={"super.users": "User:admin"},
        kafka_version="4.2.x",
    ) as cluster:
        cluster.create_topic("locked-t", 1)
        cluster.create_topic("open-t", 1)
        scram, ca = cluster.bootstrap_servers_sasl_scram, cluster.ca_certificate
        assert scram is not None and ca is not None
        admin = AdminClient(
            {
                "bootstrap.servers": scram,
                "security.protocol": "SASL_SSL",
                "ssl.ca.location": ca,
                "sasl.mechanism": "SCRAM-SHA-512",
                "sasl.username": "admin",
                "sasl.password": "admin-secret",
            }
        )
        acls = [
            AclBinding(rtype, name, ResourcePatternType.LITERAL, "User:admin", "*", op, ALLOW)
            for rtype, name, op in [
                (ConfluentResourceType.GROUP, "locked", AclOperation.ALL),
                (ConfluentResourceType.TOPIC, "locked-t", AclOperation.ALL),
            ]
        ]
        for f in admin.create_acls(acls, request_timeout=10).values():
            f.result(timeout=15)
        locked_id, open_id = _topic_id(cluster, "locked-t"), _topic_id(cluster, "open-t")
        with RawClient(cluster.bootstrap_servers) as raw:
            found = raw.request(FindCoordinatorRequest(key="open-g", key_type=0), version=3)
            assert found.error_code == 0  # the coordinator exists from now on
            beat = ShareGroupHeartbeatRequest(
                group_id="locked", member_id="m", member_epoch=0, subscribed_topic_names=["open-t"]
            )
            assert raw.request(beat, 1).error_code == ErrorCode.GROUP_AUTHORIZATION_FAILED
            beat.group_id = "open-g"
            beat.subscribed_topic_names = ["open-t", "locked-t"]
            assert raw.request(beat, 1).error_code == ErrorCode.TOPIC_AUTHORIZATION_FAILED
            beat.subscribed_topic_names = ["open-t"]
            assert raw.request(beat, 1).error_code == 0
            assert (
                raw.request(_fetch("locked", "m", 0, open_id), 1).error_code
                == ErrorCode.GROUP_AUTHORIZATION_FAILED
            )
            fetch = _fetch("open-g", "m", 0, locked_id)
            fetch.topics.append(
                FetchTopic(
                    topic_id=open_id,
                    partitions=[FetchPartition(partition_index=0, acknowledgement_batches=[])],
                )
            )
            resp = raw.request(fetch, 1)
            errors = {t.topic_id: t.partitions[0].error_code for t in resp.responses}
            # the open topic has nothing to say yet; the locked one is refused
            assert errors == {locked_id: ErrorCode.TOPIC_AUTHORIZATION_FAILED}
            # ShareAcknowledge too asks READ on each topic, answered per partition
            Part = AckTopic.AcknowledgePartition
            one = [Part.AcknowledgementBatch(first_offset=0, last_offset=0, acknowledge_types=[1])]
            ack = ShareAcknowledgeRequest(
                group_id="open-g",
                member_id="m",
                share_session_epoch=1,
                topics=[
                    AckTopic(
                        topic_id=tid,
                        partitions=[Part(partition_index=0, acknowledgement_batches=one)],
                    )
                    for tid in (locked_id, open_id)
                ],
            )
            acked = raw.request(ack, 1)
            assert acked.error_code == 0
            assert {t.topic_id: t.partitions[0].error_code for t in acked.responses} == {
                locked_id: ErrorCode.TOPIC_AUTHORIZATION_FAILED,
                open_id: ErrorCode.INVALID_RECORD_STATE,  # allowed, but nothing was acquired
            }
            described = raw.request(
                ShareGroupDescribeRequest(
                    group_ids=["locked", "open-g"], include_authorized_operations=True
                ),
                1,
            )
            locked, open_g = described.groups
            assert locked.error_code == ErrorCode.GROUP_AUTHORIZATION_FAILED
            assert open_g.error_code == 0
            # no ACL on open-g: READ, DELETE and DESCRIBE (bits 3, 6, 8)
            assert open_g.authorized_operations == (1 << 3) | (1 << 6) | (1 << 8)
            assert _describe(raw, "open-g", "locked-t").error_code == (
                ErrorCode.TOPIC_AUTHORIZATION_FAILED
            )
            offsets = raw.request(
                DescribeShareGroupOffsetsRequest(
                    groups=[
                        DescribeShareGroupOffsetsRequest.DescribeShareGroupOffsetsRequestGroup(
                            group_id="locked", topics=None
                        )
                    ]
                ),
                0,
            )
            assert offsets.groups[0].error_code == ErrorCode.GROUP_AUTHORIZATION_FAILED
            assert raw.request(_alter("locked", "open-t", 0), 0).error_code == (
                ErrorCode.GROUP_AUTHORIZATION_FAILED
            )
            # (open-g has a member now: a group without one)
            refused = raw.request(_alter("open-h", "locked-t", 0), 0).responses[0].partitions[0]
            assert refused.error_code == ErrorCode.TOPIC_AUTHORIZATION_FAILED


@SHARE
def test_share_apis_refuse_what_acls_deny(msk_cluster: Cluster, topic_name: str) -> None:
    from confluent_kafka.admin import (
        AclBinding,
        AclOperation,
        AclPermissionType,
        AdminClient,
        ResourcePatternType,
        ResourceType,
    )

    msk_cluster.create_topic(topic_name, partitions=1, replication_factor=3)
    deny = [
        AclBinding(
            rtype,
            name,
            ResourcePatternType.LITERAL,
            "User:*",
            "*",
            AclOperation.ALL,
            AclPermissionType.DENY,
        )
        for rtype, name in ((ResourceType.GROUP, "denied"), (ResourceType.TOPIC, "secret"))
    ]
    admin = AdminClient({"bootstrap.servers": msk_cluster.bootstrap_servers})
    for f in admin.create_acls(deny, request_timeout=10).values():
        f.result(timeout=15)
    group_denied = ErrorCode.GROUP_AUTHORIZATION_FAILED
    with RawClient(_addr(msk_cluster, 1)) as raw:
        beat = ShareGroupHeartbeatRequest(
            group_id="denied", member_id="m", member_epoch=0, subscribed_topic_names=[topic_name]
        )
        assert raw.request(beat, 1).error_code == group_denied
        beat = ShareGroupHeartbeatRequest(
            group_id="ok", member_id="m", member_epoch=0, subscribed_topic_names=["secret"]
        )
        assert raw.request(beat, 1).error_code == ErrorCode.TOPIC_AUTHORIZATION_FAILED
        fetch = _fetch("denied", "m", 0, _topic_id(msk_cluster, topic_name))
        assert raw.request(fetch, 1).error_code == group_denied
        described = raw.request(
            ShareGroupDescribeRequest(group_ids=["denied"], include_authorized_operations=False),
            1,
        )
        assert described.groups[0].error_code == group_denied
        delete = DeleteShareGroupOffsetsRequest(
            group_id="denied",
            topics=[
                DeleteShareGroupOffsetsRequest.DeleteShareGroupOffsetsRequestTopic(
                    topic_name=topic_name
                )
            ],
        )
        assert raw.request(delete, 0).error_code == group_denied


def _beat(group: str, member: str, epoch: int, topics: list[str] | None = None) -> Any:
    return ShareGroupHeartbeatRequest(
        group_id=group, member_id=member, member_epoch=epoch, subscribed_topic_names=topics
    )


@SHARE
def test_membership_survives_a_coordinator_failover(msk_cluster: Cluster, topic_name: str) -> None:
    """The ShareGroup* records of `__consumer_offsets`: the broker that takes the group over
    knows its epochs and members, as Kafka's does (no UNKNOWN_MEMBER_ID, no rejoin)."""
    msk_cluster.create_topic(topic_name, partitions=2, replication_factor=3)
    with RawClient(msk_cluster.bootstrap_servers) as raw:
        first = raw.request(FindCoordinatorRequest(key="fo", key_type=0), version=3).node_id
    with RawClient(_addr(msk_cluster, first)) as raw:
        assert raw.request(_beat("fo", "a", 0, [topic_name]), 1).member_epoch == 1
        b = raw.request(_beat("fo", "b", 0, [topic_name]), 1)
        assert (b.error_code, b.member_epoch) == (0, 2)
    msk_cluster.stop_broker(first)
    survivor = next(n for n in msk_cluster.brokers if n != first)
    with RawClient(_addr(msk_cluster, survivor)) as raw:
        found = raw.request(FindCoordinatorRequest(key="fo", key_type=0), version=3)
        assert found.error_code == 0 and found.node_id != first
    with RawClient(f"{found.host}:{found.port}") as raw:
        described = raw.request(
            ShareGroupDescribeRequest(group_ids=["fo"], include_authorized_operations=False), 1
        ).groups[0]
        assert (described.error_code, described.group_epoch, described.assignment_epoch) == (
            0,
            2,
            2,
        )
        assert sorted((m.member_id, m.member_epoch) for m in described.members) == [
            ("a", 1),
            ("b", 2),
        ]
        b_again = raw.request(_beat("fo", "b", 2), 1)
        assert (b_again.error_code, b_again.member_epoch) == (0, 2)
        a_again = raw.request(_beat("fo", "a", 1), 1)
        assert (a_again.error_code, a_again.member_epoch) == (0, 2)
        assert [len(t.partitions) for t in a_again.assignment.topic_partitions] == [1]


@SHARE
def test_describe_and_delete_groups_of_a_share_group(msk_cluster: Cluster, topic_name: str) -> None:
    """DescribeGroups sees a share group as not a classic one; DeleteGroups (confluent's
    AdminClient) refuses it while it has members, then deletes it and its share state."""
    topic_id, _ = _setup(msk_cluster, topic_name, 3)
    coordinator = _coordinator_addr(msk_cluster, "g")
    with RawClient(coordinator) as raw:
        assert raw.request(_beat("g", "m", 0, [topic_name]), 1).error_code == 0
        dead = raw.request(DescribeGroupsRequest(groups=["g"]), 5).groups[0]
        assert (dead.error_code, dead.group_state) == (0, "Dead")
        v6 = raw.request(DescribeGroupsRequest(groups=["g"]), 6).groups[0]
        assert (v6.error_code, v6.group_state) == (ErrorCode.GROUP_ID_NOT_FOUND, "Dead")
        assert v6.error_message == "Group g is not a classic group."
    admin = AdminClient({"bootstrap.servers": msk_cluster.bootstrap_servers})

    def delete(group: str) -> int:
        try:
            admin.delete_consumer_groups([group], request_timeout=10)[group].result()
        except Exception as e:  # a KafkaException carrying the group's KafkaError
            return int(e.args[0].code())
        return 0

    assert delete("g") == ErrorCode.NON_EMPTY_GROUP
    kp = KafkaAdminClient(bootstrap_servers=msk_cluster.bootstrap_servers)
    try:
        assert kp.delete_groups(["g"]) == {"g": "NonEmptyGroupError"}
    finally:
        kp.close()
    with RawClient(coordinator) as raw:
        assert raw.request(_beat("g", "m", -1), 1).error_code == 0
        assert _describe_start(raw, "g", topic_name) == 0  # the share partition's state
    assert delete("g") == 0
    assert delete("g") == ErrorCode.GROUP_ID_NOT_FOUND
    with RawClient(coordinator) as raw:
        gone = raw.request(
            ShareGroupDescribeRequest(group_ids=["g"], include_authorized_operations=False), 1
        ).groups[0]
        assert gone.error_code == ErrorCode.GROUP_ID_NOT_FOUND
        assert _describe_start(raw, "g", topic_name) == -1  # DeleteShareGroupState
        listed = raw.request(ListGroupsRequest(states_filter=[], types_filter=["share"]), 5)
        assert "g" not in [g.group_id for g in listed.groups]
    del topic_id


@SHARE
def test_record_limit_acquire_mode_is_strict(msk_cluster: Cluster, topic_name: str) -> None:
    """ShareFetch v2 ShareAcquireMode 1 (KIP-1206): at most max_records acquired, a log batch
    split at the limit (sent whole: the client keeps what it acquired), the rest next time."""
    topic_id, leader = _setup(msk_cluster, topic_name, 9, batch=3)
    with RawClient(leader) as raw:
        req = _fetch("g", "m", 0, topic_id)
        req.max_records, req.share_acquire_mode = 2, 1
        part = _partition(raw.request(req, 2))
        assert [(a.first_offset, a.last_offset) for a in part.acquired_records] == [(0, 1)]
        assert _batches(part.records) == [(0, 2)]
        req = _fetch("g", "m2", 0, topic_id)
        req.max_records, req.share_acquire_mode = 5, 1
        part = _partition(raw.request(req, 2))
        assert [(a.first_offset, a.last_offset) for a in part.acquired_records] == [(2, 6)]
        assert _batches(part.records) == [(0, 2), (3, 5), (6, 8)]
        bad = _fetch("g", "m3", 0, topic_id)
        bad.share_acquire_mode = 7
        assert raw.request(bad, 2).error_code == ErrorCode.INVALID_REQUEST


@SHARE
def test_one_group_id_one_group_type(msk_cluster: Cluster, topic_name: str) -> None:
    """A share group's id refuses classic joins (INCONSISTENT_GROUP_PROTOCOL, as Kafka's
    classicGroupJoin answers), and a KIP-848 consumer group's id refuses share members
    (GROUP_ID_NOT_FOUND)."""
    from confluent_kafka import Consumer
    from kafka.protocol.consumer.group import JoinGroupRequest

    msk_cluster.create_topic(topic_name, partitions=1, replication_factor=3)
    with RawClient(_coordinator_addr(msk_cluster, "shared-id")) as raw:
        assert raw.request(_beat("shared-id", "m", 0, [topic_name]), 1).error_code == 0
        join = JoinGroupRequest(
            version=5,
            group_id="shared-id",
            session_timeout_ms=10000,
            rebalance_timeout_ms=10000,
            member_id="",
            group_instance_id=None,
            protocol_type="consumer",
            protocols=[JoinGroupRequest.JoinGroupRequestProtocol(name="range", metadata=b"")],
        )
        joined = raw.request(join, 5)
        assert (joined.error_code, joined.member_id) == (ErrorCode.INCONSISTENT_GROUP_PROTOCOL, "")
    consumer = Consumer(
        {
            "bootstrap.servers": msk_cluster.bootstrap_servers,
            "group.id": "modern-id",
            "group.protocol": "consumer",
        }
    )
    try:
        consumer.subscribe([topic_name])
        deadline = time.monotonic() + 30
        while not consumer.assignment():
            assert time.monotonic() < deadline, "the consumer never got its assignment"
            consumer.poll(0.2)
        with RawClient(_coordinator_addr(msk_cluster, "modern-id")) as raw:
            refused = raw.request(_beat("modern-id", "s", 0, [topic_name]), 1)
        assert refused.error_code == ErrorCode.GROUP_ID_NOT_FOUND
        assert refused.error_message == "Group modern-id is not a share group."
    finally:
        consumer.close()
