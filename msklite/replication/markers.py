"""Transaction markers on data partitions: the transaction coordinator's WriteTxnMarkers,
in-process. A marker is a control batch appended through the leader's normal replicated append
(min.insync.replicas checked, acks=all); it counts as written once the high watermark passes
it, as Kafka's coordinator waits for its WriteTxnMarkers answers: at once when the followers
copied it in the append (the common case, answered without a turn of the event loop), else
an awaitable. A marker whose coordinator
epoch is older than the last one the partition took for the producer is
TRANSACTION_COORDINATOR_FENCED."""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Awaitable

from msklite.clock import Clock
from msklite.errors import ErrorCode, KafkaError
from msklite.protocol.records import BatchHeader, control_batch, read_header
from msklite.replication.replica_manager import ReplicaManager
from msklite.topic_partition import TopicPartition

# How long a marker may wait for its followers before the coordinator tries again
# (Kafka's request.timeout.ms for WriteTxnMarkers).
MARKER_TIMEOUT_MS = 30_000


def write_marker(
    replicas: ReplicaManager,
    clock: Clock,
    tp: TopicPartition,
    producer_id: int,
    producer_epoch: int,
    commit: bool,
    coordinator_epoch: int,
) -> ErrorCode | Awaitable[ErrorCode]:
    try:
        part = replicas.leader_partition(*tp)
        part.log.producer_state.check_coordinator_epoch(producer_id, coordinator_epoch)
        batch, header = _marker(
            producer_id, producer_epoch, commit, coordinator_epoch, clock.now_ms()
        )
        info = replicas.append(part, batch, header, acks=-1)
    except KafkaError as e:
        return e.code
    done = part.wait_for(info.last_offset + 1)
    if done.done():
        return done.result()
    return _replicated(clock, done)


@functools.lru_cache(maxsize=1)
def _marker(
    producer_id: int, producer_epoch: int, commit: bool, coordinator_epoch: int, timestamp: int
) -> tuple[memoryview, BatchHeader]:
    """The control batch and its header: one for every partition of a transaction (the
    coordinator writes them one after another within a millisecond), since the append takes
    the bytes as they are and writes its offsets and leader epoch beside them."""
    batch = control_batch(producer_id, producer_epoch, commit, coordinator_epoch, timestamp)
    return memoryview(batch), read_header(batch)


async def _replicated(clock: Clock, done: asyncio.Future[ErrorCode]) -> ErrorCode:
    def expire() -> None:
        if not done.done():
            done.set_result(ErrorCode.REQUEST_TIMED_OUT)

    timer = clock.call_later(MARKER_TIMEOUT_MS, expire)
    try:
        return await done
    finally:
        timer.cancel()
