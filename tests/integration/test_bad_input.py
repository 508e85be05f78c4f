"""Bad input gets Kafka's answer — an error code, or the connection closed where Kafka closes
it — and the broker keeps serving every other connection without losing acknowledged data."""

from __future__ import annotations

import random
import struct
import time
from collections.abc import Iterator

import pytest
from aiokafka import AIOKafkaConsumer
from aiokafka import TopicPartition as AioTopicPartition
from confluent_kafka import OFFSET_BEGINNING, Consumer, TopicPartition
from kafka import KafkaConsumer
from kafka import TopicPartition as KpTopicPartition
from kafka.protocol.metadata.api_versions import ApiVersionsResponse
from kafka.protocol.metadata.metadata import MetadataRequest

from msklite import Cluster
from msklite.errors import ErrorCode
from msklite.protocol.records import HEADER_SIZE, encode_batch, seal_batch
from tests.integration.rawclient import RawClient, header
from tests.requests import fetch_request, produce_request


@pytest.fixture
def cluster(msk_cluster: Cluster) -> Iterator[Cluster]:
    msk_cluster.create_topic("good", partitions=3)
    yield msk_cluster


def _leader_of(cluster: Cluster, topic: str, partition: int) -> str:
    assert cluster.controller is not None
    leader = cluster.controller.topics[topic].partitions[partition].leader
    b = cluster.brokers[leader].info
    return f"{b.host}:{b.port}"


def _non_leader_of(cluster: Cluster, topic: str, partition: int) -> str:
    assert cluster.controller is not None
    leader = cluster.controller.topics[topic].partitions[partition].leader
    b = next(b.info for i, b in cluster.brokers.items() if i != leader)
    return f"{b.host}:{b.port}"


def _produce(
    client: RawClient, topic: str, parts: list[tuple[int, bytes | None]], acks: int = 1
) -> dict[int, tuple[int, int]]:
    """{partition: (error_code, base_offset)}"""
    resp = client.request(produce_request(topic, dict(parts), acks=acks), 9)
    [t] = resp.responses
    return {p.index: (p.error_code, p.base_offset) for p in t.partition_responses}


def _still_serving(cluster: Cluster) -> None:
    for broker in cluster.brokers.values():
        with RawClient(f"{broker.info.host}:{broker.info.port}") as c:
            assert c.api_versions().error_code == 0


def _fetch_values(cluster: Cluster, topic: str, partition: int) -> list[bytes | None]:
    from msklite.protocol.records import iter_records, read_header

    with RawClient(_leader_of(cluster, topic, partition)) as c:
        req = fetch_request(topic, partition=partition, max_bytes=10**7)
        resp = c.request(req, 12)
    records = resp.responses[0].partitions[0].records or b""
    values = []
    pos = 0
    while pos < len(records):
        h = read_header(records, pos)
        values += [r.value for r in iter_records(records[pos : pos + h.size])]
        pos += h.size
    return values


@pytest.mark.parametrize(
    "garbage",
    [
        pytest.param(struct.pack(">i", 104_857_601), id="oversize-frame"),
        pytest.param(struct.pack(">i", -5), id="negative-size"),
        pytest.param(struct.pack(">i", 3) + b"\x00\x03\x00", id="frame-shorter-than-a-header"),
        pytest.param(
            struct.pack(">i", 14) + header(3, 1, 1) + b"\x00\x00\x00\x09",
            id="truncated-metadata-body",
        ),
        pytest.param(struct.pack(">i", 10) + header(999, 0, 1)[:10], id="unknown-api-key"),
        pytest.param(
            struct.pack(">i", 15) + header(3, 99, 1) + b"\xff\xff\xff\xff\x00",
            id="unsupported-metadata-version",
        ),
        pytest.param(
            struct.pack(">i", 13) + header(0, 1, 1),
            id="produce-v1-removed-in-kafka-4",
        ),
        pytest.param(
            struct.pack(">i", 17) + header(3, 9, 1) + b"\xff\xff\xff\xff\xff",
            id="string-longer-than-frame",
        ),
    ],
)
def test_malformed_requests_close_only_that_connection(cluster: Cluster, garbage: bytes) -> None:
    with RawClient(cluster.bootstrap_servers) as bystander:
        assert bystander.api_versions().error_code == 0
        with RawClient(cluster.bootstrap_servers) as bad:
            bad.send_raw(garbage)
            assert bad.is_closed_by_peer()
        assert bystander.api_versions().error_code == 0
    _still_serving(cluster)


