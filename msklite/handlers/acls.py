"""DescribeAcls (key 29), CreateAcls (key 30), DeleteAcls (key 31), versions 0-3.

Behavior:
- DescribeAcls needs DESCRIBE on the cluster, CreateAcls and DeleteAcls ALTER on it
  (CLUSTER_AUTHORIZATION_FAILED: DescribeAcls' top-level error, every result of the others).
- CreateAcls: each binding validated as Kafka's controller validates it (INVALID_REQUEST with
  Kafka's message: an ANY resource type or operation, a pattern type other than LITERAL or
  PREFIXED, ANY permission, an empty name, a CLUSTER resource not named `kafka-cluster`, a
  principal without `Type:`); a binding already there succeeds and adds nothing.
- DescribeAcls and DeleteAcls take filters (msklite.authz.acls.AclFilter): ANY fields, null
  names, principals and hosts match everything, MATCH every pattern applying to the name.
  DeleteAcls answers each filter with the bindings it matched among those present before the
  request (a binding two filters match is listed under both).
- A request naming an UNKNOWN (or unrecognised) resource type, pattern type, operation or
  permission closes the connection, as Kafka's request validation does.
- The ACLs are cluster metadata: saved with it (a failed save: KAFKA_STORAGE_ERROR, nothing
  changed) and in force on every broker at once.

Deviations from Kafka/MSK:
- The change is in force when the response leaves (Kafka propagates it to the brokers
  through the metadata log, a few milliseconds later).

Version notes: v0 has no pattern type: its bindings and filters are LITERAL (a v0 filter finds
the literal bindings of its name, the wildcard `*` only by that name, never a PREFIXED one), as
Kafka 3.9 reads it; Kafka 4.0 removed v0, so `--kafka-version` 4.x advertises v1-3. v1 adds the
pattern type (PREFIXED, KIP-290); v2 is flexible; v3 allows the USER resource type (KIP-554).
"""

from __future__ import annotations

from enum import IntEnum
from typing import TypeVar

from msklite.authz import AclOperation, AclPermissionType, PatternType, ResourceType
from msklite.authz.acls import AclBinding, AclFilter
from msklite.errors import ErrorCode, KafkaError, ProtocolError
from msklite.handlers.authorization import allowed
from msklite.handlers.context import BrokerContext
from msklite.handlers.registry import handles, spec_request, spec_response
from msklite.protocol import schemas
from msklite.protocol.api_keys import ApiKey
from msklite.protocol.header import RequestHeader
from msklite.protocol.primitives import Buffer, Reader

E = TypeVar("E", bound=IntEnum)

_CLUSTER_DENIED = "Cluster authorization failed."


def _enum(kind: type[E], code: int, what: str) -> E:
    """Kafka's fromCode: an unrecognised code is UNKNOWN, which the request's validation
    refuses (the connection closes)."""
    try:
        value = kind(code)
    except ValueError:
        value = kind(0)
    if value == 0:
        raise ProtocolError(f"an ACL request with an unknown {what} ({code})")
    return value


def _filter(
    rtype: int,
    name: str | None,
    pattern: int,
    principal: str | None,
    host: str | None,
    op: int,
    permission: int,
) -> AclFilter:
    return AclFilter(
        _enum(ResourceType, rtype, "resource type"),
        name,
        _enum(PatternType, pattern, "pattern type"),
        principal,
        host,
        _enum(AclOperation, op, "operation"),
        _enum(AclPermissionType, permission, "permission type"),
    )


