"""The handlers' side of authorization: Kafka's AuthHelper over `ctx.authorizer`
(msklite.authz). Each handler asks with Kafka's rules for its API; these helpers only shape
the questions (one batch per request, each resource asked once)."""

from __future__ import annotations

from collections.abc import Iterable

from msklite.authz import CLUSTER_NAME, AclOperation, Action, ResourceType
from msklite.handlers.context import BrokerContext
from msklite.protocol.header import RequestHeader


def authorized(
    ctx: BrokerContext,
    header: RequestHeader,
    operation: AclOperation,
    resource_type: ResourceType,
    names: Iterable[str],
) -> set[str]:
    """The names among `names` the request's principal may do `operation` to (Kafka's
    filterByAuthorized)."""
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
