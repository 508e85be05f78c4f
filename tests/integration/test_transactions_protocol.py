"""The transaction APIs on the wire, with raw requests: coordinator placement and
NOT_COORDINATOR, versions real clients rarely send (AddPartitionsToTxn v4+ batched with
verify_only, InitProducerId v3 KIP-360 fields), and the error codes Kafka answers with."""

from __future__ import annotations

import struct
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest
from kafka.protocol.admin.configs import IncrementalAlterConfigsRequest
from kafka.protocol.admin.transactions import (
    DescribeProducersRequest,
    DescribeTransactionsRequest,
    ListTransactionsRequest,
)
from kafka.protocol.consumer.group import OffsetFetchRequest
from kafka.protocol.metadata.find_coordinator import FindCoordinatorRequest
from kafka.protocol.producer.transaction import (
    AddOffsetsToTxnRequest,
    AddPartitionsToTxnRequest,
    AddPartitionsToTxnResponse,
    EndTxnRequest,
    InitProducerIdRequest,
    TxnOffsetCommitRequest,
    WriteTxnMarkersRequest,
)

from msklite import Cluster
from msklite.authz import AclOperation, Action, ResourceType
from msklite.clock import ManualClock
from msklite.coordinator.coordinator import partition_for
from msklite.errors import ErrorCode as E
from msklite.protocol.api_keys import ApiKey
from msklite.protocol.records import TRANSACTIONAL, encode_batch
from tests.integration.helpers import wait_until
from tests.integration.rawclient import RawClient, header
from tests.requests import fetch_request, produce_request


def _coordinator(cluster: Cluster, txn_id: str) -> tuple[str, str]:
    """(the coordinator's address, another broker's)."""
    with RawClient(cluster.bootstrap_servers) as c:
        found = c.request(FindCoordinatorRequest(version=3, key=txn_id, key_type=1), 3)
    assert found.error_code == E.NONE
    other = next(b.info for i, b in cluster.brokers.items() if i != found.node_id)
    return f"{found.host}:{found.port}", f"{other.host}:{other.port}"


def _init(c: RawClient, txn_id: str, version: int = 3, **fields: Any) -> Any:
    body: dict[str, Any] = {"transactional_id": txn_id, "transaction_timeout_ms": 60000}
    if version >= 3:
        body.update(producer_id=-1, producer_epoch=-1)
    body.update(fields)
    return c.request(InitProducerIdRequest(version=version, **body), version)


def _add_request(
    txn_id: str, pid: int, epoch: int, topics: dict[str, list[int]], v: int = 3
) -> AddPartitionsToTxnRequest:
    cls = AddPartitionsToTxnRequest
    return cls(
        version=v,
        v3_and_below_transactional_id=txn_id,
        v3_and_below_producer_id=pid,
        v3_and_below_producer_epoch=epoch,
        v3_and_below_topics=[
            cls.AddPartitionsToTxnTopic(name=t, partitions=ps) for t, ps in topics.items()
        ],
    )


def _add(
    c: RawClient, txn_id: str, pid: int, epoch: int, topics: dict[str, list[int]], v: int = 3
) -> Any:
    return c.request(_add_request(txn_id, pid, epoch, topics, v), v)


def _errors(resp: Any) -> dict[tuple[str, int], int]:
    return {
        (t.name, p.partition_index): p.partition_error_code
        for t in resp.results_by_topic_v3_and_below
        for p in t.results_by_partition
    }


