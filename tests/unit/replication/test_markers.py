"""Transaction markers written through a leader's replicated append."""

from __future__ import annotations

from pathlib import Path

from msklite.clock import ManualClock
from msklite.config import BrokerConfigs
from msklite.controller import BrokerInfo, Controller
from msklite.errors import ErrorCode
from msklite.log.manager import LogManager
from msklite.msk import MSK_BROKER_DEFAULTS
from msklite.protocol.records import (
    COMMIT_MARKER,
    CRC_START,
    control_marker,
    crc32c,
    encode_batch,
    read_header,
    validate_produced_batch,
)
from msklite.replication.markers import write_marker
from msklite.replication.replica_manager import ReplicaManager
from msklite.topic_partition import TopicPartition


class _NoFollowers:
    def wake(self, tp: TopicPartition, brokers: list[int]) -> None: ...

    def replicate_now(self, tp: TopicPartition, brokers: list[int]) -> None: ...


async def test_the_markers_of_one_transaction_each_sit_at_their_own_partitions_offsets(
    tmp_path: Path,
) -> None:
    # The partitions of a transaction share one encoded marker (written within the same
    # millisecond): each log must still hold it at its own offset, its CRC intact.
    clock = ManualClock()
    config = {**MSK_BROKER_DEFAULTS, "min.insync.replicas": "1"}
    controller = Controller([BrokerInfo(1, "az1")], BrokerConfigs(config), None)
    rm = ReplicaManager(
        1,
        controller,
        LogManager(str(tmp_path), 1, controller.cluster_id, clock),
        clock,
        _NoFollowers(),
    )
    controller.on_change(rm.sync_topic)
    controller.create_topic("t", assignments={0: [1], 1: [1], 2: [1]})
    for p, records in ((0, 3), (1, 0), (2, 1)):
        for _ in range(records):
            batch = memoryview(encode_batch([(None, b"v")]))
            rm.append(
                rm.partitions[TopicPartition("t", p)],
                batch,
                validate_produced_batch(batch, 1 << 20),
                1,
            )
    for p in range(3):
        assert write_marker(rm, clock, TopicPartition("t", p), 7, 0, True, 5) == ErrorCode.NONE
    for p, offset in ((0, 3), (1, 0), (2, 1)):
        log = rm.partitions[TopicPartition("t", p)].log
        assert log.log_end_offset == offset + 1
        (view,) = log.read(offset, 1 << 20, offset + 1, True)
        h = read_header(view)
        assert (h.base_offset, h.producer_id, h.is_control) == (offset, 7, True)
        assert crc32c(view[CRC_START : h.size]) == h.crc
        assert control_marker(view, h) == (COMMIT_MARKER, 5)