@handles(ApiKey.DESCRIBE_ACLS, versions=(0, 3), flexible_from=2)
def describe_acls(ctx: BrokerContext, header: RequestHeader, r: Reader) -> list[Buffer]:
    req = spec_request(schemas.DescribeAclsRequest, header, r)
    f = _filter(
        req.resource_type_filter,
        req.resource_name_filter,
        req.pattern_type_filter,
        req.principal_filter,
        req.host_filter,
        req.operation,
        req.permission_type,
    )
    if not allowed(ctx, header, AclOperation.DESCRIBE):
        return spec_response(
            header,
            schemas.DescribeAclsResponse(
                throttle_time_ms=0,
                error_code=ErrorCode.CLUSTER_AUTHORIZATION_FAILED,
                error_message=_CLUSTER_DENIED,
                resources=[],
            ),
        )
    Resource = schemas.DescribeAclsResponse.DescribeAclsResource
    resources: dict[tuple[int, str, int], schemas.DescribeAclsResponse.DescribeAclsResource] = {}
    for b in ctx.controller.describe_acls(f):
        key = (b.resource_type, b.name, b.pattern_type)
        res = resources.get(key)
        if res is None:
            res = resources[key] = Resource(
                resource_type=b.resource_type,
                resource_name=b.name,
                pattern_type=b.pattern_type,
                acls=[],
            )
        res.acls.append(
            Resource.AclDescription(
                principal=b.principal,
                host=b.host,
                operation=b.operation,
                permission_type=b.permission,
            )
        )
    return spec_response(
        header,
        schemas.DescribeAclsResponse(
            throttle_time_ms=0, error_code=0, error_message=None, resources=list(resources.values())
        ),
    )


@handles(ApiKey.CREATE_ACLS, versions=(0, 3), flexible_from=2)
def create_acls(ctx: BrokerContext, header: RequestHeader, r: Reader) -> list[Buffer]:
    req = spec_request(schemas.CreateAclsRequest, header, r)
    bindings = [
        AclBinding(
            _enum(ResourceType, c.resource_type, "resource type"),
            c.resource_name,
            _enum(PatternType, c.resource_pattern_type, "pattern type"),
            c.principal,
            c.host,
            _enum(AclOperation, c.operation, "operation"),
            _enum(AclPermissionType, c.permission_type, "permission type"),
        )
        for c in req.creations
    ]
    Result = schemas.CreateAclsResponse.AclCreationResult
    if not allowed(ctx, header, AclOperation.ALTER):
        results = [
            Result(error_code=ErrorCode.CLUSTER_AUTHORIZATION_FAILED, error_message=_CLUSTER_DENIED)
            for _ in bindings
        ]
    else:
        results = [
            Result(error_code=0, error_message=None)
            if e is None
            else Result(error_code=e.code, error_message=e.message)
            for e in ctx.controller.create_acls(bindings)
        ]
    return spec_response(header, schemas.CreateAclsResponse(throttle_time_ms=0, results=results))


@handles(ApiKey.DELETE_ACLS, versions=(0, 3), flexible_from=2)
def delete_acls(ctx: BrokerContext, header: RequestHeader, r: Reader) -> list[Buffer]:
    req = spec_request(schemas.DeleteAclsRequest, header, r)
    filters = [
        _filter(
            f.resource_type_filter,
            f.resource_name_filter,
            f.pattern_type_filter,
            f.principal_filter,
            f.host_filter,
            f.operation,
            f.permission_type,
        )
        for f in req.filters
    ]
    Result = schemas.DeleteAclsResponse.DeleteAclsFilterResult
    Matching = Result.DeleteAclsMatchingAcl
    if not allowed(ctx, header, AclOperation.ALTER):
        outcomes: list[KafkaError | list[AclBinding]] = [
            KafkaError(ErrorCode.CLUSTER_AUTHORIZATION_FAILED, _CLUSTER_DENIED) for _ in filters
        ]
    else:
        outcomes = ctx.controller.delete_acls(filters)
    results = []
    for outcome in outcomes:
        if isinstance(outcome, KafkaError):
            results.append(
                Result(error_code=outcome.code, error_message=outcome.message, matching_acls=[])
            )
            continue
        matching = [
            Matching(
                error_code=0,
                error_message=None,
                resource_type=b.resource_type,
                resource_name=b.name,
                pattern_type=b.pattern_type,
                principal=b.principal,
                host=b.host,
                operation=b.operation,
                permission_type=b.permission,
            )
            for b in outcome
        ]
        results.append(Result(error_code=0, error_message=None, matching_acls=matching))
    return spec_response(
        header, schemas.DeleteAclsResponse(throttle_time_ms=0, filter_results=results)
    )
