"""The hand-written codec of ConsumerGroupHeartbeat and ConsumerGroupDescribe against bytes laid
out by Kafka's JSON specs: every field in order, v0 without the regex, nulls where the spec
allows them and ProtocolError where it does not, truncations refused."""

from __future__ import annotations

import uuid

import pytest

from msklite.errors import ProtocolError
from msklite.protocol.consumer_group import (
    DescribedAssignment,
    DescribedGroup,
    DescribedMember,
    HeartbeatResponse,
    decode_describe_request,
    decode_heartbeat_request,
    encode_describe_response,
    encode_heartbeat_response,
)
from msklite.protocol.primitives import Reader, Writer

TOPIC = uuid.UUID("12345678-1234-5678-1234-567812345678")


def heartbeat_bytes(version: int, *, names: list[str] | None, owned: bool) -> bytes:
    w = Writer()
    w.str_("group", True)
    w.str_("member", True)
    w.int32(3)
    w.nullable_str("instance", True)
    w.nullable_str(None, True)  # rack
    w.int32(-1)
    if names is None:
        w.array_len(None, True)
    else:
        w.array_len(len(names), True)
        for n in names:
            w.str_(n, True)
    if version >= 1:
        w.nullable_str("^t.*", True)
    w.nullable_str("uniform", True)
    if owned:
        w.array_len(1, True)
        w.uuid(TOPIC)
        w.array_len(2, True)
        w.int32(0)
        w.int32(5)
        w.empty_tagged_fields()
    else:
        w.array_len(None, True)
    w.empty_tagged_fields()
    return bytes(w.buf)


@pytest.mark.parametrize("version", [0, 1])
def test_heartbeat_request_fields(version: int) -> None:
    data = heartbeat_bytes(version, names=["a", "b"], owned=True)
    req = decode_heartbeat_request(Reader(memoryview(data)), version)
    assert (req.group_id, req.member_id, req.member_epoch) == ("group", "member", 3)
    assert (req.instance_id, req.rack_id, req.rebalance_timeout_ms) == ("instance", None, -1)
    assert req.subscribed_topic_names == ["a", "b"]
    assert req.subscribed_topic_regex == ("^t.*" if version else None)
    assert req.server_assignor == "uniform"
    assert req.topic_partitions == [(TOPIC, [0, 5])]
    nulls = decode_heartbeat_request(
        Reader(memoryview(heartbeat_bytes(version, names=None, owned=False))), version
    )
    assert (nulls.subscribed_topic_names, nulls.topic_partitions) == (None, None)


def test_heartbeat_request_refuses_truncation_and_forbidden_nulls() -> None:
    data = heartbeat_bytes(1, names=["a"], owned=True)
    for cut in range(len(data)):
        with pytest.raises(ProtocolError):
            decode_heartbeat_request(Reader(memoryview(data[:cut])), 1)
    w = Writer()
    w.nullable_str(None, True)  # a null group id
    with pytest.raises(ProtocolError):
        decode_heartbeat_request(Reader(memoryview(bytes(w.buf) + data[6:])), 1)


def test_heartbeat_response_layout() -> None:
    body = b"".join(
        bytes(b)
        for b in encode_heartbeat_response(
            HeartbeatResponse(0, None, "m", 7, 5000, [(TOPIC, [1, 2])])
        )
    )
    r = Reader(memoryview(body))
    assert (r.int32(), r.int16(), r.nullable_str(True), r.nullable_str(True)) == (0, 0, None, "m")
    assert (r.int32(), r.int32(), r.int8()) == (7, 5000, 1)
    assert r.array_len(True) == 1 and r.uuid() == TOPIC
    assert [r.int32() for _ in range(r.array_len(True))] == [1, 2]
    r.skip_tagged_fields()
    r.skip_tagged_fields()
    r.skip_tagged_fields()
    assert r.remaining() == 0
    null = b"".join(bytes(b) for b in encode_heartbeat_response(HeartbeatResponse(25, "x")))
    assert null[-2:] == b"\xff\x00"  # a null assignment, then no tagged fields


@pytest.mark.parametrize("version", [0, 1])
def test_describe(version: int) -> None:
    w = Writer()
    w.array_len(1, True)
    w.str_("g", True)
    w.boolean(True)
    w.empty_tagged_fields()
    req = decode_describe_request(Reader(memoryview(bytes(w.buf))), version)
    assert (req.group_ids, req.include_authorized_operations) == (["g"], True)
    a = DescribedAssignment([(TOPIC, "t", [0])])
    member = DescribedMember("m", None, None, 2, "c", "/h", ["t"], None, a, a)
    body = b"".join(
        bytes(b)
        for b in encode_describe_response(version, [DescribedGroup(0, "g", members=[member])])
    )
    # the v1 member carries one more byte: its member type
    v0 = b"".join(
        bytes(b) for b in encode_describe_response(0, [DescribedGroup(0, "g", members=[member])])
    )
    assert len(body) == len(v0) + version
    with pytest.raises(ProtocolError):
        decode_describe_request(Reader(memoryview(b"\x00")), version)  # a null array
