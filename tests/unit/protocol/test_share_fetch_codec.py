"""The hand-written ShareFetch response encoder writes what the spec codec writes."""

from __future__ import annotations

import uuid

import pytest

from msklite.protocol import messages, schemas
from msklite.protocol import share_fetch as codec
from msklite.protocol.primitives import Buffer

Resp = schemas.ShareFetchResponse
Part = Resp.ShareFetchableTopicResponse.PartitionData
TOPIC = uuid.UUID("8f3c51d2-77e4-4b56-9a1a-0d4c1c2b3a4e")


@pytest.mark.parametrize("version", [1, 2])
def test_matches_the_spec_codec(version: int) -> None:
    records: list[Buffer] = [memoryview(b"batch-one"), memoryview(b"batch-two!")]
    ours = codec.encode_response(
        0,
        None,
        30000,
        [
            (
                TOPIC,
                [
                    codec.SharePartitionData(0, 0, 121, 1, 7, records, [(5, 9, 1), (10, 10, 3)]),
                    codec.SharePartitionData(1, 6, 0, 2, 4),
                ],
            )
        ],
        [codec.NodeEndpoint(2, "127.0.0.1", 9092, "use1-az1"), codec.NodeEndpoint(3, "h", 1, None)],
    )
    spec = Resp(
        throttle_time_ms=0,
        error_code=0,
        acquisition_lock_timeout_ms=30000,
        responses=[
            Resp.ShareFetchableTopicResponse(
                topic_id=TOPIC,
                partitions=[
                    Part(
                        partition_index=0,
                        error_code=0,
                        acknowledge_error_code=121,
                        current_leader=Part.LeaderIdAndEpoch(leader_id=1, leader_epoch=7),
                        records=b"batch-onebatch-two!",
                        acquired_records=[
                            Part.AcquiredRecords(first_offset=5, last_offset=9, delivery_count=1),
                            Part.AcquiredRecords(first_offset=10, last_offset=10, delivery_count=3),
                        ],
                    ),
                    Part(
                        partition_index=1,
                        error_code=6,
                        acknowledge_error_code=0,
                        current_leader=Part.LeaderIdAndEpoch(leader_id=2, leader_epoch=4),
                        records=b"",
                        acquired_records=[],
                    ),
                ],
            )
        ],
        node_endpoints=[
            Resp.NodeEndpoint(node_id=2, host="127.0.0.1", port=9092, rack="use1-az1"),
            Resp.NodeEndpoint(node_id=3, host="h", port=1, rack=None),
        ],
    )
    assert b"".join(bytes(b) for b in ours) == messages.encode(spec, version)
    # the record bytes go out as the log's own buffers, uncopied
    assert any(b is records[0] for b in ours)


def test_error_answer_matches_the_spec_codec() -> None:
    ours = codec.encode_response(122, "no session", 0, [], [])
    spec = Resp(
        throttle_time_ms=0,
        error_code=122,
        error_message="no session",
        acquisition_lock_timeout_ms=0,
        responses=[],
        node_endpoints=[],
    )
    assert b"".join(bytes(b) for b in ours) == messages.encode(spec, 1)