def test_transaction_requests_and_their_errors(msk_cluster: Cluster, topic_name: str) -> None:
    msk_cluster.create_topic(topic_name, partitions=2)
    coordinator, other = _coordinator(msk_cluster, "raw-tx")
    with RawClient(other) as c:
        assert _init(c, "raw-tx").error_code == E.NOT_COORDINATOR
        assert _errors(_add(c, "raw-tx", 1, 0, {topic_name: [0]})) == {
            (topic_name, 0): E.NOT_COORDINATOR
        }
    with RawClient(coordinator) as c:
        assert _init(c, "raw-tx", transaction_timeout_ms=900001).error_code == (
            E.INVALID_TRANSACTION_TIMEOUT
        )
        assert _init(c, "").error_code == E.INVALID_REQUEST
        first = _init(c, "raw-tx")
        assert (first.error_code, first.producer_epoch) == (E.NONE, 0)
        pid = first.producer_id
        # an unknown partition fails the request; the others are not attempted
        errors = _errors(_add(c, "raw-tx", pid, 0, {topic_name: [0, 7]}))
        assert errors == {
            (topic_name, 0): E.OPERATION_NOT_ATTEMPTED,
            (topic_name, 7): E.UNKNOWN_TOPIC_OR_PARTITION,
        }
        assert _errors(_add(c, "raw-tx", pid + 1, 0, {topic_name: [0]})) == {
            (topic_name, 0): E.INVALID_PRODUCER_ID_MAPPING
        }
        assert _errors(_add(c, "raw-tx", pid, 0, {topic_name: [0]})) == {(topic_name, 0): E.NONE}

        # v4+: batched, verify_only answers per partition and adds nothing
        v = 4
        cls = AddPartitionsToTxnRequest
        verify = c.request(
            cls(
                version=v,
                transactions=[
                    cls.AddPartitionsToTxnTransaction(
                        transactional_id="raw-tx",
                        producer_id=pid,
                        producer_epoch=0,
                        verify_only=True,
                        topics=[cls.AddPartitionsToTxnTopic(name=topic_name, partitions=[0, 1])],
                    )
                ],
            ),
            v,
        )
        [result] = verify.results_by_transaction
        assert {
            p.partition_index: p.partition_error_code
            for t in result.topic_results
            for p in t.results_by_partition
        } == {0: E.NONE, 1: E.TRANSACTION_ABORTABLE}

        # KIP-360: naming the current id and epoch bumps it; a stale epoch is fenced. The bump
        # aborts the open transaction first (CONCURRENT_TRANSACTIONS until its markers land).
        bumped = _init(c, "raw-tx", producer_id=pid, producer_epoch=0)
        while bumped.error_code == E.CONCURRENT_TRANSACTIONS:
            bumped = _init(c, "raw-tx", producer_id=pid, producer_epoch=1)
        assert (bumped.error_code, bumped.producer_id, bumped.producer_epoch) == (E.NONE, pid, 2)
        assert _init(c, "raw-tx", 4, producer_id=pid, producer_epoch=0).error_code == (
            E.PRODUCER_FENCED
        )
        # v3 clients do not know PRODUCER_FENCED
        assert _init(c, "raw-tx", producer_id=pid, producer_epoch=0).error_code == (
            E.INVALID_PRODUCER_EPOCH
        )
        # before v2 a fenced producer is told INVALID_PRODUCER_EPOCH
        assert _errors(_add(c, "raw-tx", pid, 0, {topic_name: [0]}, v=1)) == {
            (topic_name, 0): E.INVALID_PRODUCER_EPOCH
        }
        assert _errors(_add(c, "raw-tx", pid, 0, {topic_name: [0]})) == {
            (topic_name, 0): E.PRODUCER_FENCED
        }

        end = EndTxnRequest(
            version=3, transactional_id="raw-tx", producer_id=pid, producer_epoch=2, committed=True
        )
        assert c.request(end, 3).error_code == E.INVALID_TXN_STATE  # nothing begun
        offsets = AddOffsetsToTxnRequest(
            version=3, transactional_id="raw-tx", producer_id=pid, producer_epoch=2, group_id="g"
        )
        assert c.request(offsets, 3).error_code == E.NONE
        assert c.request(end, 3).error_code == E.NONE
        # EndTxn answers once the prepare record is written, as Kafka's; the markers follow
        wait_until(
            lambda: any(
                t.transactional_id == "raw-tx" and t.state == "CompleteCommit"
                for t in msk_cluster.transactions()
            ),
            "the markers written",
        )

        assert msk_cluster.controller is not None
        leaders = [
            p.leader for p in msk_cluster.controller.topics["__transaction_state"].partitions
        ]
        here = leaders[partition_for("raw-tx", 50)]
        unknown_here = next(
            n for n in (f"nope-{i}" for i in range(1000)) if leaders[partition_for(n, 50)] == here
        )
        unknown_elsewhere = next(
            n for n in (f"nope-{i}" for i in range(1000)) if leaders[partition_for(n, 50)] != here
        )
        described = c.request(
            DescribeTransactionsRequest(
                version=0, transactional_ids=["raw-tx", unknown_here, unknown_elsewhere]
            ),
            0,
        )
        states = {s.transactional_id: s for s in described.transaction_states}
        assert states[unknown_here].error_code == E.TRANSACTIONAL_ID_NOT_FOUND
        assert states[unknown_elsewhere].error_code == E.NOT_COORDINATOR
        assert states["raw-tx"].producer_epoch == 2
        assert states["raw-tx"].transaction_state == "CompleteCommit"


