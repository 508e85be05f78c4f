"""Kafka ACLs: the bindings, the filters the ACL APIs match them with, and the authorizer that
reads them as Kafka's StandardAuthorizer does.

- A binding is a resource pattern (type, name, LITERAL or PREFIXED) and an entry (principal,
  host, operation, ALLOW or DENY). `validate_new` refuses what Kafka's controller refuses
  (INVALID_REQUEST): an UNKNOWN/ANY resource type or operation, a pattern type other than
  LITERAL/PREFIXED, a permission other than ALLOW/DENY, an empty name, a CLUSTER resource not
  named `kafka-cluster`, a principal without `Type:`.
- A filter (DescribeAcls, DeleteAcls) matches as AclBindingFilter does: ANY fields match
  everything, a null name or principal or host any value; the MATCH pattern type matches every
  pattern that would apply to the named resource (the literal name, the `*` wildcard, every
  prefix).
- Authorizing an action: super users (`super.users`) may do everything. Otherwise the ACLs on
  the resource (literal name, literal `*`, every PREFIXED pattern that is a prefix of the name)
  whose principal is the session's or `User:*` and whose host is the client's or `*` decide:
  any DENY for the operation (or ALL) denies; else any ALLOW for it allows, where ALLOW on
  READ, WRITE, DELETE or ALTER implies DESCRIBE and ALLOW on ALTER_CONFIGS implies
  DESCRIBE_CONFIGS (never a DENY: DENY READ does not deny DESCRIBE). No ACL on the resource at
  all: `allow.everyone.if.no.acl.found` (MSK sets it true, and so does msklite's default);
  ACLs on the resource, none for this principal: denied.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from msklite.authz import (
    CLUSTER_NAME,
    WILDCARD,
    WILDCARD_PRINCIPAL,
    AclOperation,
    AclPermissionType,
    Action,
    PatternType,
    ResourceType,
    Session,
)
from msklite.errors import ErrorCode, KafkaError

_IMPLIES_DESCRIBE = frozenset(
    {
        AclOperation.DESCRIBE,
        AclOperation.READ,
        AclOperation.WRITE,
        AclOperation.DELETE,
        AclOperation.ALTER,
    }
)
_IMPLIES_DESCRIBE_CONFIGS = frozenset({AclOperation.DESCRIBE_CONFIGS, AclOperation.ALTER_CONFIGS})


@dataclass(frozen=True, slots=True)
class AclBinding:
    resource_type: ResourceType
    name: str
    pattern_type: PatternType
    principal: str
    host: str
    operation: AclOperation
    permission: AclPermissionType

    def to_json(self) -> list[Any]:
        return [
            int(self.resource_type),
            self.name,
            int(self.pattern_type),
            self.principal,
            self.host,
            int(self.operation),
            int(self.permission),
        ]

    @classmethod
    def from_json(cls, row: Sequence[Any]) -> AclBinding:
        rtype, name, pattern, principal, host, op, permission = row
        return cls(
            ResourceType(rtype),
            name,
            PatternType(pattern),
            principal,
            host,
            AclOperation(op),
            AclPermissionType(permission),
        )


def validate_new(b: AclBinding) -> None:
    """Raise KafkaError(INVALID_REQUEST) for a binding Kafka refuses to create."""
    if b.resource_type in (ResourceType.UNKNOWN, ResourceType.ANY):
        raise KafkaError(ErrorCode.INVALID_REQUEST, f"Invalid resourceType {b.resource_type.name}")
    if b.pattern_type not in (PatternType.LITERAL, PatternType.PREFIXED):
        raise KafkaError(ErrorCode.INVALID_REQUEST, f"Invalid patternType {b.pattern_type.name}")
    if b.operation in (AclOperation.UNKNOWN, AclOperation.ANY):
        raise KafkaError(ErrorCode.INVALID_REQUEST, f"Invalid operation {b.operation.name}")
    if b.permission not in (AclPermissionType.ALLOW, AclPermissionType.DENY):
        raise KafkaError(ErrorCode.INVALID_REQUEST, f"Invalid permissionType {b.permission.name}")
    if b.resource_type == ResourceType.CLUSTER and b.name != CLUSTER_NAME:
        raise KafkaError(
            ErrorCode.INVALID_REQUEST,
            f"The only valid name for the CLUSTER resource is {CLUSTER_NAME}",
        )
    if not b.name:
        raise KafkaError(ErrorCode.INVALID_REQUEST, "Invalid empty resource name")
    if ":" not in b.principal:
        raise KafkaError(
            ErrorCode.INVALID_REQUEST,
            "expected a string in format principalType:principalName but got " + b.principal,
        )


@dataclass(frozen=True, slots=True)
class AclFilter:
    """An AclBindingFilter; None in name, principal or host matches any value."""

    resource_type: ResourceType
    name: str | None
    pattern_type: PatternType
    principal: str | None
    host: str | None
    operation: AclOperation
    permission: AclPermissionType

    def check(self) -> None:
        """Raise INVALID_REQUEST for a filter with an UNKNOWN field (Kafka's validateFilter)."""
        if self.resource_type == ResourceType.UNKNOWN or self.pattern_type == PatternType.UNKNOWN:
            raise KafkaError(ErrorCode.INVALID_REQUEST, "Unknown patternFilter.")
        if self.operation == AclOperation.UNKNOWN or self.permission == AclPermissionType.UNKNOWN:
            raise KafkaError(ErrorCode.INVALID_REQUEST, "Unknown entryFilter.")

    def matches(self, b: AclBinding) -> bool:
        if self.resource_type not in (ResourceType.ANY, b.resource_type):
            return False
        pattern = self.pattern_type
        if pattern not in (PatternType.ANY, PatternType.MATCH, b.pattern_type):
            return False
        if self.name is not None:
            if pattern in (PatternType.ANY, b.pattern_type):
                if self.name != b.name:
                    return False
            elif b.pattern_type == PatternType.LITERAL:
                if self.name != b.name and b.name != WILDCARD:
                    return False
            elif not self.name.startswith(b.name):
                return False
        if self.principal is not None and self.principal != b.principal:
            return False
        if self.host is not None and self.host != b.host:
            return False
        if self.operation not in (AclOperation.ANY, b.operation):
            return False
        return self.permission in (AclPermissionType.ANY, b.permission)


class AclIndex:
    """Bindings by resource type and pattern, for the authorizer's lookups."""

    def __init__(self, bindings: Iterable[AclBinding]) -> None:
        self.literal: dict[tuple[ResourceType, str], list[AclBinding]] = {}
        self.prefixed: dict[tuple[ResourceType, str], list[AclBinding]] = {}
        # per resource type, the lengths of its PREFIXED names, longest first
        self.prefix_lengths: dict[ResourceType, list[int]] = {}
        for b in bindings:
            table = self.literal if b.pattern_type == PatternType.LITERAL else self.prefixed
            table.setdefault((b.resource_type, b.name), []).append(b)
        for rtype, name in self.prefixed:
            self.prefix_lengths.setdefault(rtype, []).append(len(name))
        for lengths in self.prefix_lengths.values():
            lengths[:] = sorted(set(lengths), reverse=True)
        self.empty = not self.literal and not self.prefixed

    def applying(self, rtype: ResourceType, name: str) -> list[list[AclBinding]]:
        """The groups of bindings whose pattern applies to the resource."""
        out = []
        found = self.literal.get((rtype, name))
        if found:
            out.append(found)
        if name != WILDCARD:
            found = self.literal.get((rtype, WILDCARD))
            if found:
                out.append(found)
        for n in self.prefix_lengths.get(rtype, ()):
            if n <= len(name):
                found = self.prefixed.get((rtype, name[:n]))
                if found:
                    out.append(found)
        return out


def _grants(b: AclBinding, op: AclOperation) -> bool:
    """Whether binding `b` (its principal and host already matching) speaks of `op`."""
    if b.operation == AclOperation.ALL or b.operation == op:
        return True
    if b.permission != AclPermissionType.ALLOW:
        return False
    if op == AclOperation.DESCRIBE:
        return b.operation in _IMPLIES_DESCRIBE
    if op == AclOperation.DESCRIBE_CONFIGS:
        return b.operation in _IMPLIES_DESCRIBE_CONFIGS
    return False


class AclSource(Protocol):
    """Where the authorizer reads the ACLs: the controller, which replaces the tuple as a
    whole on every change (so an identity check tells when to re-index)."""

    @property
    def acls(self) -> tuple[AclBinding, ...]: ...


@dataclass(frozen=True, slots=True)
class StaticAcls:
    """A fixed set of ACLs (no ACLs by default): for a context without a controller."""

    acls: tuple[AclBinding, ...] = ()


_CACHE_LIMIT = 1 << 16  # decisions remembered per ACL set, then forgotten all at once


class AclAuthorizer:
    """Kafka's StandardAuthorizer over the ACLs of `source`. Decisions are remembered per
    (principal, host, action) until the ACLs change, so that a produce with ACLs in force
    costs a dictionary lookup per topic."""

    def __init__(
        self,
        source: AclSource,
        super_users: Iterable[str] = (),
        allow_everyone_if_no_acl_found: bool = True,
    ) -> None:
        self._source = source
        self._indexed: tuple[AclBinding, ...] | None = None
        self._index = AclIndex(())
        self._open = allow_everyone_if_no_acl_found  # no ACLs and allow.everyone: all allowed
        self._decisions: dict[tuple[str, str, Action], bool] = {}
        self.super_users = frozenset(super_users)
        self.allow_everyone = allow_everyone_if_no_acl_found

    def _reindex(self, acls: tuple[AclBinding, ...]) -> None:
        self._index = AclIndex(acls)
        self._indexed = acls
        self._open = self._index.empty and self.allow_everyone
        self._decisions = {}

    def allows_everything(self, session: Session) -> bool:
        acls = self._source.acls
        if acls is not self._indexed:
            self._reindex(acls)
        return self._open or session.principal in self.super_users

    def authorize(self, session: Session, actions: Sequence[Action]) -> list[bool]:
        if self.allows_everything(session):
            return [True] * len(actions)
        principal = session.principal
        host = session.client_host
        decisions = self._decisions
        out = []
        for action in actions:
            key = (principal, host, action)
            decision = decisions.get(key)
            if decision is None:
                if len(decisions) >= _CACHE_LIMIT:
                    decisions.clear()
                decision = decisions[key] = self._decide(principal, host, action)
            out.append(decision)
        return out

    def _decide(self, principal: str, host: str, action: Action) -> bool:
        op = action.operation
        allowed = False
        groups = self._index.applying(action.resource_type, action.name)
        for group in groups:
            for b in group:
                if b.principal != principal and b.principal != WILDCARD_PRINCIPAL:
                    continue
                if b.host != WILDCARD and b.host != host:
                    continue
                if not _grants(b, op):
                    continue
                if b.permission == AclPermissionType.DENY:
                    return False
                allowed = True
        if allowed:
            return True
        return not groups and self.allow_everyone

    def authorize_by_resource_type(
        self, session: Session, operation: AclOperation, resource_type: ResourceType
    ) -> bool:
        # As Kafka's default implementation: a made-up name first, so that super users and
        # allow.everyone.if.no.acl.found pass whatever the DENY ACLs say.
        if self.authorize(session, [Action(operation, resource_type, "hardcode")])[0]:
            return True
        principal, host = session.principal, session.client_host
        deny: dict[PatternType, set[str]] = {
            PatternType.LITERAL: set(),
            PatternType.PREFIXED: set(),
        }
        allow: dict[PatternType, set[str]] = {
            PatternType.LITERAL: set(),
            PatternType.PREFIXED: set(),
        }
        wildcard_allow = False
        for b in self._source.acls:
            if b.resource_type != resource_type:
                continue
            if b.host != host and b.host != WILDCARD:
                continue
            if b.principal != principal and b.principal != WILDCARD_PRINCIPAL:
                continue
            if b.operation != operation and b.operation != AclOperation.ALL:
                continue
            if b.permission == AclPermissionType.DENY:
                if b.pattern_type == PatternType.LITERAL and b.name == WILDCARD:
                    return False
                deny[b.pattern_type].add(b.name)
            elif b.pattern_type == PatternType.LITERAL and b.name == WILDCARD:
                wildcard_allow = True
            else:
                allow[b.pattern_type].add(b.name)
        if wildcard_allow:
            return True
        for pattern, names in allow.items():
            for name in names:
                if pattern == PatternType.LITERAL and name in deny[PatternType.LITERAL]:
                    continue
                if not any(name[:n] in deny[PatternType.PREFIXED] for n in range(1, len(name) + 1)):
                    return True
        return False
