"""The typed schemas: generated from the specs kafka-python ships, and in step with its classes."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from typing import Any

import pytest

from msklite.handlers import HANDLERS
from msklite.protocol import messages, schemas

ROOT = Path(__file__).resolve().parents[3]


def test_the_committed_module_is_a_fresh_generation() -> None:
    spec = importlib.util.spec_from_file_location(
        "generate_schemas", ROOT / "scripts/generate_schemas.py"
    )
    assert spec is not None and spec.loader is not None
    generator = importlib.util.module_from_spec(spec)
    sys.modules["generate_schemas"] = generator
    try:
        spec.loader.exec_module(generator)
        fresh = generator.generate()
    finally:
        del sys.modules["generate_schemas"]
    assert (ROOT / "msklite/protocol/schemas.py").read_text() == fresh, (
        "run scripts/generate_schemas.py"
    )


def test_every_served_api_with_a_spec_has_its_types() -> None:
    """Every API whose spec kafka-python ships (`messages._SPECS`); one it lacks (KIP-848's
    ConsumerGroupHeartbeat, refused) has a hand-written answer instead."""
    with_specs = set(HANDLERS) & set(messages._SPECS)
    assert with_specs == set(schemas.REQUESTS) == set(schemas.RESPONSES), (
        "a new API: add its spec name to MESSAGES in scripts/generate_schemas.py and run it"
    )


def _agree(ours: type[schemas.Struct], theirs: Any, version: int) -> None:
    fields = {f.name: f for f in theirs._struct._fields if f.for_version_q(version)}
    mine = {f.name: f for f in ours.FIELDS if f.versions[0] <= version <= f.versions[1]}
    assert set(mine) == set(fields), (ours.__qualname__, version)
    for name, f in mine.items():
        kafka = fields[name]
        nullable = f.nullable is not None and f.nullable[0] <= version <= f.nullable[1]
        if kafka._type_str != "bitfield":
            assert nullable == kafka.nullable_for_version_q(version), (ours.__qualname__, name)
        if f.struct is not None:
            _agree(f.struct, getattr(theirs, kafka.type_str), version)


@pytest.mark.parametrize("key", sorted(schemas.REQUESTS))
def test_the_types_agree_with_kafka_pythons_classes(key: int) -> None:
    """Field names, the versions that carry them and their nullability, in every served
    version: decoding maps kafka-python's objects onto these types by name."""
    request, response = messages._classes(key)
    for v in range(HANDLERS[key].min_version, HANDLERS[key].max_version + 1):
        _agree(schemas.REQUESTS[key], request, v)
        _agree(schemas.RESPONSES[key], response, v)


def test_a_null_the_version_cannot_carry_is_our_bug_not_a_silent_null_on_the_wire() -> None:
    # protocol_name is nullable from v7 only: kafka-python would write -1 where a v6 client
    # expects a string
    joined = schemas.JoinGroupResponse(
        throttle_time_ms=0,
        error_code=0,
        protocol_name=None,
        leader="",
        member_id="m",
        members=[],
    )
    assert messages.encode(joined, 7)
    with pytest.raises(ValueError, match="protocol_name is None; v6 cannot carry it"):
        messages.encode(joined, 6)


def test_a_zero_topic_id_decodes_as_the_zero_uuid_not_null() -> None:
    # kafka-python decodes the all-zero UUID as None; the type says uuid.UUID
    state = schemas.DeleteTopicsRequest.DeleteTopicState
    request = schemas.DeleteTopicsRequest(
        topics=[state(name="t", topic_id=schemas.ZERO_UUID)], timeout_ms=1
    )
    body = memoryview(messages.encode(request, 6))
    decoded = messages.decode_request(schemas.DeleteTopicsRequest, 6, body)
    assert decoded.topics[0].topic_id == schemas.ZERO_UUID
    assert decoded == request
