"""aiokafka 0.14 (pure-Python asyncio client) against msklite over TCP."""

from __future__ import annotations

import asyncio
import itertools
import struct
import time
from collections.abc import Sequence

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRecord, TopicPartition
from aiokafka import codec as aiokafka_codec
from aiokafka.admin import AIOKafkaAdminClient, NewPartitions, NewTopic
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType
from aiokafka.errors import MessageSizeTooLargeError, OffsetOutOfRangeError

from msklite import Cluster
from tests.integration.helpers import leader_segments

# Kafka's config sources (DescribeConfigs v1+) and error codes used below.
DYNAMIC_TOPIC_CONFIG, STATIC_BROKER_CONFIG = 1, 4
TOPIC_ALREADY_EXISTS = 36
CREATE_TIME, LOG_APPEND_TIME = 0, 1

CODEC_IDS = {None: 0, "gzip": 1, "snappy": 2, "lz4": 3, "zstd": 4}  # batch attributes & 7
_HAS_CODEC = {
    None: lambda: True,
    "gzip": aiokafka_codec.has_gzip,
    "snappy": aiokafka_codec.has_snappy,
    "lz4": aiokafka_codec.has_lz4,
    "zstd": aiokafka_codec.has_zstd,
}


def _consumer(cluster: Cluster, **extra: object) -> AIOKafkaConsumer:
    conf: dict[str, object] = {
        "group_id": None,
        "enable_auto_commit": False,
        "auto_offset_reset": "none",  # a wrong position must fail, not silently reset
    }
    conf.update(extra)
    return AIOKafkaConsumer(bootstrap_servers=cluster.bootstrap_servers, **conf)


# Record batch v2 header after baseOffset/batchLength: partitionLeaderEpoch, magic, crc,
# attributes, lastOffsetDelta, base/max timestamp, producerId, producerEpoch, baseSequence, count.
_BATCH = struct.Struct(">qiibIhiqqqhii")


def _stored_batches(
    cluster: Cluster, topic: str, partition: int
) -> list[tuple[int, int, int, int, int]]:
    """(base_offset, attributes, producer_id, base_sequence, record_count) of every batch in
    the partition's on-disk log (Kafka's layout), read straight from the segment files."""
    out = []
    for data in leader_segments(cluster, topic, partition):
        pos = 0
        while pos < len(data):
            base, length, _, magic, _, attrs, _, _, _, pid, _, seq, count = _BATCH.unpack_from(
                data, pos
            )
            assert magic == 2
            out.append((base, attrs, pid, seq, count))
            pos += 12 + length
    return out


async def _consume(
    consumer: AIOKafkaConsumer, n: int, within_s: float = 10.0
) -> list[ConsumerRecord[bytes, bytes]]:
    """Exactly the first `n` records the consumer delivers (fails on a deadline, not a hang)."""
    out: list[ConsumerRecord[bytes, bytes]] = []
    deadline = time.monotonic() + within_s
    while len(out) < n:
        assert time.monotonic() < deadline, f"got {len(out)} of {n} records"
        batches = await consumer.getmany(timeout_ms=200)
        for records in batches.values():
            out.extend(records)
    return out


