"""The group APIs on the wire, with raw requests: coordinator placement, NOT_COORDINATOR from
other brokers, key types, versions real clients rarely send, and `__consumer_offsets` itself."""

from __future__ import annotations

import time
from typing import Any

import pytest
from confluent_kafka import Consumer
from kafka.protocol.admin.groups import DescribeGroupsRequest, ListGroupsRequest
from kafka.protocol.consumer.group import (
    HeartbeatRequest,
    JoinGroupRequest,
    LeaveGroupRequest,
    OffsetCommitRequest,
    OffsetFetchRequest,
    SyncGroupRequest,
)
from kafka.protocol.metadata.find_coordinator import FindCoordinatorRequest
from kafka.protocol.metadata.metadata import MetadataRequest

from msklite import Cluster
from msklite.coordinator.coordinator import partition_for
from msklite.coordinator.group_runtime import OFFSETS_TOPIC
from msklite.coordinator.records import OffsetKey, decode_key, decode_offset_value
from msklite.errors import ErrorCode
from tests.integration.rawclient import RawClient


def _coordinator(cluster: Cluster, group: str) -> tuple[int, str]:
    with RawClient(cluster.bootstrap_servers) as c:  # creates __consumer_offsets if need be
        assert (
            c.request(FindCoordinatorRequest(version=3, key=group, key_type=0), 3).error_code == 0
        )
    assert cluster.controller is not None
    topic = cluster.controller.topics[OFFSETS_TOPIC]
    leader = topic.partitions[partition_for(group, len(topic.partitions))].leader
    info = cluster.brokers[leader].info
    return leader, f"{info.host}:{info.port}"


def _other_broker(cluster: Cluster, node: int) -> str:
    info = next(b.info for i, b in cluster.brokers.items() if i != node)
    return f"{info.host}:{info.port}"


def _join(c: RawClient, group: str, member: str = "", version: int = 5) -> Any:
    req = JoinGroupRequest(
        version=version,
        group_id=group,
        session_timeout_ms=10000,
        rebalance_timeout_ms=10000,
        member_id=member,
        group_instance_id=None,
        protocol_type="consumer",
        protocols=[JoinGroupRequest.JoinGroupRequestProtocol(name="range", metadata=b"\x00\x01")],
    )
    return c.request(req, version)


def test_offsets_topic_is_created_by_the_first_find_coordinator(msk_cluster: Cluster) -> None:
    with RawClient(msk_cluster.bootstrap_servers) as c:
        md = c.request(MetadataRequest(version=12, topics=None), 12)
        assert OFFSETS_TOPIC not in [t.name for t in md.topics]  # as in Kafka: created lazily
        found = c.request(FindCoordinatorRequest(version=3, key="g", key_type=0), 3)
        assert found.error_code == 0
        md = c.request(MetadataRequest(version=12, topics=None), 12)
    (topic,) = [t for t in md.topics if t.name == OFFSETS_TOPIC]
    assert topic.is_internal and len(topic.partitions) == 50
    assert {p.leader_id for p in topic.partitions} == {1, 2, 3}
    assert all(
        len(p.replica_nodes) == 3 for p in topic.partitions
    )  # offsets.topic.replication.factor
    assert OFFSETS_TOPIC not in msk_cluster.topics()
    assert msk_cluster.topics(internal=True)[OFFSETS_TOPIC] == 50


def test_find_coordinator_single_and_batched_keys(msk_cluster: Cluster) -> None:
    groups = ["alpha", "beta", "gamma", "polygenelubricants"]
    with RawClient(msk_cluster.bootstrap_servers) as c:
        for g in groups:
            for v in (0, 3):
                resp = c.request(FindCoordinatorRequest(version=v, key=g, key_type=0), v)
                assert resp.error_code == ErrorCode.NONE
                node, address = _coordinator(msk_cluster, g)
                assert (resp.node_id, f"{resp.host}:{resp.port}") == (node, address)
        batched = c.request(
            FindCoordinatorRequest(version=6, key_type=0, coordinator_keys=groups), 6
        )
        assert [(x.key, x.node_id) for x in batched.coordinators] == [
            (g, _coordinator(msk_cluster, g)[0]) for g in groups
        ]
        txn = c.request(FindCoordinatorRequest(version=4, key_type=1, coordinator_keys=["t"]), 4)
        assert txn.coordinators[0].error_code == ErrorCode.NONE
        assert msk_cluster.controller is not None
        txn_topic = msk_cluster.controller.topics["__transaction_state"]
        assert (
            txn.coordinators[0].node_id
            == txn_topic.partitions[partition_for("t", len(txn_topic.partitions))].leader
        )
        share = c.request(FindCoordinatorRequest(version=6, key_type=2, coordinator_keys=["s"]), 6)
        assert share.coordinators[0].error_code == ErrorCode.INVALID_REQUEST