def _leader_of(cluster: Cluster, topic: str, key: str) -> int:
    return cluster.partition(topic, partition_for(key, 50)).leader


def _committed(bootstrap: str, group: str, topic: str) -> int:
    with RawClient(bootstrap) as c:
        found = c.request(FindCoordinatorRequest(version=3, key=group, key_type=0), 3)
        assert found.error_code == E.NONE
    with RawClient(f"{found.host}:{found.port}") as c:
        fetched = c.request(
            OffsetFetchRequest(
                version=7,
                group_id=group,
                topics=[
                    OffsetFetchRequest.OffsetFetchRequestTopic(name=topic, partition_indexes=[0])
                ],
                require_stable=True,
            ),
            7,
        )
    assert fetched.error_code == E.NONE
    [partition] = fetched.topics[0].partitions
    assert partition.error_code == E.NONE
    return int(partition.committed_offset)


def test_transactional_offsets_survive_a_group_coordinator_move(
    msk_cluster: Cluster, topic_name: str
) -> None:
    """TxnOffsetCommit writes the offsets to __consumer_offsets at once, as records of the
    transaction: the group's coordinator is stopped before EndTxn, and the broker that takes
    its partition over replays them and commits them on the marker."""
    msk_cluster.create_topic(topic_name, partitions=1)
    with RawClient(msk_cluster.bootstrap_servers) as c:  # creates the internal topics
        for key_type in (0, 1):
            found = c.request(FindCoordinatorRequest(version=3, key="k", key_type=key_type), 3)
            assert found.error_code == E.NONE
    txn_id = "moved-tx"
    txn_node = _leader_of(msk_cluster, "__transaction_state", txn_id)
    group = next(
        g
        for g in (f"moved-group-{i}" for i in range(1000))
        if _leader_of(msk_cluster, "__consumer_offsets", g) != txn_node
    )
    group_node = _leader_of(msk_cluster, "__consumer_offsets", group)
    txn_info = msk_cluster.brokers[txn_node].info
    group_info = msk_cluster.brokers[group_node].info
    with RawClient(f"{txn_info.host}:{txn_info.port}") as c:
        init = _init(c, txn_id)
        pid, epoch = init.producer_id, init.producer_epoch
        add = AddOffsetsToTxnRequest(
            version=3,
            transactional_id=txn_id,
            producer_id=pid,
            producer_epoch=epoch,
            group_id=group,
        )
        assert c.request(add, 3).error_code == E.NONE
    with RawClient(f"{group_info.host}:{group_info.port}") as c:
        commit_cls = TxnOffsetCommitRequest
        committed = c.request(
            commit_cls(
                version=3,
                transactional_id=txn_id,
                group_id=group,
                producer_id=pid,
                producer_epoch=epoch,
                generation_id=-1,
                member_id="",
                group_instance_id=None,
                topics=[
                    commit_cls.TxnOffsetCommitRequestTopic(
                        name=topic_name,
                        partitions=[
                            commit_cls.TxnOffsetCommitRequestTopic.TxnOffsetCommitRequestPartition(
                                partition_index=0,
                                committed_offset=42,
                                committed_leader_epoch=-1,
                                committed_metadata="m",
                            )
                        ],
                    )
                ],
            ),
            3,
        )
        assert committed.topics[0].partitions[0].error_code == E.NONE
    # the offsets' records reach every replica before their leader goes
    offsets_partition = partition_for(group, 50)

    def replicated() -> bool:
        view = msk_cluster.partition("__consumer_offsets", offsets_partition)
        return set(view.high_watermarks.values()) == set(view.log_end_offsets.values())

    wait_until(replicated, "the offsets replicated")
    msk_cluster.stop_broker(group_node)
    assert msk_cluster.partition("__consumer_offsets", offsets_partition).leader != group_node
    with RawClient(f"{txn_info.host}:{txn_info.port}") as c:
        end = EndTxnRequest(
            version=3,
            transactional_id=txn_id,
            producer_id=pid,
            producer_epoch=epoch,
            committed=True,
        )
        assert c.request(end, 3).error_code == E.NONE
    wait_until(
        lambda: (
            next(t for t in msk_cluster.transactions() if t.transactional_id == txn_id).state
            == "CompleteCommit"
        ),
        "the transaction complete",
    )
    assert _committed(msk_cluster.bootstrap_servers, group, topic_name) == 42
    # and a restarted cluster member that loads the partition replays the marker too
    msk_cluster.start_broker(group_node)
    assert _committed(msk_cluster.bootstrap_servers, group, topic_name) == 42