def test_a_null_where_the_spec_forbids_one_closes_that_connection_only(cluster: Cluster) -> None:
    from kafka.protocol.admin.groups import DeleteGroupsRequest

    body = DeleteGroupsRequest(version=0, groups_names=None).encode(version=0)
    with RawClient(cluster.bootstrap_servers) as bystander:
        with RawClient(cluster.bootstrap_servers) as bad:
            bad.send_frame(header(42, 0, 1) + bytes(body))
            assert bad.is_closed_by_peer()
        assert bystander.api_versions().error_code == 0
    # the peer's fault, not ours
    assert all(cluster.broker_stats(n).internal_errors == 0 for n in cluster.brokers)


def test_a_client_id_that_is_not_utf8_is_answered(cluster: Cluster) -> None:
    with RawClient(cluster.bootstrap_servers) as c:
        c.send_frame(header(18, 0, 7, client_id=b"app-\xff\xfe"))
        frame = c.read_frame()
    correlation, error = struct.unpack_from(">ih", frame)
    assert (correlation, error) == (7, 0)


def test_a_handlers_own_error_reaches_clients_as_unknown_server_error(
    cluster: Cluster, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A bug of ours in a handler: counted per broker, and clients get Kafka's answer
    (UNKNOWN_SERVER_ERROR in the response) rather than a dropped connection."""
    import dataclasses
    from typing import NoReturn

    from confluent_kafka.admin import AdminClient

    from msklite.handlers import HANDLERS
    from msklite.protocol.api_keys import ApiKey

    def broken(*args: object) -> NoReturn:
        raise TypeError("a bug of ours")

    spec = HANDLERS[ApiKey.LIST_GROUPS]
    monkeypatch.setitem(HANDLERS, ApiKey.LIST_GROUPS, dataclasses.replace(spec, handler=broken))
    admin = AdminClient({"bootstrap.servers": cluster.bootstrap_servers})
    listed = admin.list_consumer_groups().result(10)
    assert listed.valid == []
    assert {e.code() for e in listed.errors} == {ErrorCode.UNKNOWN_SERVER_ERROR}
    counts = [cluster.broker_stats(n).internal_errors for n in cluster.brokers]
    assert all(n >= 1 for n in counts), counts
    _still_serving(cluster)


def test_api_versions_at_an_unknown_version_gets_the_kip511_answer(cluster: Cluster) -> None:
    with RawClient(cluster.bootstrap_servers) as c:
        c.send_frame(header(18, 99, 42) + b"\x00garbage")
        frame = c.read_frame()
    (correlation,) = struct.unpack_from(">i", frame)
    assert correlation == 42
    resp = ApiVersionsResponse.decode(frame[4:], version=0)
    assert resp.error_code == ErrorCode.UNSUPPORTED_VERSION
    assert [(k.api_key, k.min_version, k.max_version) for k in resp.api_keys] == [(18, 0, 4)]


def test_one_bad_partition_does_not_fail_the_others(cluster: Cluster) -> None:
    corrupt = bytearray(encode_batch([(None, b"bad")]))
    corrupt[-1] ^= 0x55
    assert cluster.controller is not None
    parts = cluster.controller.topics["good"].partitions
    # Send to the leader of partition 0 a request for all three partitions: 0 is good, the
    # others are either corrupt or led elsewhere.
    with RawClient(_leader_of(cluster, "good", 0)) as c:
        result = _produce(
            c,
            "good",
            [
                (0, encode_batch([(None, b"ok")])),
                (1, bytes(corrupt)),
                (2, encode_batch([(None, b"x")])),
            ],
        )
    assert result[0] == (ErrorCode.NONE, 0)
    for p in (1, 2):
        expected = (
            ErrorCode.CORRUPT_MESSAGE
            if p == 1 and parts[1].leader == parts[0].leader
            else ErrorCode.NOT_LEADER_OR_FOLLOWER
            if parts[p].leader != parts[0].leader
            else ErrorCode.NONE
        )
        assert result[p][0] == expected
    assert _fetch_values(cluster, "good", 0) == [b"ok"]


@pytest.mark.parametrize(
    ("records", "code"),
    [
        (lambda b: b[:-3], ErrorCode.CORRUPT_MESSAGE),
        (lambda b: b + b, ErrorCode.INVALID_RECORD),
        (lambda b: b"", ErrorCode.INVALID_RECORD),
        (lambda b: None, ErrorCode.INVALID_RECORD),
    ],
    ids=["truncated-batch", "two-batches", "empty", "null"],
)
def test_bad_batches(cluster: Cluster, records, code: ErrorCode) -> None:
    with RawClient(_leader_of(cluster, "good", 1)) as c:
        assert _produce(c, "good", [(1, encode_batch([(None, b"keep")]))]) == {1: (0, 0)}
        result = _produce(c, "good", [(1, records(encode_batch([(None, b"v")])))])
        assert result[1][0] == code
        assert _produce(c, "good", [(1, encode_batch([(None, b"after")]))]) == {1: (0, 1)}
    assert _fetch_values(cluster, "good", 1) == [b"keep", b"after"]


def test_batch_over_max_message_bytes(cluster: Cluster) -> None:
    cluster.create_topic("small", configs={"max.message.bytes": "1000"})
    with RawClient(_leader_of(cluster, "small", 0)) as c:
        result = _produce(c, "small", [(0, encode_batch([(None, b"x" * 2000)]))])
    assert result[0][0] == ErrorCode.MESSAGE_TOO_LARGE


def test_unknown_topic_non_leader_and_bad_acks(cluster: Cluster) -> None:
    batch = encode_batch([(None, b"v")])
    with RawClient(_leader_of(cluster, "good", 0)) as c:
        assert _produce(c, "nope", [(0, batch)])[0][0] == ErrorCode.UNKNOWN_TOPIC_OR_PARTITION
        assert _produce(c, "good", [(7, batch)])[7][0] == ErrorCode.UNKNOWN_TOPIC_OR_PARTITION
        assert _produce(c, "good", [(0, batch)], acks=2)[0][0] == ErrorCode.INVALID_REQUIRED_ACKS
    with RawClient(_non_leader_of(cluster, "good", 0)) as c:
        assert _produce(c, "good", [(0, batch)])[0][0] == ErrorCode.NOT_LEADER_OR_FOLLOWER


def test_acks_zero_sends_no_response(cluster: Cluster) -> None:
    with RawClient(_leader_of(cluster, "good", 2)) as c:
        batch = encode_batch([(None, b"fire-and-forget")])
        c.send_only(produce_request("good", {2: batch}, acks=0, timeout_ms=100), 9)
        # The next response on this connection answers the next request, not the produce.
        resp = c.request(MetadataRequest(version=1, topics=None), 1)
        assert resp.header.correlation_id == 2
    assert _fetch_values(cluster, "good", 2) == [b"fire-and-forget"]


# ---- poison batches: a correct CRC around records no consumer can read ----

_GOOD = [b"g0", b"g1", b"g2"]


def _poison(kind: str) -> bytes:
    if kind == "gzip-flag-over-raw-records":
        return seal_batch(encode_batch([(b"k", b"p")] * 3)[HEADER_SIZE:], 3, attributes=1)
    return seal_batch(random.Random(9).randbytes(2000), 5)  # random bytes as 5 records


_POISONS = [
    pytest.param("gzip-flag-over-raw-records", ErrorCode.CORRUPT_MESSAGE, id="gzip-over-raw"),
    pytest.param("random-records", ErrorCode.INVALID_RECORD, id="random-records"),
]


def _produce_around_poison(cluster: Cluster, topic: str, kind: str, code: ErrorCode) -> None:
    """Two good records, the poison batch (refused, nothing stored on any replica), one more."""
    cluster.create_topic(topic)
    with RawClient(_leader_of(cluster, topic, 0)) as c:
        good: list[tuple[int, bytes | None]] = [(0, encode_batch([(None, v)])) for v in _GOOD]
        assert _produce(c, topic, good[:1], acks=-1) == {0: (0, 0)}
        assert _produce(c, topic, good[1:2], acks=-1) == {0: (0, 1)}
        assert set(cluster.partition(topic, 0).log_end_offsets.values()) == {2}
        assert _produce(c, topic, [(0, _poison(kind))], acks=-1) == {0: (code, -1)}
        assert set(cluster.partition(topic, 0).log_end_offsets.values()) == {2}
        assert _produce(c, topic, good[2:], acks=-1) == {0: (0, 2)}


@pytest.mark.parametrize(("kind", "code"), _POISONS)
def test_poison_batch_is_refused_and_confluent_reads_past_it(
    cluster: Cluster, topic_name: str, kind: str, code: ErrorCode
) -> None:
    _produce_around_poison(cluster, topic_name, kind, code)
    consumer = Consumer(
        {
            "bootstrap.servers": cluster.bootstrap_servers,
            "group.id": "unused",
            "enable.auto.commit": False,
        }
    )
    consumer.assign([TopicPartition(topic_name, 0, OFFSET_BEGINNING)])
    got: list[tuple[int, bytes | None]] = []
    deadline = time.monotonic() + 15
    while len(got) < len(_GOOD) and time.monotonic() < deadline:
        msg = consumer.poll(0.5)
        if msg is not None:
            assert msg.error() is None, msg.error()
            got.append((msg.offset() or 0, msg.value()))
    [position] = consumer.position([TopicPartition(topic_name, 0)])
    consumer.close()
    assert got == list(enumerate(_GOOD))
    assert position.offset == len(_GOOD)  # at the log end: nothing left to loop on


@pytest.mark.parametrize(("kind", "code"), _POISONS)
async def test_poison_batch_is_refused_and_aiokafka_reads_past_it(
    cluster: Cluster, topic_name: str, kind: str, code: ErrorCode
) -> None:
    _produce_around_poison(cluster, topic_name, kind, code)
    consumer = AIOKafkaConsumer(
        bootstrap_servers=cluster.bootstrap_servers,
        group_id=None,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
    )
    await consumer.start()
    try:
        tp = AioTopicPartition(topic_name, 0)
        consumer.assign([tp])
        got: list[tuple[int, bytes | None]] = []
        deadline = time.monotonic() + 15
        while len(got) < len(_GOOD):
            assert time.monotonic() < deadline, f"got {got}"
            for records in (await consumer.getmany(timeout_ms=200)).values():
                got += [(r.offset, r.value) for r in records]
        assert got == list(enumerate(_GOOD))
        assert await consumer.position(tp) == len(_GOOD)
    finally:
        await consumer.stop()


@pytest.mark.parametrize(("kind", "code"), _POISONS)
def test_poison_batch_is_refused_and_kafka_python_reads_past_it(
    cluster: Cluster, topic_name: str, kind: str, code: ErrorCode
) -> None:
    _produce_around_poison(cluster, topic_name, kind, code)
    consumer = KafkaConsumer(
        bootstrap_servers=cluster.bootstrap_servers,
        group_id=None,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
    )
    tp = KpTopicPartition(topic_name, 0)
    consumer.assign([tp])
    got: list[tuple[int, bytes | None]] = []
    deadline = time.monotonic() + 15
    while len(got) < len(_GOOD) and time.monotonic() < deadline:
        for records in consumer.poll(timeout_ms=200).values():
            got += [(r.offset, r.value) for r in records]
    position = consumer.position(tp)
    consumer.close()
    assert got == list(enumerate(_GOOD))
    assert position == len(_GOOD)


def test_records_refused_by_topic_rules_are_named(cluster: Cluster, topic_name: str) -> None:
    """A null key on a compacted topic: INVALID_RECORD, with the record's index in the answer's
    record_errors (Produce v8+), as Kafka reports a RecordValidationException."""
    cluster.create_topic(topic_name, configs={"cleanup.policy": "compact"})
    batch = encode_batch([(b"k", b"kept?"), (None, b"no key")])
    with RawClient(_leader_of(cluster, topic_name, 0)) as c:
        [p] = c.request(produce_request(topic_name, {0: batch}), 9).responses[0].partition_responses
    assert p.error_code == ErrorCode.INVALID_RECORD
    assert [
        (e.batch_index, "without key" in e.batch_index_error_message) for e in p.record_errors
    ] == [(1, True)]
    assert set(cluster.partition(topic_name, 0).log_end_offsets.values()) == {0}
