"""The transaction APIs on the wire, with raw requests: coordinator placement and
NOT_COORDINATOR, versions real clients rarely send (AddPartitionsToTxn v4+ batched with
verify_only, InitProducerId v3 KIP-360 fields), and the error codes Kafka answers with."""

from __future__ import annotations

from typing import Any

from kafka.protocol.admin.transactions import DescribeTransactionsRequest
from kafka.protocol.consumer.group import OffsetFetchRequest
from kafka.protocol.metadata.find_coordinator import FindCoordinatorRequest
from kafka.protocol.producer.transaction import (
    AddOffsetsToTxnRequest,
    AddPartitionsToTxnRequest,
    EndTxnRequest,
    InitProducerIdRequest,
    TxnOffsetCommitRequest,
)

from msklite import Cluster
from msklite.coordinator.coordinator import partition_for
from msklite.errors import ErrorCode as E
from tests.integration.helpers import wait_until
from tests.integration.rawclient import RawClient


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


def _add(
    c: RawClient, txn_id: str, pid: int, epoch: int, topics: dict[str, list[int]], v: int = 3
) -> Any:
    cls = AddPartitionsToTxnRequest
    return c.request(
        cls(
            version=v,
            v3_and_below_transactional_id=txn_id,
            v3_and_below_producer_id=pid,
            v3_and_below_producer_epoch=epoch,
            v3_and_below_topics=[
                cls.AddPartitionsToTxnTopic(name=t, partitions=ps) for t, ps in topics.items()
            ],
        ),
        v,
    )


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
        } == {0: E.NONE, 1: E.INVALID_TXN_STATE}

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
        assert states["raw-tx"].transaction_state in ("PrepareCommit", "CompleteCommit")


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