# ---- WriteTxnMarkers and the partition side, raw ----


def _address(cluster: Cluster, node: int) -> str:
    info = cluster.brokers[node].info
    return f"{info.host}:{info.port}"


def _produce_txn(
    c: RawClient,
    topic: str,
    pid: int,
    epoch: int,
    seq: int,
    values: list[bytes],
    txn_id: str,
    version: int = 9,
) -> int:
    """A transactional batch to partition 0: its error code."""
    batch = encode_batch(
        [(None, v) for v in values],
        producer_id=pid,
        producer_epoch=epoch,
        base_sequence=seq,
        attributes=TRANSACTIONAL,
    )
    req = produce_request(topic, {0: batch}, version=version, acks=-1, transactional_id=txn_id)
    resp = c.request(req, version)
    return int(resp.responses[0].partition_responses[0].error_code)


def test_transactional_batches_without_a_transactional_id_are_refused(
    msk_cluster: Cluster, topic_name: str
) -> None:
    # Kafka's handleProduceRequest: transactional batches need WRITE on the request's
    # transactional id, and a request naming none fails whole, whatever the ACLs (none here).
    msk_cluster.create_topic(topic_name, partitions=2)
    leader = _address(msk_cluster, msk_cluster.partition(topic_name, 0).leader)
    batches = {
        0: encode_batch([(None, b"t")], producer_id=7, producer_epoch=0, attributes=TRANSACTIONAL),
        1: encode_batch([(None, b"plain")]),
    }
    with RawClient(leader) as c:
        resp = c.request(produce_request(topic_name, batches), 9)
    assert [(p.index, p.error_code) for p in resp.responses[0].partition_responses] == [
        (0, E.TRANSACTIONAL_ID_AUTHORIZATION_FAILED),
        (1, E.TRANSACTIONAL_ID_AUTHORIZATION_FAILED),
    ]
    for p in (0, 1):
        assert set(msk_cluster.partition(topic_name, p).log_end_offsets.values()) == {0}


def _lso(c: RawClient, topic: str) -> tuple[int, int]:
    """(high watermark, last stable offset) of partition 0, from a read_committed fetch."""
    req = fetch_request(topic, isolation_level=1)
    p = c.request(req, 12).responses[0].partitions[0]
    return int(p.high_watermark), int(p.last_stable_offset)


def _markers(
    c: RawClient,
    pid: int,
    epoch: int,
    commit: bool,
    topics: dict[str, list[int]],
    coordinator_epoch: int = 0,
) -> Any:
    cls = WriteTxnMarkersRequest
    marker = cls.WritableTxnMarker(
        producer_id=pid,
        producer_epoch=epoch,
        transaction_result=commit,
        topics=[
            cls.WritableTxnMarker.WritableTxnMarkerTopic(name=t, partition_indexes=ps)
            for t, ps in topics.items()
        ],
        coordinator_epoch=coordinator_epoch,
    )
    resp = c.request(cls(version=1, markers=[marker]), 1)
    return {
        (r.producer_id, t.name, p.partition_index): p.error_code
        for r in resp.markers
        for t in r.topics
        for p in t.partitions
    }


