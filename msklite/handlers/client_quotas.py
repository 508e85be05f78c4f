"""DescribeClientQuotas (key 48) and AlterClientQuotas (key 49), versions 0-1.

Behavior (Kafka 3.9 in KRaft mode: the controller's ClientQuotaControlManager and the
brokers' metadata image):
- Entities: `user`, `client-id`, both together, each with a name or null (the default:
  `<default>` in kafka-configs), and `ip` alone. A type named twice in one entity keeps its
  last name (Kafka reads the entity into a HashMap).
- AlterClientQuotas: keys producer_byte_rate and consumer_byte_rate (whole numbers),
  request_percentage and controller_mutation_rate for user/client-id entities,
  connection_creation_rate (a whole number) for ip entities; `remove` drops a key.
  INVALID_REQUEST, with Kafka's messages, for an empty entity, an unknown entity type, an
  empty name, ip combined with user or client-id, an ip that is no address, an unknown key,
  a value ≤ 0, a fraction for a whole-number key or one too large; an entity named twice in
  one request (or a key twice in one entity) is answered once, "Ignoring duplicate entity …",
  while its first appearance's changes still apply, as in Kafka. Each entity succeeds or
  fails on its own; validate_only checks without changing. The accepted changes are saved
  with the cluster metadata (they survive restarts) and reach every broker at once.
- DescribeClientQuotas: components match an entity type exactly (a name), its default
  (null) or any name (specified); `strict` leaves out entities with other types. A bad filter
  answers the whole request with INVALID_REQUEST (an empty type, a type twice, a match string
  where none belongs or none where one does, ip with user or client-id, an unknown match
  type) or UNSUPPORTED_VERSION (an unknown entity type), and entries null.
- Entities are listed client-id first, then user, and their values in the order Kafka's
  HashMap gives (request_percentage, producer_byte_rate, consumer_byte_rate,
  controller_mutation_rate).

- Authorization (Kafka's): DescribeClientQuotas needs DESCRIBE_CONFIGS on the cluster, else
  CLUSTER_AUTHORIZATION_FAILED (no message, entries null); AlterClientQuotas needs
  ALTER_CONFIGS on the cluster, else every entry as sent answers CLUSTER_AUTHORIZATION_FAILED
  "Cluster authorization failed.".

Deviations from Kafka/MSK:
- An ip entity's name must be an address (or `localhost`): Kafka also resolves host names.
- ip quotas (connection_creation_rate) and controller_mutation_rate are saved and described,
  not enforced.

Version notes: v1 is v0, flexible.
"""

from __future__ import annotations

from msklite.authz import AclOperation
from msklite.client_quotas import Entity, entity_of
from msklite.errors import ErrorCode, KafkaError
from msklite.handlers.authorization import allowed
from msklite.handlers.context import BrokerContext
from msklite.handlers.registry import handles, spec_request, spec_response
from msklite.protocol import schemas
from msklite.protocol.api_keys import ApiKey
from msklite.protocol.header import RequestHeader
from msklite.protocol.primitives import Buffer, Reader

_Describe = schemas.DescribeClientQuotasResponse
_Alter = schemas.AlterClientQuotasResponse


@handles(ApiKey.DESCRIBE_CLIENT_QUOTAS, versions=(0, 1), flexible_from=1)
def handle_describe(ctx: BrokerContext, header: RequestHeader, r: Reader) -> list[Buffer]:
    req = spec_request(schemas.DescribeClientQuotasRequest, header, r)
    if not allowed(ctx, header, AclOperation.DESCRIBE_CONFIGS):
        body = _Describe(
            throttle_time_ms=0,
            error_code=ErrorCode.CLUSTER_AUTHORIZATION_FAILED,
            error_message=None,
            entries=None,
        )
        return spec_response(header, body)
    components = [(c.entity_type, c.match_type, c.match) for c in req.components]
    try:
        found = ctx.controller.client_quotas.describe(components, req.strict)
    except KafkaError as e:
        body = _Describe(
            throttle_time_ms=0, error_code=e.code, error_message=e.message, entries=None
        )
        return spec_response(header, body)
    entries = [
        _Describe.EntryData(
            entity=[
                _Describe.EntryData.EntityData(entity_type=t, entity_name=n) for t, n in entity
            ],
            values=[_Describe.EntryData.ValueData(key=k, value=v) for k, v in values],
        )
        for entity, values in found
    ]
    body = _Describe(
        throttle_time_ms=0, error_code=ErrorCode.NONE, error_message=None, entries=entries
    )
    return spec_response(header, body)


@handles(ApiKey.ALTER_CLIENT_QUOTAS, versions=(0, 1), flexible_from=1)
def handle_alter(ctx: BrokerContext, header: RequestHeader, r: Reader) -> list[Buffer]:
    req = spec_request(schemas.AlterClientQuotasRequest, header, r)
    if not allowed(ctx, header, AclOperation.ALTER_CONFIGS):
        denied = _Alter(
            throttle_time_ms=0,
            entries=[
                _Alter.EntryData(
                    error_code=ErrorCode.CLUSTER_AUTHORIZATION_FAILED,
                    error_message="Cluster authorization failed.",
                    entity=[
                        _Alter.EntryData.EntityData(
                            entity_type=e.entity_type, entity_name=e.entity_name
                        )
                        for e in entry.entity
                    ],
                )
                for entry in req.entries
            ],
        )
        return spec_response(header, denied)
    entries: list[tuple[Entity, list[tuple[str, float, bool]]]] = [
        (
            entity_of((e.entity_type, e.entity_name) for e in entry.entity),
            [(op.key, op.value, op.remove) for op in entry.ops],
        )
        for entry in req.entries
    ]
    outcomes = ctx.controller.alter_client_quotas(entries, req.validate_only)
    body = _Alter(
        throttle_time_ms=0,
        entries=[
            _Alter.EntryData(
                error_code=o.code,
                error_message=o.message,
                entity=[
                    _Alter.EntryData.EntityData(entity_type=t, entity_name=n) for t, n in o.entity
                ],
            )
            for o in outcomes
        ],
    )
    return spec_response(header, body)
