"""The responses a transactional producer gets on every transaction (AddPartitionsToTxn v0-3,
AddOffsetsToTxn, EndTxn), hand-written: the spec codec spends 30-90 µs on each (kafka-python's
classes), on the path of every commit. The bytes are the spec codec's (a unit test compares
them at every version)."""

from __future__ import annotations

import struct
from collections.abc import Mapping, Sequence

from msklite.protocol.primitives import Writer

# AddPartitionsToTxn, AddOffsetsToTxn and EndTxn are flexible from v3.
FLEXIBLE_FROM = 3
_THROTTLE_AND_ERROR = struct.Struct(">ih")


def add_partitions_response(
    version: int, results: Mapping[str, Sequence[tuple[int, int]]]
) -> bytearray:
    """AddPartitionsToTxn v0-3: `results` is topic -> (partition, error code)."""
    flex = version >= FLEXIBLE_FROM
    w = Writer()
    w.int32(0)  # throttle_time_ms, set by the connection under a quota
    write_partition_errors(w, results, flex)
    if flex:
        w.empty_tagged_fields()
    return w.buf


def write_partition_errors(
    w: Writer, results: Mapping[str, Sequence[tuple[int, int]]], flex: bool
) -> None:
    """The topics array both transaction responses share: name, then (partition, error)."""
    w.array_len(len(results), flex)
    for topic, partitions in results.items():
        w.str_(topic, flex)
        w.array_len(len(partitions), flex)
        for partition, error in partitions:
            w.int32(partition)
            w.int16(error)
            if flex:
                w.empty_tagged_fields()
        if flex:
            w.empty_tagged_fields()


def error_response(version: int, error: int) -> bytes:
    """AddOffsetsToTxn v0-4 and EndTxn v0-4: throttle_time_ms and an error code."""
    body = _THROTTLE_AND_ERROR.pack(0, error)
    return body + b"\0" if version >= FLEXIBLE_FROM else body