def _markers_v0(
    c: RawClient, pid: int, epoch: int, commit: bool, topic: str
) -> list[tuple[int, str, int, int]]:
    """WriteTxnMarkers v0 (non-flexible; kafka-python has no v0), built by hand."""
    name = topic.encode()
    body = (
        struct.pack(">iqhbi", 1, pid, epoch, int(commit), 1)
        + struct.pack(">h", len(name))
        + name
        + struct.pack(">iii", 1, 0, 0)  # partitions [0], coordinator epoch 0
    )
    c.correlation += 1
    c.send_frame(header(ApiKey.WRITE_TXN_MARKERS, 0, c.correlation) + body)
    r = c.read_frame()
    correlation, n_markers, got_pid, n_topics, name_len = struct.unpack_from(">iiqih", r)
    assert (correlation, n_markers, n_topics) == (c.correlation, 1, 1)
    pos = struct.calcsize(">iiqih")
    got_topic = r[pos : pos + name_len].decode()
    n_parts, partition, error = struct.unpack_from(">iih", r, pos + name_len)
    assert n_parts == 1 and len(r) == pos + name_len + struct.calcsize(">iih")
    return [(got_pid, got_topic, partition, error)]


def test_write_txn_markers_raw(msk_cluster: Cluster, topic_name: str) -> None:
    """WriteTxnMarkers v0 and v1 straight to a partition leader: the marker ends the open
    transaction there (the LSO moves up to the high watermark); a follower, an unknown
    partition and an older producer epoch get Kafka's errors."""
    msk_cluster.create_topic(topic_name, partitions=1)
    txn_id = "markers-tx"
    coordinator, _ = _coordinator(msk_cluster, txn_id)
    with RawClient(coordinator) as c:
        init = _init(c, txn_id)
        pid, epoch = init.producer_id, init.producer_epoch
        assert _errors(_add(c, txn_id, pid, epoch, {topic_name: [0]})) == {(topic_name, 0): E.NONE}
    leader = msk_cluster.partition(topic_name, 0).leader
    follower = next(n for n in msk_cluster.brokers if n != leader)
    with RawClient(_address(msk_cluster, leader)) as c:
        assert _produce_txn(c, topic_name, pid, epoch, 0, [b"a", b"b"], txn_id) == E.NONE
        assert _lso(c, topic_name) == (2, 0)  # the open transaction holds read_committed back
        assert _markers(c, pid, epoch, True, {topic_name: [0], "no-such-topic": [0]}) == {
            (pid, topic_name, 0): E.NONE,
            (pid, "no-such-topic", 0): E.UNKNOWN_TOPIC_OR_PARTITION,
        }
        assert _lso(c, topic_name) == (3, 3)  # the marker sits at offset 2
        # v0, a newer epoch: written; then the older epoch is refused
        assert _markers_v0(c, pid, epoch + 1, False, topic_name) == [(pid, topic_name, 0, E.NONE)]
        assert _markers(c, pid, epoch, True, {topic_name: [0]}) == {
            (pid, topic_name, 0): E.INVALID_PRODUCER_EPOCH
        }
        assert _lso(c, topic_name) == (4, 4)
        # a coordinator epoch older than the producer's last marker's: a deposed coordinator
        assert _markers(c, pid, epoch + 1, False, {topic_name: [0]}, coordinator_epoch=7) == {
            (pid, topic_name, 0): E.NONE
        }
        assert _markers(c, pid, epoch + 1, False, {topic_name: [0]}, coordinator_epoch=6) == {
            (pid, topic_name, 0): E.TRANSACTION_COORDINATOR_FENCED
        }
        [producer] = [p for p in _producer_states(c, topic_name) if p.producer_id == pid]
        assert (producer.producer_epoch, producer.coordinator_epoch) == (epoch + 1, 7)
    with RawClient(_address(msk_cluster, follower)) as c:
        assert _markers(c, pid, epoch + 1, True, {topic_name: [0]}) == {
            (pid, topic_name, 0): E.NOT_LEADER_OR_FOLLOWER
        }


