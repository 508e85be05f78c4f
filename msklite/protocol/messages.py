"""The control-plane codec: kafka-python's classes, generated at run time from Apache Kafka's
JSON message specs, behind one adapter that speaks the typed schemas (`protocol/schemas.py`).

Loaded lazily: importing kafka-python executes its whole client package (≈175 ms here), which
must stay off the start-up path; ApiVersions, Metadata, Produce and Fetch have codecs of their
own. A request decodes into its schema type (nulls the spec forbids refused on the way); a
response is built from its schema type and handed to kafka-python's class to encode.
"""

from __future__ import annotations

import importlib
import warnings
from functools import cache
from typing import Any, TypeVar

from msklite.errors import ErrorCode, ProtocolError
from msklite.protocol import schemas
from msklite.protocol.api_keys import ApiKey

# api key -> (module, message name without Request/Response)
_SPECS: dict[int, tuple[str, str]] = {
    ApiKey.PRODUCE: ("kafka.protocol.producer.produce", "Produce"),
    ApiKey.FETCH: ("kafka.protocol.consumer.fetch", "Fetch"),
    ApiKey.LIST_OFFSETS: ("kafka.protocol.consumer.offsets", "ListOffsets"),
    ApiKey.METADATA: ("kafka.protocol.metadata.metadata", "Metadata"),
    ApiKey.API_VERSIONS: ("kafka.protocol.metadata.api_versions", "ApiVersions"),
    ApiKey.CREATE_TOPICS: ("kafka.protocol.admin.topics", "CreateTopics"),
    ApiKey.DELETE_TOPICS: ("kafka.protocol.admin.topics", "DeleteTopics"),
    ApiKey.CREATE_PARTITIONS: ("kafka.protocol.admin.topics", "CreatePartitions"),
    ApiKey.DELETE_RECORDS: ("kafka.protocol.admin.topics", "DeleteRecords"),
    ApiKey.DESCRIBE_CONFIGS: ("kafka.protocol.admin.configs", "DescribeConfigs"),
    ApiKey.ALTER_CONFIGS: ("kafka.protocol.admin.configs", "AlterConfigs"),
    ApiKey.INCREMENTAL_ALTER_CONFIGS: ("kafka.protocol.admin.configs", "IncrementalAlterConfigs"),
    ApiKey.INIT_PRODUCER_ID: ("kafka.protocol.producer.transaction", "InitProducerId"),
    ApiKey.ADD_PARTITIONS_TO_TXN: ("kafka.protocol.producer.transaction", "AddPartitionsToTxn"),
    ApiKey.ADD_OFFSETS_TO_TXN: ("kafka.protocol.producer.transaction", "AddOffsetsToTxn"),
    ApiKey.END_TXN: ("kafka.protocol.producer.transaction", "EndTxn"),
    ApiKey.TXN_OFFSET_COMMIT: ("kafka.protocol.producer.transaction", "TxnOffsetCommit"),
    ApiKey.DESCRIBE_CLUSTER: ("kafka.protocol.admin.cluster", "DescribeCluster"),
    ApiKey.DESCRIBE_PRODUCERS: ("kafka.protocol.admin.transactions", "DescribeProducers"),
    ApiKey.DESCRIBE_TRANSACTIONS: ("kafka.protocol.admin.transactions", "DescribeTransactions"),
    ApiKey.LIST_TRANSACTIONS: ("kafka.protocol.admin.transactions", "ListTransactions"),
    ApiKey.OFFSET_FOR_LEADER_EPOCH: ("kafka.protocol.consumer.offsets", "OffsetForLeaderEpoch"),
    ApiKey.ELECT_LEADERS: ("kafka.protocol.admin.topics", "ElectLeaders"),
    ApiKey.DESCRIBE_LOG_DIRS: ("kafka.protocol.admin.cluster", "DescribeLogDirs"),
    ApiKey.ALTER_PARTITION_REASSIGNMENTS: (
        "kafka.protocol.admin.topics",
        "AlterPartitionReassignments",
    ),
    ApiKey.LIST_PARTITION_REASSIGNMENTS: (
        "kafka.protocol.admin.topics",
        "ListPartitionReassignments",
    ),
    ApiKey.FIND_COORDINATOR: ("kafka.protocol.metadata.find_coordinator", "FindCoordinator"),
    ApiKey.JOIN_GROUP: ("kafka.protocol.consumer.group", "JoinGroup"),
    ApiKey.SYNC_GROUP: ("kafka.protocol.consumer.group", "SyncGroup"),
    ApiKey.HEARTBEAT: ("kafka.protocol.consumer.group", "Heartbeat"),
    ApiKey.LEAVE_GROUP: ("kafka.protocol.consumer.group", "LeaveGroup"),
    ApiKey.OFFSET_COMMIT: ("kafka.protocol.consumer.group", "OffsetCommit"),
    ApiKey.OFFSET_FETCH: ("kafka.protocol.consumer.group", "OffsetFetch"),
    ApiKey.OFFSET_DELETE: ("kafka.protocol.consumer.group", "OffsetDelete"),
    ApiKey.DESCRIBE_GROUPS: ("kafka.protocol.admin.groups", "DescribeGroups"),
    ApiKey.LIST_GROUPS: ("kafka.protocol.admin.groups", "ListGroups"),
    ApiKey.DELETE_GROUPS: ("kafka.protocol.admin.groups", "DeleteGroups"),
    ApiKey.SASL_HANDSHAKE: ("kafka.protocol.sasl", "SaslHandshake"),
    ApiKey.DESCRIBE_CLIENT_QUOTAS: ("kafka.protocol.admin.client_quotas", "DescribeClientQuotas"),
    ApiKey.ALTER_CLIENT_QUOTAS: ("kafka.protocol.admin.client_quotas", "AlterClientQuotas"),
    ApiKey.SASL_AUTHENTICATE: ("kafka.protocol.sasl", "SaslAuthenticate"),
    ApiKey.DESCRIBE_ACLS: ("msklite.protocol.spec_messages", "DescribeAcls"),
    ApiKey.CREATE_ACLS: ("msklite.protocol.spec_messages", "CreateAcls"),
    ApiKey.DELETE_ACLS: ("msklite.protocol.spec_messages", "DeleteAcls"),
    ApiKey.DESCRIBE_USER_SCRAM_CREDENTIALS: (
        "kafka.protocol.admin.users",
        "DescribeUserScramCredentials",
    ),
    ApiKey.ALTER_USER_SCRAM_CREDENTIALS: (
        "kafka.protocol.admin.users",
        "AlterUserScramCredentials",
    ),
    ApiKey.SHARE_GROUP_HEARTBEAT: ("msklite.protocol.share_messages", "ShareGroupHeartbeat"),
    ApiKey.SHARE_GROUP_DESCRIBE: ("msklite.protocol.share_messages", "ShareGroupDescribe"),
    ApiKey.SHARE_FETCH: ("msklite.protocol.share_messages", "ShareFetch"),
    ApiKey.SHARE_ACKNOWLEDGE: ("msklite.protocol.share_messages", "ShareAcknowledge"),
    ApiKey.DESCRIBE_SHARE_GROUP_OFFSETS: (
        "msklite.protocol.share_messages",
        "DescribeShareGroupOffsets",
    ),
    ApiKey.ALTER_SHARE_GROUP_OFFSETS: ("msklite.protocol.share_messages", "AlterShareGroupOffsets"),
    ApiKey.DELETE_SHARE_GROUP_OFFSETS: (
        "msklite.protocol.share_messages",
        "DeleteShareGroupOffsets",
    ),
}


