"""The hand-written transaction responses are the spec codec's bytes, at every version."""

from __future__ import annotations

from msklite.errors import ErrorCode
from msklite.protocol import messages, schemas, txn_responses

Added = schemas.AddPartitionsToTxnResponse.AddPartitionsToTxnTopicResult


def test_add_partitions_response_is_the_spec_codecs() -> None:
    results = {
        "orders": [(0, ErrorCode.NONE), (5, ErrorCode.CONCURRENT_TRANSACTIONS)],
        "ünïcode": [(1, ErrorCode.PRODUCER_FENCED)],
    }
    spec = schemas.AddPartitionsToTxnResponse(
        throttle_time_ms=0,
        results_by_topic_v3_and_below=[
            Added(
                name=name,
                results_by_partition=[
                    Added.AddPartitionsToTxnPartitionResult(
                        partition_index=p, partition_error_code=e
                    )
                    for p, e in parts
                ],
            )
            for name, parts in results.items()
        ],
    )
    for version in range(4):
        assert txn_responses.add_partitions_response(version, results) == messages.encode(
            spec, version
        )
    assert txn_responses.add_partitions_response(3, {}) == messages.encode(
        schemas.AddPartitionsToTxnResponse(throttle_time_ms=0, results_by_topic_v3_and_below=[]),
        3,
    )


def test_error_responses_are_the_spec_codecs() -> None:
    for version in range(5):
        for error in (ErrorCode.NONE, ErrorCode.INVALID_TXN_STATE):
            ours = txn_responses.error_response(version, error)
            for message in (schemas.EndTxnResponse, schemas.AddOffsetsToTxnResponse):
                assert ours == messages.encode(
                    message(throttle_time_ms=0, error_code=error), version
                )