def test_a_late_transactional_batch_cannot_hang_a_partition(
    msk_cluster: Cluster, topic_name: str
) -> None:
    """KIP-890 part 1, the hanging transaction: a batch that reaches a partition after its
    transaction was aborted (or one never added to it) would open a transaction there that no
    marker ever ends, holding read_committed back forever. The leader asks the coordinator
    first and refuses it: INVALID_TXN_STATE to Produce v9, TRANSACTION_ABORTABLE to v11."""
    msk_cluster.create_topic(topic_name, partitions=1)
    other = topic_name + "-other"
    msk_cluster.create_topic(other, partitions=1)
    txn_id = "hanging-tx"
    coordinator, _ = _coordinator(msk_cluster, txn_id)
    leader = _address(msk_cluster, msk_cluster.partition(topic_name, 0).leader)
    other_leader = _address(msk_cluster, msk_cluster.partition(other, 0).leader)
    with RawClient(coordinator) as co, RawClient(leader) as c, RawClient(other_leader) as o:
        init = _init(co, txn_id)
        pid, epoch = init.producer_id, init.producer_epoch
        assert _errors(_add(co, txn_id, pid, epoch, {topic_name: [0]})) == {(topic_name, 0): E.NONE}
        assert _produce_txn(c, topic_name, pid, epoch, 0, [b"in"], txn_id) == E.NONE
        # a partition never added to the transaction
        assert _produce_txn(o, other, pid, epoch, 0, [b"stray"], txn_id) == E.INVALID_TXN_STATE
        assert _produce_txn(o, other, pid, epoch, 0, [b"stray"], txn_id, 11) == (
            E.TRANSACTION_ABORTABLE
        )
        # the transaction aborts; a batch of it that arrives late is refused
        end = EndTxnRequest(
            version=3,
            transactional_id=txn_id,
            producer_id=pid,
            producer_epoch=epoch,
            committed=False,
        )
        assert co.request(end, 3).error_code == E.NONE
        wait_until(lambda: _lso(c, topic_name) == (2, 2), "the abort marker written")
        assert _produce_txn(c, topic_name, pid, epoch, 1, [b"late"], txn_id) == (
            E.INVALID_TXN_STATE
        )
        # a fenced epoch is INVALID_PRODUCER_EPOCH (the coordinator's PRODUCER_FENCED)
        assert _produce_txn(o, other, pid, epoch + 5, 0, [b"x"], txn_id) == (
            E.INVALID_PRODUCER_EPOCH
        )
        # nothing hangs: both partitions are stable up to their end
        assert _lso(c, topic_name) == (2, 2)
        assert _lso(o, other) == (0, 0)
        # with verification off (a cluster-wide dynamic config) the late batch goes in and
        # hangs the partition, as it did before KIP-890
        req_cls = IncrementalAlterConfigsRequest
        res_cls = req_cls.AlterConfigsResource
        off = res_cls.AlterableConfig(
            name="transaction.partition.verification.enable", config_operation=0, value="false"
        )
        altered = co.request(
            req_cls(
                version=1,
                resources=[res_cls(resource_type=4, resource_name="", configs=[off])],
                validate_only=False,
            ),
            1,
        )
        assert altered.responses[0].error_code == E.NONE
        assert _produce_txn(c, topic_name, pid, epoch, 1, [b"late"], txn_id) == E.NONE
        assert _lso(c, topic_name) == (3, 2)


def _producer_states(c: RawClient, topic: str) -> list[Any]:
    req = DescribeProducersRequest(
        version=0,
        topics=[DescribeProducersRequest.TopicRequest(name=topic, partition_indexes=[0])],
    )
    [partition] = c.request(req, 0).topics[0].partitions
    assert partition.error_code == E.NONE
    return list(partition.active_producers)


def _active_producers(c: RawClient, topic: str) -> list[int]:
    return [p.producer_id for p in _producer_states(c, topic)]


def _produce_idempotent(c: RawClient, topic: str, pid: int, seq: int, timestamp: int) -> int:
    batch = encode_batch(
        [(None, b"v")], producer_id=pid, producer_epoch=0, base_sequence=seq, timestamp=timestamp
    )
    resp = c.request(produce_request(topic, {0: batch}), 9)
    return int(resp.responses[0].partition_responses[0].error_code)