@cache
def _classes(api_key: int) -> tuple[Any, Any]:
    module_name, base = _SPECS[api_key]
    with warnings.catch_warnings():
        # kafka-python 3.0.12 reads its spec files with importlib.resources.read_text,
        # deprecated since Python 3.11; not ours to fix, and harmless.
        warnings.simplefilter("ignore", DeprecationWarning)
        module = importlib.import_module(module_name)
    return getattr(module, base + "Request"), getattr(module, base + "Response")


def request_class(api_key: int) -> Any:
    return _classes(api_key)[0]


def response_class(api_key: int) -> Any:
    return _classes(api_key)[1]


M = TypeVar("M", bound=schemas.Message)
S = TypeVar("S", bound=schemas.Struct)


def kafka_class(message: type[schemas.Message]) -> Any:
    """kafka-python's class for one of the schemas' top-level request or response types."""
    request, response = _classes(message.API_KEY)
    return request if message.__name__.endswith("Request") else response


def decode_request(message: type[M], version: int, body: memoryview) -> M:
    """Decode a request body into its typed form; every way the bytes can be wrong (truncated,
    a null where the spec forbids one, text that is not UTF-8) raises ProtocolError."""
    try:
        raw = kafka_class(message).decode(body, version=version)
    except Exception as e:
        # The generated decoders raise whatever struct/index/unicode error the bytes provoke;
        # all of them mean the same: the peer sent a malformed request.
        raise ProtocolError(f"malformed {message.__name__} v{version}: {e!r}") from e
    return _typed(raw, message, version)