async def test_admin_create_describe_delete(msk_cluster: Cluster, topic_name: str) -> None:
    admin = AIOKafkaAdminClient(bootstrap_servers=msk_cluster.bootstrap_servers)
    try:
        await admin.start()
        resp = await admin.create_topics(
            [NewTopic(topic_name, 3, 1, topic_configs={"retention.ms": "1234567"})]
        )
        assert [tuple(e)[:2] for e in resp.topic_errors] == [(topic_name, 0)]

        assert topic_name in await admin.list_topics()
        [described] = await admin.describe_topics([topic_name])
        assert described["error_code"] == 0 and described["topic"] == topic_name
        assert described["is_internal"] is False
        parts = sorted(described["partitions"], key=lambda p: p["partition"])
        assert [p["partition"] for p in parts] == [0, 1, 2]
        assert {p["leader"] for p in parts} == {1, 2, 3}  # spread over the three brokers
        for p in parts:
            assert p["error_code"] == 0
            assert p["replicas"] == [p["leader"]] and p["isr"] == [p["leader"]]

        cluster_info = await admin.describe_cluster()
        assert sorted(b["node_id"] for b in cluster_info["brokers"]) == [1, 2, 3]
        assert {b["rack"] for b in cluster_info["brokers"]} == {
            "use1-az1",
            "use1-az2",
            "use1-az4",
        }
        assert cluster_info["controller_id"] in (1, 2, 3)

        [configs_resp] = await admin.describe_configs(
            [ConfigResource(ConfigResourceType.TOPIC, topic_name)]
        )
        [resource] = configs_resp.to_object()["resources"]
        assert resource["error_code"] == 0
        assert resource["resource_name"] == topic_name
        entries = {e["config_names"]: e for e in resource["config_entries"]}
        assert entries["retention.ms"]["config_value"] == "1234567"
        assert entries["retention.ms"]["config_source"] == DYNAMIC_TOPIC_CONFIG
        unclean = entries["unclean.leader.election.enable"]
        assert unclean["config_value"] == "true"  # MSK's default (Kafka's is false)
        assert unclean["config_source"] == STATIC_BROKER_CONFIG
        assert entries["max.message.bytes"]["config_value"] == "1048588"

        # Filtered by name: only the asked-for key comes back.
        [filtered_resp] = await admin.describe_configs(
            [ConfigResource(ConfigResourceType.TOPIC, topic_name, {"cleanup.policy": None})]
        )
        [filtered] = filtered_resp.to_object()["resources"]
        assert [(e["config_names"], e["config_value"]) for e in filtered["config_entries"]] == [
            ("cleanup.policy", "delete")
        ]

        await admin.create_partitions({topic_name: NewPartitions(5)})
        [grown] = await admin.describe_topics([topic_name])
        assert sorted(p["partition"] for p in grown["partitions"]) == [0, 1, 2, 3, 4]

        again = await admin.create_topics([NewTopic(topic_name, 1, 1)])
        assert [tuple(e)[:2] for e in again.topic_errors] == [(topic_name, TOPIC_ALREADY_EXISTS)]

        deleted = await admin.delete_topics([topic_name])
        assert [tuple(e) for e in deleted.topic_error_codes] == [(topic_name, 0)]
        assert topic_name not in await admin.list_topics()
    finally:
        await admin.close()