def test_idle_producer_ids_expire_on_the_injected_clock(tmp_path: Path) -> None:
    """producer.id.expiration.ms (default one day): the partition forgets a producer idle that
    long, on the cluster's clock, and takes its next batch as a new producer's, whatever its
    sequence, as Kafka does."""
    clock = ManualClock()
    with Cluster(brokers=1, data_dir=str(tmp_path), clock=clock) as cluster:
        cluster.create_topic("idle", partitions=1, replication_factor=1)
        with RawClient(cluster.bootstrap_servers) as c:
            init = c.request(
                InitProducerIdRequest(version=1, transactional_id=None, transaction_timeout_ms=0), 1
            )
            pid = init.producer_id
            assert _produce_idempotent(c, "idle", pid, 0, clock.now_ms()) == E.NONE
            assert _produce_idempotent(c, "idle", pid, 5, clock.now_ms()) == (
                E.OUT_OF_ORDER_SEQUENCE_NUMBER
            )
            clock.advance(86_400_000 - 600_000)  # the check runs, too early for this one
            clock.advance(600_000 - 1)
            assert _active_producers(c, "idle") == [pid]
            clock.advance(600_000)
            wait_until(lambda: _active_producers(c, "idle") == [], "the producer expired")
            assert _produce_idempotent(c, "idle", pid, 5, clock.now_ms()) == E.NONE
            assert _active_producers(c, "idle") == [pid]


@pytest.mark.msk(kafka_version="4.1.x")
def test_list_transactions_v2_filters_by_pattern(msk_cluster: Cluster, topic_name: str) -> None:
    """ListTransactions v2 (Kafka 4.1): the whole transactional id must match the pattern;
    one that does not compile is INVALID_REGULAR_EXPRESSION. Each broker lists what it
    coordinates, so every broker is asked."""
    for txn_id in ("orders-1", "orders-2", "payments-1"):
        coordinator, _ = _coordinator(msk_cluster, txn_id)
        with RawClient(coordinator) as c:
            assert _init(c, txn_id).error_code == E.NONE

    def listed(pattern: str | None) -> tuple[set[int], set[str]]:
        errors, ids = set(), set()
        for node in msk_cluster.brokers:
            with RawClient(_address(msk_cluster, node)) as c:
                resp = c.request(
                    ListTransactionsRequest(
                        version=2,
                        state_filters=[],
                        producer_id_filters=[],
                        duration_filter=-1,
                        transactional_id_pattern=pattern,
                    ),
                    2,
                )
            errors.add(resp.error_code)
            ids |= {t.transactional_id for t in resp.transaction_states}
        return errors, ids

    assert listed("orders-.*") == ({E.NONE}, {"orders-1", "orders-2"})
    assert listed("orders") == ({E.NONE}, set())  # the whole id, not a part of it
    assert listed("") == ({E.NONE}, {"orders-1", "orders-2", "payments-1"})
    assert listed(None) == ({E.NONE}, {"orders-1", "orders-2", "payments-1"})
    assert listed("orders-(") == ({E.INVALID_REGULAR_EXPRESSION}, set())
    with RawClient(msk_cluster.bootstrap_servers) as c:
        versions = {k.api_key: (k.min_version, k.max_version) for k in c.api_versions().api_keys}
    # Kafka 4.0 dropped WriteTxnMarkers v0; EndTxn v5 (KIP-890 part 2) is not served
    assert versions[ApiKey.LIST_TRANSACTIONS] == (0, 2)
    assert versions[ApiKey.WRITE_TXN_MARKERS] == (1, 1)
    assert versions[ApiKey.END_TXN] == (0, 4)


def test_list_transactions_v2_is_kafka_4_1s(msk_cluster: Cluster) -> None:
    """Under the default 3.9.x emulation ListTransactions stops at v1, as Kafka 3.9's did."""
    with RawClient(msk_cluster.bootstrap_servers) as c:
        versions = {k.api_key: (k.min_version, k.max_version) for k in c.api_versions().api_keys}
    assert versions[ApiKey.LIST_TRANSACTIONS] == (0, 1)
    assert versions[ApiKey.WRITE_TXN_MARKERS] == (0, 1)


