"""The control-plane codec: kafka-python's classes, generated at run time from Apache Kafka's
JSON message specs, behind one adapter.

Loaded lazily: importing kafka-python executes its whole client package (≈175 ms here), which
must stay off the start-up path; ApiVersions, Metadata, Produce and Fetch have codecs of their
own. Decoded objects carry the spec's snake_case field names; responses are built from the
response class and its nested classes (`response(key).SomeNestedStruct(...)`).
"""

from __future__ import annotations

import importlib
import warnings
from functools import cache
from typing import Any

from msklite.errors import ProtocolError
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
    ApiKey.DESCRIBE_CONFIGS: ("kafka.protocol.admin.configs", "DescribeConfigs"),
    ApiKey.ALTER_CONFIGS: ("kafka.protocol.admin.configs", "AlterConfigs"),
    ApiKey.INCREMENTAL_ALTER_CONFIGS: ("kafka.protocol.admin.configs", "IncrementalAlterConfigs"),
    ApiKey.INIT_PRODUCER_ID: ("kafka.protocol.producer.transaction", "InitProducerId"),
    ApiKey.ADD_PARTITIONS_TO_TXN: ("kafka.protocol.producer.transaction", "AddPartitionsToTxn"),
    ApiKey.ADD_OFFSETS_TO_TXN: ("kafka.protocol.producer.transaction", "AddOffsetsToTxn"),
    ApiKey.END_TXN: ("kafka.protocol.producer.transaction", "EndTxn"),
    ApiKey.TXN_OFFSET_COMMIT: ("kafka.protocol.producer.transaction", "TxnOffsetCommit"),
    ApiKey.DESCRIBE_CLUSTER: ("kafka.protocol.admin.cluster", "DescribeCluster"),
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


def decode_request(api_key: int, version: int, body: memoryview) -> Any:
    try:
        return request_class(api_key).decode(body, version=version)
    except Exception as e:
        # The generated decoders raise whatever struct/index/unicode error the bytes provoke;
        # all of them mean the same: the peer sent a malformed request.
        raise ProtocolError(f"malformed {ApiKey(api_key).name} v{version}: {e!r}") from e


def encode(message: Any, version: int) -> bytes:
    return bytes(message.encode(version=version))


def spec_versions(api_key: int) -> tuple[int, int, int | None]:
    """(min, max, flexible-from) as the spec states them; for tests of the registry."""
    req = request_class(api_key)
    flexible = req._flexible_versions
    valid = req._json["validVersions"]
    lo, _, hi = str(valid).partition("-")
    # kafka-python encodes "flexibleVersions": "none" as (-1, -1)
    return int(lo), int(hi or lo), None if flexible is None or flexible[0] < 0 else flexible[0]