@pytest.mark.parametrize("idempotent", [False, True], ids=["plain", "idempotent"])
@pytest.mark.parametrize("codec", [None, "gzip", "snappy", "lz4", "zstd"])
async def test_produce_consume_exact(
    msk_cluster: Cluster, topic_name: str, codec: str | None, idempotent: bool
) -> None:
    if not _HAS_CODEC[codec]():
        pytest.skip(f"aiokafka cannot compress with {codec}: its codec library is missing")
    msk_cluster.create_topic(topic_name, partitions=2)
    n = 400
    base_ts = 1_700_000_000_000
    sent: list[tuple[int, bytes, bytes | None, int, list[tuple[str, bytes]]]] = []
    producer = AIOKafkaProducer(
        bootstrap_servers=msk_cluster.bootstrap_servers,
        compression_type=codec,
        enable_idempotence=idempotent,
        linger_ms=5,  # several records per batch, so batches hold many records
    )
    try:
        await producer.start()
        futures = []
        for i in range(n):
            key = f"key-{i}".encode()
            value = (f"value-{i}-" * (i % 7)).encode() or None
            headers = [("h", str(i).encode()), ("second", b"")]
            futures.append(
                await producer.send(
                    topic_name,
                    value=value,
                    key=key,
                    partition=i % 2,
                    timestamp_ms=base_ts + i,
                    headers=headers,
                )
            )
            sent.append((i % 2, key, value, base_ts + i, headers))
        metadata = await asyncio.gather(*futures)
    finally:
        await producer.stop()

    # The produce responses: per-partition offsets in send order, CreateTime echoed back.
    for p in (0, 1):
        assert [m.offset for m in metadata if m.partition == p] == list(range(n // 2))
    assert all(m.timestamp_type == CREATE_TIME for m in metadata)

    # What the broker stored: the producer's batches as sent, with its codec and producer id.
    for p in (0, 1):
        batches = _stored_batches(msk_cluster, topic_name, p)
        assert sum(b[4] for b in batches) == n // 2
        assert len(batches) < n // 2  # linger_ms batched records together
        assert [b[0] for b in batches] == list(
            itertools.accumulate([0] + [b[4] for b in batches[:-1]])
        )
        assert {b[1] & 7 for b in batches} == {CODEC_IDS[codec]}
        pids = {b[2] for b in batches}
        if idempotent:
            [pid] = pids
            assert pid >= 0
            assert [b[3] for b in batches] == [b[0] for b in batches]  # sequence = offset here
        else:
            assert pids == {-1}  # (aiokafka writes base sequence 0 here, not -1: not checked)

    consumer = _consumer(msk_cluster)
    try:
        await consumer.start()
        tps = [TopicPartition(topic_name, p) for p in (0, 1)]
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        got = await _consume(consumer, n)
        # Nothing more than what was sent.
        assert await consumer.getmany(timeout_ms=100) == {}
    finally:
        await consumer.stop()

    assert len(got) == n
    for p in (0, 1):
        records = [r for r in got if r.partition == p]
        expected = [s for s in sent if s[0] == p]
        assert [r.offset for r in records] == list(range(n // 2))
        assert [(r.key, r.value, r.timestamp, list(r.headers)) for r in records] == [
            (k, v, ts, h) for _, k, v, ts, h in expected
        ]
        assert all(r.timestamp_type == CREATE_TIME and r.topic == topic_name for r in records)


async def test_null_empty_and_oversized_records(msk_cluster: Cluster, topic_name: str) -> None:
    msk_cluster.create_topic(topic_name)
    big = bytes(range(256)) * 1000  # 256 kB: far above the consumer's max_partition_fetch_bytes
    producer = AIOKafkaProducer(
        bootstrap_servers=msk_cluster.bootstrap_servers, max_request_size=2_000_000
    )
    try:
        await producer.start()
        offsets = [
            (await producer.send_and_wait(topic_name, v, key=k, headers=h)).offset
            for k, v, h in [
                (b"", None, [("null", None), ("empty", b"")]),  # tombstone, null header value
                (b"big", big, []),
                (None, b"", []),
            ]
        ]
    finally:
        await producer.stop()
    assert offsets == [0, 1, 2]

    # KIP-74: the first batch comes whole even above the fetch limits, so the consumer
    # never stalls on it.
    consumer = _consumer(msk_cluster, max_partition_fetch_bytes=1024, fetch_max_bytes=2048)
    try:
        await consumer.start()
        tp = TopicPartition(topic_name, 0)
        consumer.assign([tp])
        await consumer.seek_to_beginning(tp)
        got = await _consume(consumer, 3)
    finally:
        await consumer.stop()
    assert [(r.offset, r.key, r.value, tuple(r.headers)) for r in got] == [
        (0, b"", None, (("null", None), ("empty", b""))),
        (1, b"big", big, ()),
        (2, None, b"", ()),
    ]


async def test_offset_out_of_range(msk_cluster: Cluster, topic_name: str) -> None:
    msk_cluster.create_topic(topic_name)
    producer = AIOKafkaProducer(bootstrap_servers=msk_cluster.bootstrap_servers)
    try:
        await producer.start()
        await producer.send_and_wait(topic_name, b"only")
    finally:
        await producer.stop()
    tp = TopicPartition(topic_name, 0)
    strict = _consumer(msk_cluster)  # auto_offset_reset="none": the error reaches us
    try:
        await strict.start()
        strict.assign([tp])
        strict.seek(tp, 5)
        with pytest.raises(OffsetOutOfRangeError):
            await _consume(strict, 1)
    finally:
        await strict.stop()

    resetting = _consumer(msk_cluster, auto_offset_reset="earliest")
    try:
        await resetting.start()
        resetting.assign([tp])
        resetting.seek(tp, 5)
        [record] = await _consume(resetting, 1)
    finally:
        await resetting.stop()
    assert (record.offset, record.value) == (0, b"only")


async def test_two_idempotent_producers_one_partition(
    msk_cluster: Cluster, topic_name: str
) -> None:
    msk_cluster.create_topic(topic_name)
    producers = [
        AIOKafkaProducer(
            bootstrap_servers=msk_cluster.bootstrap_servers, enable_idempotence=True, linger_ms=2
        )
        for _ in range(2)
    ]
    try:
        for producer in producers:
            await producer.start()

        async def run(idx: int, producer: AIOKafkaProducer) -> list[int]:
            futures = [
                await producer.send(topic_name, b"%d-%d" % (idx, i), partition=0)
                for i in range(100)
            ]
            return [md.offset for md in await asyncio.gather(*futures)]

        offsets = await asyncio.gather(*(run(i, p) for i, p in enumerate(producers)))
    finally:
        for producer in producers:
            await producer.stop()
    assert all(o == sorted(o) for o in offsets)  # each producer's order kept
    assert sorted(offsets[0] + offsets[1]) == list(range(200))  # interleaved, no gaps or dupes
    pids = {b[2] for b in _stored_batches(msk_cluster, topic_name, 0)}
    assert len(pids) == 2 and all(pid >= 0 for pid in pids)  # a distinct producer id each


async def test_log_append_time(msk_cluster: Cluster, topic_name: str) -> None:
    msk_cluster.create_topic(topic_name, configs={"message.timestamp.type": "LogAppendTime"})
    producer = AIOKafkaProducer(bootstrap_servers=msk_cluster.bootstrap_servers)
    try:
        await producer.start()
        before = int(time.time() * 1000)
        md = await producer.send_and_wait(topic_name, b"v", timestamp_ms=1_000)
    finally:
        await producer.stop()
    after = int(time.time() * 1000)
    assert md.offset == 0 and md.timestamp_type == LOG_APPEND_TIME
    assert before - 1000 <= md.timestamp <= after + 1000  # the broker's clock, not ours

    consumer = _consumer(msk_cluster)
    try:
        await consumer.start()
        tp = TopicPartition(topic_name, 0)
        consumer.assign([tp])
        await consumer.seek_to_beginning(tp)
        [record] = await _consume(consumer, 1)
    finally:
        await consumer.stop()
    assert (record.value, record.timestamp_type, record.timestamp) == (
        b"v",
        LOG_APPEND_TIME,
        md.timestamp,
    )


async def test_offsets_for_times_then_seek(msk_cluster: Cluster, topic_name: str) -> None:
    msk_cluster.create_topic(topic_name, partitions=2)
    base = 1_700_000_000_000
    producer = AIOKafkaProducer(bootstrap_servers=msk_cluster.bootstrap_servers)
    try:
        await producer.start()
        for chunk in range(10):  # ten batches, so the lookup crosses batches
            futures = [
                await producer.send(
                    topic_name, b"%d" % i, partition=0, timestamp_ms=base + 1000 * i
                )
                for i in range(chunk * 10, chunk * 10 + 10)
            ]
            await asyncio.gather(*futures)
    finally:
        await producer.stop()

    consumer = _consumer(msk_cluster)
    try:
        await consumer.start()
        tp0, tp1 = TopicPartition(topic_name, 0), TopicPartition(topic_name, 1)
        found = await consumer.offsets_for_times({tp0: base + 42_500, tp1: base})
        assert found[tp0] is not None
        assert (found[tp0].offset, found[tp0].timestamp) == (43, base + 43_000)
        assert found[tp1] is None  # empty partition: nothing at or after that time
        exact = await consumer.offsets_for_times({tp0: base + 70_000})
        assert exact[tp0] is not None and exact[tp0].offset == 70
        first = await consumer.offsets_for_times({tp0: 0})
        assert first[tp0] is not None and first[tp0].offset == 0
        too_late = await consumer.offsets_for_times({tp0: base + 10**9})
        assert too_late[tp0] is None

        consumer.assign([tp0])
        consumer.seek(tp0, found[tp0].offset)
        got = await _consume(consumer, 1)
    finally:
        await consumer.stop()
    assert (got[0].offset, got[0].value, got[0].timestamp) == (43, b"43", base + 43_000)


async def test_consume_from_latest_long_poll(msk_cluster: Cluster, topic_name: str) -> None:
    msk_cluster.create_topic(topic_name)
    max_wait_ms = 8000
    producer = AIOKafkaProducer(bootstrap_servers=msk_cluster.bootstrap_servers)
    consumer = _consumer(msk_cluster, fetch_max_wait_ms=max_wait_ms)
    try:
        await producer.start()
        await producer.send_and_wait(topic_name, b"old-0")
        await producer.send_and_wait(topic_name, b"old-1")
        await consumer.start()
        tp = TopicPartition(topic_name, 0)
        consumer.assign([tp])
        await consumer.seek_to_end(tp)
        assert await consumer.position(tp) == 2
        # Wait until the consumer's fetch is parked in the broker's purgatory, then produce:
        # the parked fetch must be woken by the append, well before its max wait.
        deadline = time.monotonic() + 5
        while msk_cluster.waiting_fetches() == 0:
            assert await consumer.getmany(timeout_ms=50) == {}
            assert time.monotonic() < deadline, "the fetch never parked in the broker"
        start = time.monotonic()
        md = await producer.send_and_wait(topic_name, b"new", key=b"k")
        got = await _consume(consumer, 1, within_s=max_wait_ms / 1000 - 1)
        elapsed = time.monotonic() - start
    finally:
        await consumer.stop()
        await producer.stop()
    assert md.offset == 2
    assert [(r.offset, r.key, r.value) for r in got] == [(2, b"k", b"new")]
    assert elapsed < max_wait_ms / 2000, f"woken after {elapsed:.2f}s: the append did not wake it"


async def test_beginning_and_end_offsets(msk_cluster: Cluster, topic_name: str) -> None:
    msk_cluster.create_topic(topic_name, partitions=3)
    counts = {0: 7, 1: 0, 2: 23}
    tps = [TopicPartition(topic_name, p) for p in counts]
    consumer = _consumer(msk_cluster)
    producer = AIOKafkaProducer(bootstrap_servers=msk_cluster.bootstrap_servers)
    try:
        await consumer.start()
        await producer.start()
        assert await consumer.beginning_offsets(tps) == dict.fromkeys(tps, 0)
        assert await consumer.end_offsets(tps) == dict.fromkeys(tps, 0)

        batch_futures: Sequence[asyncio.Future[object]] = [
            await producer.send(topic_name, b"x", partition=p)
            for p, c in counts.items()
            for _ in range(c)
        ]
        await asyncio.gather(*batch_futures)

        assert await consumer.beginning_offsets(tps) == dict.fromkeys(tps, 0)
        assert await consumer.end_offsets(tps) == {
            TopicPartition(topic_name, p): c for p, c in counts.items()
        }
        # seek_to_end resolves to the same high watermark.
        consumer.assign(tps)
        await consumer.seek_to_end(*tps)
        assert {tp: await consumer.position(tp) for tp in tps} == {
            TopicPartition(topic_name, p): c for p, c in counts.items()
        }
    finally:
        await producer.stop()
        await consumer.stop()


async def test_a_topic_config_change_reaches_the_produce_path() -> None:
    """The controller's one call that changes a topic's configs (AlterConfigs will use it):
    the next produce sees the new max.message.bytes and timestamp type."""
    async with Cluster(brokers=1) as cluster:
        assert cluster.controller is not None
        cluster.controller.create_topic("cfg", 1, 1)
        producer = AIOKafkaProducer(bootstrap_servers=cluster.bootstrap_servers)
        try:
            await producer.start()
            md = await producer.send_and_wait("cfg", b"x" * 2000, timestamp_ms=1_000)
            assert md.offset == 0 and md.timestamp == 1_000

            cluster.controller.alter_topic_configs(
                "cfg", {"max.message.bytes": "1000", "message.timestamp.type": "LogAppendTime"}
            )
            with pytest.raises(MessageSizeTooLargeError):
                await producer.send_and_wait("cfg", b"x" * 2000)
            md = await producer.send_and_wait("cfg", b"small", timestamp_ms=1_000)
            assert md.offset == 1 and md.timestamp_type == LOG_APPEND_TIME
            assert md.timestamp > 1_000

            cluster.controller.alter_topic_configs("cfg", {})
            md = await producer.send_and_wait("cfg", b"x" * 2000, timestamp_ms=1_000)
            assert md.offset == 2 and md.timestamp == 1_000
        finally:
            await producer.stop()
