"""The handlers' side of authorization: Kafka's AuthHelper over `ctx.authorizer`
(msklite.authz). Each handler asks with Kafka's rules for its API; these helpers only shape
the questions (one batch per request, each resource asked once)."""

from __future__ import annotations

from collections.abc import Iterable

from msklite.authz import CLUSTER_NAME, AclOperation, Action, ResourceType
from msklite.handlers.context import BrokerContext
from msklite.protocol.header import RequestHeader

# Shorthands for the handlers' questions.
TOPIC, GROUP, CLUSTER = ResourceType.TOPIC, ResourceType.GROUP, ResourceType.CLUSTER
TRANSACTIONAL_ID = ResourceType.TRANSACTIONAL_ID
READ, WRITE, CREATE, DELETE = (
    AclOperation.READ,
    AclOperation.WRITE,
    AclOperation.CREATE,
    AclOperation.DELETE,
)
ALTER, DESCRIBE = AclOperation.ALTER, AclOperation.DESCRIBE
DESCRIBE_CONFIGS, ALTER_CONFIGS = AclOperation.DESCRIBE_CONFIGS, AclOperation.ALTER_CONFIGS


def authorized(
    ctx: BrokerContext,
    header: RequestHeader,
    operation: AclOperation,
    resource_type: ResourceType,
    names: Iterable[str],
) -> set[str]:
    """The names among `names` the request's principal may do `operation` to (Kafka's
    filterByAuthorized)."""
    if ctx.authorizer.allows_everything(header):
        return set(names)
    distinct = list(dict.fromkeys(names))
    if not distinct:
        return set()
    answers = ctx.authorizer.authorize(
        header, [Action(operation, resource_type, n) for n in distinct]
    )
    return {n for n, ok in zip(distinct, answers, strict=True) if ok}


def allowed(
    ctx: BrokerContext,
    header: RequestHeader,
    operation: AclOperation,
    resource_type: ResourceType = ResourceType.CLUSTER,
    name: str = CLUSTER_NAME,
) -> bool:
    """Whether the principal may do `operation` to one resource (the cluster by default)."""
    return ctx.authorizer.authorize(header, [Action(operation, resource_type, name)])[0]


def allowed_on_any(
    ctx: BrokerContext, header: RequestHeader, operation: AclOperation, resource_type: ResourceType
) -> bool:
    """Kafka's authorizeByResourceType: `operation` on at least one resource of the type."""
    return ctx.authorizer.authorize_by_resource_type(header, operation, resource_type)


# The operations Kafka reports per resource type (its authorizedOperations: what the
# resource type supports, ALL and ANY aside).
_SUPPORTED = {
    ResourceType.TOPIC: (
        AclOperation.READ,
        AclOperation.WRITE,
        AclOperation.CREATE,
        AclOperation.DELETE,
        AclOperation.ALTER,
        AclOperation.DESCRIBE,
        AclOperation.DESCRIBE_CONFIGS,
        AclOperation.ALTER_CONFIGS,
    ),
    ResourceType.GROUP: (AclOperation.READ, AclOperation.DESCRIBE, AclOperation.DELETE),
    ResourceType.CLUSTER: (
        AclOperation.CREATE,
        AclOperation.ALTER,
        AclOperation.DESCRIBE,
        AclOperation.CLUSTER_ACTION,
        AclOperation.DESCRIBE_CONFIGS,
        AclOperation.ALTER_CONFIGS,
        AclOperation.IDEMPOTENT_WRITE,
        AclOperation.CREATE_TOKENS,
        AclOperation.DESCRIBE_TOKENS,
    ),
}


def authorized_operations(
    ctx: BrokerContext, header: RequestHeader, resource_type: ResourceType, name: str
) -> set[int]:
    """The operation codes the principal may do to the resource (the authorized-operations
    fields of Metadata, DescribeCluster and DescribeGroups)."""
    ops = _SUPPORTED[resource_type]
    if ctx.authorizer.allows_everything(header):
        return {int(op) for op in ops}
    answers = ctx.authorizer.authorize(header, [Action(op, resource_type, name) for op in ops])
    return {int(op) for op, ok in zip(ops, answers, strict=True) if ok}


def bits(ops: set[int]) -> int:
    """Operation codes as Kafka's int32 bitfield."""
    return sum(1 << op for op in ops)