def test_other_brokers_answer_not_coordinator(msk_cluster: Cluster) -> None:
    node, _ = _coordinator(msk_cluster, "placed")
    with RawClient(_other_broker(msk_cluster, node)) as c:
        assert _join(c, "placed").error_code == ErrorCode.NOT_COORDINATOR
        hb = c.request(
            HeartbeatRequest(version=4, group_id="placed", generation_id=1, member_id="m"), 4
        )
        assert hb.error_code == ErrorCode.NOT_COORDINATOR
        fetch = c.request(
            OffsetFetchRequest(
                version=8,
                groups=[OffsetFetchRequest.OffsetFetchRequestGroup(group_id="placed", topics=None)],
                require_stable=False,
            ),
            8,
        )
        assert fetch.groups[0].error_code == ErrorCode.NOT_COORDINATOR
        described = c.request(
            DescribeGroupsRequest(
                version=5, groups=["placed"], include_authorized_operations=False
            ),
            5,
        )
        assert described.groups[0].error_code == ErrorCode.NOT_COORDINATOR


# 4.1.x: the test ends with DescribeGroups v6 (KIP-1043, new in Kafka 4.0; 4.0 refused
# JoinGroup v0-1, which 4.1 serves again)
@pytest.mark.msk(kafka_version="4.1.x")
def test_old_versions_join_sync_commit_fetch_leave(msk_cluster: Cluster) -> None:
    msk_cluster.create_topic("old-t", partitions=2)
    _, address = _coordinator(msk_cluster, "old")
    with RawClient(address) as c:
        joined = _join(c, "old", version=0)  # v0-v3: no MEMBER_ID_REQUIRED round trip
        assert joined.error_code == ErrorCode.NONE and joined.leader == joined.member_id
        assert [bytes(m.metadata) for m in joined.members] == [b"\x00\x01"]
        member, gen = joined.member_id, joined.generation_id
        sync = c.request(
            SyncGroupRequest(
                version=0,
                group_id="old",
                generation_id=gen,
                member_id=member,
                assignments=[
                    SyncGroupRequest.SyncGroupRequestAssignment(member_id=member, assignment=b"A")
                ],
            ),
            0,
        )
        assert (sync.error_code, bytes(sync.assignment)) == (ErrorCode.NONE, b"A")
        topic_cls = OffsetCommitRequest.OffsetCommitRequestTopic
        part_cls = topic_cls.OffsetCommitRequestPartition
        commit = c.request(
            OffsetCommitRequest(
                version=2,
                group_id="old",
                generation_id_or_member_epoch=gen,
                member_id=member,
                retention_time_ms=-1,
                topics=[
                    topic_cls(
                        name="old-t",
                        partitions=[
                            part_cls(partition_index=0, committed_offset=9, committed_metadata="m"),
                            part_cls(partition_index=7, committed_offset=1, committed_metadata=""),
                        ],
                    ),
                    topic_cls(
                        name="missing",
                        partitions=[part_cls(partition_index=0, committed_offset=1)],
                    ),
                ],
            ),
            2,
        )
        codes = [[p.error_code for p in t.partitions] for t in commit.topics]
        assert codes == [
            [ErrorCode.NONE, ErrorCode.UNKNOWN_TOPIC_OR_PARTITION],
            [ErrorCode.UNKNOWN_TOPIC_OR_PARTITION],
        ]
        fetch_topic = OffsetFetchRequest.OffsetFetchRequestTopic
        fetched = c.request(
            OffsetFetchRequest(
                version=1,
                group_id="old",
                topics=[fetch_topic(name="old-t", partition_indexes=[0, 1])],
            ),
            1,
        )
        assert [(p.committed_offset, p.metadata) for p in fetched.topics[0].partitions] == [
            (9, "m"),
            (-1, ""),
        ]
        listed = c.request(ListGroupsRequest(version=0), 0)
        assert [(g.group_id, g.protocol_type) for g in listed.groups] == [("old", "consumer")]
        left = c.request(LeaveGroupRequest(version=0, group_id="old", member_id=member), 0)
        assert left.error_code == ErrorCode.NONE
        again = c.request(LeaveGroupRequest(version=0, group_id="old", member_id=member), 0)
        assert again.error_code == ErrorCode.UNKNOWN_MEMBER_ID
        # a group name this broker coordinates too, but that never existed
        never_name = next(
            n
            for n in (f"never-{i}" for i in range(100))
            if _coordinator(msk_cluster, n)[1] == address
        )
        described = c.request(
            DescribeGroupsRequest(
                version=6, groups=["old", never_name], include_authorized_operations=True
            ),
            6,
        )
        old, never = described.groups
        assert (old.group_state, old.members) == ("Empty", [])
        assert (never.error_code, never.group_state) == (ErrorCode.GROUP_ID_NOT_FOUND, "Dead")


