"""The handler registry: api key → handler, with the versions it serves declared beside it
(franz-go kfake's `regKey`). ApiVersions advertises this table intersected with the emulated
Kafka release's, so a version is advertised if and only if a handler serves it and that
release did.

Handler modules are imported on their first request, not at start-up (together they and the
typed schemas they use cost ≈ 20 ms of a ≈ 100 ms cold start): `_INDEX` names each key's module
and repeats what its `@handles` declares, so that ApiVersions can be answered before any
handler module is loaded; `@handles` refuses a declaration the index does not repeat exactly.
A new API adds its line to `_INDEX` beside its `@handles`.
"""

from __future__ import annotations

import importlib
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, TypeVar

from msklite.handlers.context import Handler
from msklite.protocol.api_keys import ApiKey
from msklite.protocol.header import RequestHeader
from msklite.protocol.primitives import Buffer, Reader

if TYPE_CHECKING:
    from msklite.handlers.context import BrokerContext, Response
    from msklite.protocol import schemas


@dataclass(frozen=True, slots=True)
class HandlerSpec:
    api_key: int
    min_version: int
    max_version: int
    flexible_from: int | None  # first flexible version (header v2 / tagged fields)
    handler: Handler

    def is_flexible(self, version: int) -> bool:
        return self.flexible_from is not None and version >= self.flexible_from


# api key -> (its module in msklite.handlers, versions, first flexible version)
_INDEX: dict[int, tuple[str, tuple[int, int], int | None]] = {
    ApiKey.CREATE_ACLS: ("acls", (0, 3), 2),
    ApiKey.DELETE_ACLS: ("acls", (0, 3), 2),
    ApiKey.DESCRIBE_ACLS: ("acls", (0, 3), 2),
    ApiKey.ALTER_CONFIGS: ("alter_configs", (0, 2), 2),
    ApiKey.INCREMENTAL_ALTER_CONFIGS: ("alter_configs", (0, 1), 1),
    ApiKey.API_VERSIONS: ("api_versions", (0, 4), 3),
    ApiKey.ALTER_CLIENT_QUOTAS: ("client_quotas", (0, 1), 1),
    ApiKey.DESCRIBE_CLIENT_QUOTAS: ("client_quotas", (0, 1), 1),
    ApiKey.DESCRIBE_CONFIGS: ("configs", (1, 4), 4),
    ApiKey.CONSUMER_GROUP_DESCRIBE: ("consumer_groups", (0, 1), 0),
    ApiKey.CONSUMER_GROUP_HEARTBEAT: ("consumer_groups", (0, 1), 0),
    ApiKey.DELETE_RECORDS: ("delete_records", (0, 2), 2),
    ApiKey.FETCH: ("fetch", (4, 12), 12),
    ApiKey.DELETE_GROUPS: ("groups", (0, 2), 2),
    ApiKey.DESCRIBE_GROUPS: ("groups", (0, 6), 5),
    ApiKey.FIND_COORDINATOR: ("groups", (0, 6), 3),
    ApiKey.HEARTBEAT: ("groups", (0, 4), 4),
    ApiKey.JOIN_GROUP: ("groups", (0, 9), 6),
    ApiKey.LEAVE_GROUP: ("groups", (0, 5), 4),
    ApiKey.LIST_GROUPS: ("groups", (0, 5), 3),
    ApiKey.SYNC_GROUP: ("groups", (0, 5), 4),
    ApiKey.OFFSET_FOR_LEADER_EPOCH: ("leader_epoch", (2, 4), 4),
    ApiKey.LIST_OFFSETS: ("list_offsets", (1, 8), 6),
    ApiKey.DESCRIBE_CLUSTER: ("metadata", (0, 1), 0),
    ApiKey.METADATA: ("metadata", (0, 12), 9),
    ApiKey.OFFSET_COMMIT: ("offsets", (2, 9), 8),
    ApiKey.OFFSET_DELETE: ("offsets", (0, 0), None),
    ApiKey.OFFSET_FETCH: ("offsets", (1, 9), 6),
    ApiKey.PRODUCE: ("produce", (3, 11), 9),
    ApiKey.INIT_PRODUCER_ID: ("producer_id", (0, 5), 2),
    ApiKey.ALTER_PARTITION_REASSIGNMENTS: ("replicas", (0, 1), 0),
    ApiKey.DESCRIBE_LOG_DIRS: ("replicas", (1, 4), 2),
    ApiKey.ELECT_LEADERS: ("replicas", (0, 2), 2),
    ApiKey.LIST_PARTITION_REASSIGNMENTS: ("replicas", (0, 0), 0),
    ApiKey.SASL_AUTHENTICATE: ("sasl", (0, 2), 2),
    ApiKey.SASL_HANDSHAKE: ("sasl", (0, 1), None),
    ApiKey.ALTER_USER_SCRAM_CREDENTIALS: ("scram_admin", (0, 0), 0),
    ApiKey.DESCRIBE_USER_SCRAM_CREDENTIALS: ("scram_admin", (0, 0), 0),
    ApiKey.SHARE_ACKNOWLEDGE: ("share_fetch", (1, 2), 0),
    ApiKey.SHARE_FETCH: ("share_fetch", (1, 2), 0),
    ApiKey.ALTER_SHARE_GROUP_OFFSETS: ("share_groups", (0, 0), 0),
    ApiKey.DELETE_SHARE_GROUP_OFFSETS: ("share_groups", (0, 0), 0),
    ApiKey.DESCRIBE_SHARE_GROUP_OFFSETS: ("share_groups", (0, 1), 0),
    ApiKey.SHARE_GROUP_DESCRIBE: ("share_groups", (1, 1), 0),
    ApiKey.SHARE_GROUP_HEARTBEAT: ("share_groups", (1, 1), 0),
    ApiKey.CREATE_PARTITIONS: ("topics", (0, 3), 2),
    ApiKey.CREATE_TOPICS: ("topics", (2, 7), 5),
    ApiKey.DELETE_TOPICS: ("topics", (1, 6), 4),
    ApiKey.DESCRIBE_PRODUCERS: ("transaction_admin", (0, 0), 0),
    ApiKey.DESCRIBE_TRANSACTIONS: ("transaction_admin", (0, 0), 0),
    ApiKey.LIST_TRANSACTIONS: ("transaction_admin", (0, 2), 0),
    ApiKey.ADD_OFFSETS_TO_TXN: ("transactions", (0, 4), 3),
    ApiKey.ADD_PARTITIONS_TO_TXN: ("transactions", (0, 5), 3),
    ApiKey.END_TXN: ("transactions", (0, 4), 3),
    ApiKey.TXN_OFFSET_COMMIT: ("transactions", (0, 4), 3),
    ApiKey.WRITE_TXN_MARKERS: ("transactions", (0, 1), 1),
}