class _NoClusterActions:
    """Allows everything but ALTER and CLUSTER_ACTION on the cluster."""

    def authorize(self, session: Any, actions: Sequence[Action]) -> list[bool]:
        return [
            not (
                a.resource_type == ResourceType.CLUSTER
                and a.operation in (AclOperation.ALTER, AclOperation.CLUSTER_ACTION)
            )
            for a in actions
        ]

    def authorize_by_resource_type(
        self, session: Any, operation: AclOperation, resource_type: ResourceType
    ) -> bool:
        return True

    def allows_everything(self, session: Any) -> bool:
        return False


def test_write_txn_markers_is_a_cluster_action(msk_cluster: Cluster, topic_name: str) -> None:
    msk_cluster.create_topic(topic_name, partitions=1)
    leader = msk_cluster.partition(topic_name, 0).leader
    broker = msk_cluster.brokers[leader]
    broker.ctx.authorizer = _NoClusterActions()
    with RawClient(_address(msk_cluster, leader)) as c:
        assert _markers(c, 5, 0, True, {topic_name: [0]}) == {
            (5, topic_name, 0): E.CLUSTER_AUTHORIZATION_FAILED
        }
        assert _lso(c, topic_name) == (0, 0)  # nothing written


def test_add_partitions_waits_for_the_previous_markers_at_most_a_second(
    tmp_path: Path,
) -> None:
    """EndTxn answers once the prepare record is written, as Kafka's; the markers follow. The
    producer's next AddPartitionsToTxn, meeting them still being written (the data
    partition's followers paused: the marker cannot reach the high watermark), waits for
    them instead of getting CONCURRENT_TRANSACTIONS: answered NONE once they land, or
    CONCURRENT_TRANSACTIONS once 1 s has passed on the cluster's clock."""
    clock = ManualClock()
    with Cluster(brokers=3, data_dir=str(tmp_path), clock=clock) as cluster:
        cluster.create_topic("paused", partitions=1)
        txn_id = "bounded-tx"
        coordinator, _ = _coordinator(cluster, txn_id)
        [node] = [n for n in cluster.brokers if _address(cluster, n) == coordinator]
        handled = cluster.brokers[node].ctx.stats.requests[ApiKey.ADD_PARTITIONS_TO_TXN]
        leader = cluster.partition("paused", 0).leader
        followers = [n for n in cluster.partition("paused", 0).replicas if n != leader]

        def state() -> str:
            [txn] = [t for t in cluster.transactions() if t.transactional_id == txn_id]
            return txn.state

        with RawClient(coordinator) as co, RawClient(_address(cluster, leader)) as c:
            init = _init(co, txn_id)
            pid, epoch = init.producer_id, init.producer_epoch

            def send_parked_add() -> None:
                before = handled[3]
                co.send_only(_add_request(txn_id, pid, epoch, {"paused": [0]}), 3)
                wait_until(lambda: handled[3] > before, "AddPartitionsToTxn taken")
                c.api_versions()  # a later turn of the brokers' loop: it is parked by now

            end = EndTxnRequest(
                version=3,
                transactional_id=txn_id,
                producer_id=pid,
                producer_epoch=epoch,
                committed=True,
            )
            for seq, resume in ((0, True), (1, False)):
                assert _errors(_add(co, txn_id, pid, epoch, {"paused": [0]})) == {
                    ("paused", 0): E.NONE
                }
                assert _produce_txn(c, "paused", pid, epoch, seq, [b"v"], txn_id) == E.NONE
                for f in followers:
                    cluster.pause_replication(f, "paused", 0)
                assert co.request(end, 3).error_code == E.NONE
                assert state() == "PrepareCommit"
                send_parked_add()
                if resume:
                    for f in followers:
                        cluster.resume_replication(f, "paused", 0)
                    expected = E.NONE
                else:
                    clock.advance(1000)
                    expected = E.CONCURRENT_TRANSACTIONS
                answer = AddPartitionsToTxnResponse.decode(co.read_frame(), version=3, header=True)
                assert _errors(answer) == {("paused", 0): expected}
            assert state() == "PrepareCommit"
            for f in followers:
                cluster.resume_replication(f, "paused", 0)
            wait_until(lambda: state() == "CompleteCommit", "the markers written")