def test_commits_are_records_in_kafkas_format(msk_cluster: Cluster) -> None:
    msk_cluster.create_topic("fmt", partitions=1)
    _, address = _coordinator(msk_cluster, "fmt-g")
    topic_cls = OffsetCommitRequest.OffsetCommitRequestTopic
    with RawClient(address) as c:
        c.request(
            OffsetCommitRequest(
                version=9,
                group_id="fmt-g",
                generation_id_or_member_epoch=-1,
                member_id="",
                topics=[
                    topic_cls(
                        name="fmt",
                        partitions=[
                            topic_cls.OffsetCommitRequestPartition(
                                partition_index=0,
                                committed_offset=42,
                                committed_leader_epoch=3,
                                committed_metadata="hi",
                            )
                        ],
                    )
                ],
            ),
            9,
        )
    node, _ = _coordinator(msk_cluster, "fmt-g")
    partition = partition_for("fmt-g", 50)
    records = list(msk_cluster.brokers[node].ctx.groups.topic.records(partition))
    (key, value, *_) = records[-1]
    assert decode_key(key) == OffsetKey("fmt-g", "fmt", 0)
    # OffsetCommitKey v1 and OffsetCommitValue v3, byte for byte as Kafka writes them
    assert key == b"\x00\x01\x00\x05fmt-g\x00\x03fmt\x00\x00\x00\x00"
    assert value is not None and value[:2] == b"\x00\x03"
    v = decode_offset_value(value)
    assert (v.offset, v.leader_epoch, v.metadata) == (42, 3, "hi")


def test_silent_member_is_expired_after_its_session_timeout() -> None:
    """A member that stops heartbeating (a crashed client: no LeaveGroup) is removed after its
    session timeout, and the rest of the group rebalances without it."""
    config = {"group.initial.rebalance.delay.ms": "0", "group.min.session.timeout.ms": "200"}
    with Cluster(config=config) as cluster:
        cluster.create_topic("silent-t", partitions=2)
        _, address = _coordinator(cluster, "silent")
        with RawClient(address) as raw:
            protocol = JoinGroupRequest.JoinGroupRequestProtocol(name="range", metadata=b"")

            def join(member: str) -> Any:
                req = JoinGroupRequest(
                    version=5,
                    group_id="silent",
                    session_timeout_ms=500,
                    rebalance_timeout_ms=500,
                    member_id=member,
                    group_instance_id=None,
                    protocol_type="consumer",
                    protocols=[protocol],
                )
                return raw.request(req, 5)

            first = join("")
            assert first.error_code == ErrorCode.MEMBER_ID_REQUIRED
            joined = join(first.member_id)
            assert joined.error_code == ErrorCode.NONE and joined.leader == first.member_id
            assignment = SyncGroupRequest.SyncGroupRequestAssignment(
                member_id=first.member_id, assignment=b""
            )
            sync = SyncGroupRequest(
                version=3,
                group_id="silent",
                generation_id=joined.generation_id,
                member_id=first.member_id,
                group_instance_id=None,
                assignments=[assignment],
            )
            assert raw.request(sync, 3).error_code == ErrorCode.NONE
        # the raw member is now silent for good
        consumer = Consumer(
            {
                "bootstrap.servers": cluster.bootstrap_servers,
                "group.id": "silent",
                "session.timeout.ms": 6000,
                "heartbeat.interval.ms": 100,
            }
        )
        consumer.subscribe(["silent-t"])
        start = time.monotonic()
        while {tp.partition for tp in consumer.assignment()} != {0, 1}:
            assert time.monotonic() - start < 10, "the silent member was never expired"
            consumer.poll(0.05)
        consumer.close()