# api key -> the spec its module registered (filled as modules are imported)
_LOADED: dict[int, HandlerSpec] = {}


def _loader(api_key: int) -> Handler:
    """The handler that stands for `api_key`'s until its module is imported: it imports the
    module, puts the real spec in HANDLERS (later requests go straight to it) and calls it."""

    def load(
        ctx: BrokerContext, header: RequestHeader, r: Reader
    ) -> Response | Awaitable[Response]:
        return loaded(api_key).handler(ctx, header, r)

    return load


def loaded(api_key: int) -> HandlerSpec:
    """`api_key`'s spec with its real handler (its module imported now if need be)."""
    spec = _LOADED.get(api_key)
    if spec is None:
        importlib.import_module(f"msklite.handlers.{_INDEX[api_key][0]}")
        spec = _LOADED[api_key]
    if HANDLERS.get(api_key) is _STANDINS.get(api_key):
        HANDLERS[api_key] = spec
    return spec


_STANDINS: dict[int, HandlerSpec] = {
    key: HandlerSpec(key, versions[0], versions[1], flexible_from, _loader(key))
    for key, (_, versions, flexible_from) in _INDEX.items()
}
HANDLERS: dict[int, HandlerSpec] = dict(_STANDINS)


def handles(
    api_key: int, versions: tuple[int, int], flexible_from: int | None
) -> Callable[[Handler], Handler]:
    def register(fn: Handler) -> Handler:
        declared = (fn.__module__.removeprefix("msklite.handlers."), versions, flexible_from)
        if _INDEX.get(api_key) != declared:
            raise RuntimeError(
                f"@handles({api_key}, versions={versions}, flexible_from={flexible_from}) in "
                f"{fn.__module__}: msklite.handlers.registry._INDEX must say {declared} for it"
            )
        if api_key in _LOADED:
            raise RuntimeError(f"two handlers for api key {api_key}")
        _LOADED[api_key] = HandlerSpec(api_key, versions[0], versions[1], flexible_from, fn)
        return fn

    return register


def load_all() -> dict[int, HandlerSpec]:
    """Every handler module imported: api key -> its spec with the real handler."""
    return {key: loaded(key) for key in _INDEX}


M = TypeVar("M", bound="schemas.Message")


def spec_request(message: type[M], header: RequestHeader, r: Reader) -> M:
    """The typed request of an API served by the spec codec (ProtocolError if malformed)."""
    # imported here: the codec and the typed schemas load with the first such request
    from msklite.protocol import messages

    return messages.decode_request(message, header.api_version, r.data[r.pos :])


def spec_response(header: RequestHeader, message: schemas.Message) -> list[Buffer]:
    """The response body, at the request's version."""
    from msklite.protocol import messages

    return [messages.encode(message, header.api_version)]


def served_versions(release: Mapping[int, tuple[int, int]]) -> dict[int, tuple[int, int]]:
    """api key -> (min, max) this broker advertises and accepts when it emulates a Kafka
    release: what the release advertised (msklite.kafka_releases) that a handler serves.
    An API the release lacks is absent, so a request for it closes the connection."""
    out = {}
    for key in sorted(HANDLERS):
        spec = HANDLERS[key]
        if key not in release:
            continue
        lo = max(spec.min_version, release[key][0])
        hi = min(spec.max_version, release[key][1])
        if lo <= hi:
            out[key] = (lo, hi)
    return out
