"""The hand-written codecs (ApiVersions, Metadata, Produce, Fetch) against kafka-python's
classes generated from Apache Kafka's JSON specs: what one encodes the other decodes, for
every version we serve, and every byte is consumed."""

from __future__ import annotations

import uuid

import pytest

from msklite.protocol import api_versions, fetch, metadata, produce
from msklite.protocol import messages as spec
from msklite.protocol.api_keys import ApiKey
from msklite.protocol.primitives import Reader
from msklite.protocol.records import encode_batch


def _reader(data: bytes | bytearray) -> Reader:
    return Reader(memoryview(bytes(data)))


@pytest.mark.parametrize("version", range(3, 12))
def test_produce_request_decodes_what_the_spec_encodes(version: int) -> None:
    req_cls = spec.request_class(ApiKey.PRODUCE)
    batch = encode_batch([(b"k", b"v")])
    topic = req_cls.TopicProduceData(
        name="orders",
        partition_data=[
            req_cls.TopicProduceData.PartitionProduceData(index=2, records=batch),
            req_cls.TopicProduceData.PartitionProduceData(index=5, records=None),
        ],
    )
    wire = req_cls(
        version=version, transactional_id=None, acks=-1, timeout_ms=1500, topic_data=[topic]
    ).encode(version=version)
    r = _reader(wire)
    got = produce.decode_request(r, version)
    assert r.remaining() == 0
    assert (got.transactional_id, got.acks, got.timeout_ms) == (None, -1, 1500)
    [t] = got.topic_data
    assert t.name == "orders"
    assert [p.index for p in t.partition_data] == [2, 5]
    assert bytes(t.partition_data[0].records or b"") == batch
    assert t.partition_data[1].records is None


@pytest.mark.parametrize("version", range(3, 12))
def test_produce_response_is_what_the_spec_decodes(version: int) -> None:
    part = produce.PartitionProduceResponse(
        3, 0, 42, 1234, 7, "msg", [(1, "bad record")] if version >= 8 else []
    )
    wire = produce.encode_response(version, [("orders", [part])])
    resp = spec.response_class(ApiKey.PRODUCE).decode(bytes(wire), version=version)
    [t] = resp.responses
    [p] = t.partition_responses
    assert (t.name, p.index, p.error_code, p.base_offset, p.log_append_time_ms) == (
        "orders",
        3,
        0,
        42,
        1234,
    )
    if version >= 5:
        assert p.log_start_offset == 7
    if version >= 8:
        assert p.error_message == "msg"
        assert [(e.batch_index, e.batch_index_error_message) for e in p.record_errors] == [
            (1, "bad record")
        ]


@pytest.mark.parametrize("version", range(4, 13))
def test_fetch_request_decodes_what_the_spec_encodes(version: int) -> None:
    req_cls = spec.request_class(ApiKey.FETCH)
    topic_cls = req_cls.FetchTopic
    part = topic_cls.FetchPartition(
        partition=1,
        current_leader_epoch=4,
        fetch_offset=99,
        last_fetched_epoch=3,
        log_start_offset=5,
        partition_max_bytes=1024,
    )
    wire = req_cls(
        version=version,
        replica_id=-1,
        max_wait_ms=500,
        min_bytes=1,
        max_bytes=52428800,
        isolation_level=1,
        session_id=17,
        session_epoch=2,
        topics=[topic_cls(topic="t", partitions=[part])],
        forgotten_topics_data=[req_cls.ForgottenTopic(topic="gone", partitions=[0, 1])],
        rack_id="use1-az1",
    ).encode(version=version)
    r = _reader(wire)
    got = fetch.decode_request(r, version)
    assert r.remaining() == 0
    assert (got.max_wait_ms, got.min_bytes, got.max_bytes, got.isolation_level) == (
        500,
        1,
        52428800,
        1,
    )
    [t] = got.topics
    [p] = t.partitions
    assert (t.topic, p.partition, p.fetch_offset, p.partition_max_bytes) == ("t", 1, 99, 1024)
    assert p.current_leader_epoch == (4 if version >= 9 else -1)
    assert p.last_fetched_epoch == (3 if version >= 12 else -1)
    assert p.log_start_offset == (5 if version >= 5 else -1)
    assert got.replica_id == -1
    if version >= 7:
        assert (got.session_id, got.session_epoch) == (17, 2)
        assert got.forgotten_topics_data == [("gone", [0, 1])]
    else:
        assert (got.session_id, got.session_epoch) == (0, -1)
    if version >= 11:
        assert got.rack_id == "use1-az1"


@pytest.mark.parametrize("version", range(4, 13))
def test_fetch_response_is_what_the_spec_decodes(version: int) -> None:
    batch = encode_batch([(b"k", b"v"), (None, b"w")], base_offset=10)
    half = len(batch) // 2
    data = fetch.PartitionData(
        0, 0, 12, 12, 3, -1, [memoryview(batch)[:half], memoryview(batch)[half:]]
    )
    empty = fetch.PartitionData(1, 1)  # OFFSET_OUT_OF_RANGE, no records
    parts = fetch.encode_response(version, 0, 77, [("t", [data, empty])])
    wire = b"".join(bytes(p) for p in parts)
    resp = spec.response_class(ApiKey.FETCH).decode(wire, version=version)
    [t] = resp.responses
    p0, p1 = t.partitions
    assert (p0.partition_index, p0.high_watermark, p0.last_stable_offset) == (0, 12, 12)
    assert p0.records == batch
    assert p1.error_code == 1
    if version >= 7:
        assert resp.session_id == 77