def _typed(raw: Any, cls: type[S], version: int) -> S:
    # kafka-python decodes a null wherever the bytes say null; Kafka's own readers refuse one
    # in a field the spec makes non-nullable ("non-nullable field X was serialized as null"),
    # and the request then fails to parse, which closes the connection. So do we, here and
    # only here: no handler ever sees a null that the spec forbids.
    values: dict[str, Any] = {}
    for f in cls.FIELDS:
        if not f.versions[0] <= version <= f.versions[1]:
            continue
        value = getattr(raw, f.name)
        if value is None:
            if f.kind == schemas.UUID:
                values[f.name] = schemas.ZERO_UUID
            elif f.nullable is not None and f.nullable[0] <= version <= f.nullable[1]:
                values[f.name] = None
            elif f.tagged is None or f.name in (raw.tags or ()):
                raise ProtocolError(
                    f"non-nullable field {f.name} of {cls.__qualname__} v{version} is null"
                )
            # else: an absent tagged field; the dataclass default stands
            continue
        kind = f.kind
        if kind == schemas.STRUCT_ARRAY:
            value = [_typed(item, f.struct, version) for item in value]  # type: ignore[arg-type]
        elif kind == schemas.STRUCT:
            value = _typed(value, f.struct, version)  # type: ignore[arg-type]
        elif kind == schemas.BYTES:
            value = bytes(value)  # a view of the receive buffer: not kept past the request
        elif kind == schemas.STRING_ARRAY and None in value:
            raise ProtocolError(f"null element in {f.name} of {cls.__qualname__} v{version}")
        values[f.name] = value
    return cls(**values)


def encode(message: schemas.Message, version: int) -> bytes:
    """Encode a typed response (or request) at `version` through kafka-python's classes."""
    kafka_cls = kafka_class(type(message))
    return bytes(_untyped(message, kafka_cls, version).encode(version=version))


def _untyped(obj: schemas.Struct, kafka_cls: Any, version: int) -> Any:
    values: dict[str, Any] = {}
    for f in obj.FIELDS:
        if not f.versions[0] <= version <= f.versions[1]:
            continue
        value = getattr(obj, f.name)
        if value is None:
            allowed = f.nullable is not None and f.nullable[0] <= version <= f.nullable[1]
            if not allowed and f.kind != schemas.UUID and f.tagged is None:
                # kafka-python would write a null the client cannot read: our bug
                raise ValueError(
                    f"{type(obj).__qualname__}.{f.name} is None; v{version} cannot carry it"
                )
        elif f.kind == schemas.STRUCT_ARRAY:
            nested = getattr(kafka_cls, f.struct.__name__)  # type: ignore[union-attr]
            value = [_untyped(item, nested, version) for item in value]
        elif f.kind == schemas.STRUCT:
            nested = getattr(kafka_cls, f.struct.__name__)  # type: ignore[union-attr]
            value = _untyped(value, nested, version)
        values[f.name] = value
    return kafka_cls(**values)


def error_response(api_key: int, version: int) -> bytes | None:
    """The response Kafka's `getErrorResponse` gives for a request that failed on the broker's
    own error: UNKNOWN_SERVER_ERROR in the top-level error code, everything else at its
    default; None when this version of the response has no top-level error code."""
    schema = schemas.RESPONSES.get(api_key)
    if schema is None or not any(
        f.name == "error_code" and f.versions[0] <= version <= f.versions[1] for f in schema.FIELDS
    ):
        return None
    kafka = kafka_class(schema)(version=version, error_code=ErrorCode.UNKNOWN_SERVER_ERROR)
    return bytes(kafka.encode(version=version))


def spec_versions(api_key: int) -> tuple[int, int, int | None]:
    """(min, max, flexible-from) as the spec states them; for tests of the registry."""
    req = request_class(api_key)
    flexible = req._flexible_versions
    valid = req._json["validVersions"]
    lo, _, hi = str(valid).partition("-")
    # kafka-python encodes "flexibleVersions": "none" as (-1, -1)
    return int(lo), int(hi or lo), None if flexible is None or flexible[0] < 0 else flexible[0]
