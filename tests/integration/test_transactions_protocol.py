"""The transaction APIs on the wire, with raw requests: coordinator placement and
NOT_COORDINATOR, versions real clients rarely send (AddPartitionsToTxn v4+ batched with
verify_only, InitProducerId v3 KIP-360 fields), and the error codes Kafka answers with."""

from __future__ import annotations

from typing import Any

from kafka.protocol.admin.transactions import DescribeTransactionsRequest
from kafka.protocol.metadata.find_coordinator import FindCoordinatorRequest
from kafka.protocol.producer.transaction import (
    AddOffsetsToTxnRequest,
    AddPartitionsToTxnRequest,
    EndTxnRequest,
    InitProducerIdRequest,
)

from msklite import Cluster
from msklite.coordinator.coordinator import partition_for
from msklite.errors import ErrorCode as E
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