@pytest.mark.parametrize("version", range(0, 13))
def test_metadata_request_decodes_what_the_spec_encodes(version: int) -> None:
    req_cls = spec.request_class(ApiKey.METADATA)
    topic_cls = req_cls.MetadataRequestTopic
    fields: dict[str, object] = {"topics": [topic_cls(name="a", topic_id=uuid.UUID(int=0))]}
    if version >= 4:
        fields["allow_auto_topic_creation"] = False
    wire = req_cls(version=version, **fields).encode(version=version)
    r = _reader(wire)
    got = metadata.decode_request(r, version)
    assert r.remaining() == 0
    assert got.topics is not None and [t.name for t in got.topics] == ["a"]
    assert got.allow_auto_topic_creation is (version < 4)


@pytest.mark.parametrize("version", range(1, 13))
def test_metadata_null_topics_means_all(version: int) -> None:
    wire = spec.request_class(ApiKey.METADATA)(version=version, topics=None).encode(version=version)
    assert metadata.decode_request(_reader(wire), version).topics is None


@pytest.mark.parametrize("version", range(0, 13))
def test_metadata_response_is_what_the_spec_decodes(version: int) -> None:
    tid = uuid.uuid4()
    frag = metadata.encode_topic(
        version,
        0,
        "orders",
        tid,
        False,
        [metadata.PartitionMetadata(0, 0, 2, 5, [2], [2], [])],
    )
    parts = metadata.encode_response(
        version, [metadata.BrokerMetadata(2, "127.0.0.1", 9093, "use1-az2")], "cid", 1, [frag]
    )
    wire = b"".join(bytes(p) for p in parts)
    resp = spec.response_class(ApiKey.METADATA).decode(wire, version=version)
    [b] = resp.brokers
    assert (b.node_id, b.host, b.port) == (2, "127.0.0.1", 9093)
    if version >= 1:
        assert b.rack == "use1-az2" and resp.controller_id == 1
    if version >= 2:
        assert resp.cluster_id == "cid"
    [t] = resp.topics
    assert t.name == "orders"
    if version >= 10:
        assert t.topic_id == tid
    [p] = t.partitions
    assert (p.partition_index, p.leader_id, p.replica_nodes, p.isr_nodes) == (0, 2, [2], [2])
    if version >= 7:
        assert p.leader_epoch == 5


@pytest.mark.parametrize("version", range(0, 5))
def test_api_versions_roundtrip(version: int) -> None:
    req_cls = spec.request_class(ApiKey.API_VERSIONS)
    fields = {}
    if version >= 3:
        fields = {"client_software_name": "librdkafka", "client_software_version": "2.16.1"}
    wire = req_cls(version=version, **fields).encode(version=version)
    r = _reader(wire)
    got = api_versions.decode_request(r, version)
    assert r.remaining() == 0
    if version >= 3:
        assert got.client_software_name == "librdkafka"
    body = api_versions.encode_response(version, 0, [(0, 3, 11), (18, 0, 4)])
    resp = spec.response_class(ApiKey.API_VERSIONS).decode(bytes(body), version=version)
    assert [(k.api_key, k.min_version, k.max_version) for k in resp.api_keys] == [
        (0, 3, 11),
        (18, 0, 4),
    ]


def test_registry_flexible_versions_match_the_specs() -> None:
    from msklite.handlers import HANDLERS

    for key, handler in HANDLERS.items():
        if key in (ApiKey.CONSUMER_GROUP_HEARTBEAT, ApiKey.CONSUMER_GROUP_DESCRIBE):
            # kafka-python ships no spec for them; Kafka 4.1's: versions 0-1, flexible from 0
            assert (handler.min_version, handler.max_version, handler.flexible_from) == (0, 1, 0)
            continue
        if key == ApiKey.WRITE_TXN_MARKERS:
            # hand-written: kafka-python's spec starts at v1; Kafka 3.9's: 0-1, flexible from 1
            assert (handler.min_version, handler.max_version, handler.flexible_from) == (0, 1, 1)
            continue
        lo, hi, flexible_from = spec.spec_versions(key)
        assert lo <= handler.min_version <= handler.max_version <= hi, ApiKey(key).name
        assert handler.flexible_from == flexible_from, ApiKey(key).name


def test_write_txn_markers_codec_agrees_with_kafka_python() -> None:
    from kafka.protocol.producer.transaction import (
        WriteTxnMarkersRequest,
        WriteTxnMarkersResponse,
    )

    from msklite.protocol import write_txn_markers as codec
    from msklite.topic_partition import TopicPartition

    cls = WriteTxnMarkersRequest
    req = cls(
        version=1,
        markers=[
            cls.WritableTxnMarker(
                producer_id=7,
                producer_epoch=3,
                transaction_result=True,
                topics=[
                    cls.WritableTxnMarker.WritableTxnMarkerTopic(name="t", partition_indexes=[0, 2])
                ],
                coordinator_epoch=5,
            )
        ],
    )
    body = bytes(req.encode(version=1))
    [marker] = codec.decode_request(Reader(memoryview(body)), 1)
    assert marker == codec.Marker(7, 3, True, (TopicPartition("t", 0), TopicPartition("t", 2)), 5)
    encoded = codec.encode_response(1, {7: {TopicPartition("t", 0): 0, TopicPartition("t", 2): 6}})
    resp = WriteTxnMarkersResponse.decode(bytes(encoded), version=1)
    assert [
        (m.producer_id, t.name, p.partition_index, p.error_code)
        for m in resp.markers
        for t in m.topics
        for p in t.partitions
    ] == [(7, "t", 0, 0), (7, "t", 2, 6)]
