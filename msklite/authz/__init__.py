"""Authorization: who may do what to which resource, asked by the handlers per resource as
Kafka's KafkaApis asks its `Authorizer`.

The interface (`Authorizer`) is Kafka's org.apache.kafka.server.authorizer.Authorizer in
miniature: a batch of `Action`s (operation, resource type, literal resource name) answered
for one request's `Session` (principal, client host, listener), and `authorize_by_resource_type`
(may the principal do the operation to any resource of the type, KIP-679). Handlers ask it
through `ctx.authorizer` (handlers/context.py) with Kafka's per-API rules; an implementation
decides. The cluster's is the ACL authorizer (acls.py, Kafka's StandardAuthorizer); IAM
policies plug in as another implementation of the same protocol.

It sits below the controller in the import layers: the controller stores the ACLs (they are
cluster metadata) and the handlers ask; the security package (above both) composes them.
The enums carry Kafka's wire codes (AclOperation, ResourceType, PatternType,
AclPermissionType as the ACL APIs send them).
"""

from __future__ import annotations

from collections.abc import Sequence
from enum import IntEnum
from typing import NamedTuple, Protocol


class AclOperation(IntEnum):
    UNKNOWN = 0
    ANY = 1
    ALL = 2
    READ = 3
    WRITE = 4
    CREATE = 5
    DELETE = 6
    ALTER = 7
    DESCRIBE = 8
    CLUSTER_ACTION = 9
    DESCRIBE_CONFIGS = 10
    ALTER_CONFIGS = 11
    IDEMPOTENT_WRITE = 12
    CREATE_TOKENS = 13
    DESCRIBE_TOKENS = 14


class ResourceType(IntEnum):
    UNKNOWN = 0
    ANY = 1
    TOPIC = 2
    GROUP = 3
    CLUSTER = 4
    TRANSACTIONAL_ID = 5
    DELEGATION_TOKEN = 6
    USER = 7


class PatternType(IntEnum):
    UNKNOWN = 0
    ANY = 1
    MATCH = 2
    LITERAL = 3
    PREFIXED = 4


class AclPermissionType(IntEnum):
    UNKNOWN = 0
    ANY = 1
    DENY = 2
    ALLOW = 3


CLUSTER_NAME = "kafka-cluster"  # the one CLUSTER resource's name
WILDCARD = "*"  # a LITERAL resource name or host matching every one
WILDCARD_PRINCIPAL = "User:*"


class Action(NamedTuple):
    """One thing a request wants to do; the resource name is always literal (Kafka's
    Action.resourcePattern is LITERAL)."""

    operation: AclOperation
    resource_type: ResourceType
    name: str


class Session(Protocol):
    """Who asks (RequestHeader is one): Kafka's AuthorizableRequestContext."""

    @property
    def principal(self) -> str:  # `Type:name`, e.g. User:alice, User:ANONYMOUS
        ...

    @property
    def client_host(self) -> str:  # the peer's IP address
        ...

    @property
    def listener(self) -> str:  # the listener's name (CLIENT, CLIENT_SECURE, ...)
        ...


class Authorizer(Protocol):
    """Kafka's Authorizer: answers are True (ALLOWED) or False (DENIED)."""

    def authorize(self, session: Session, actions: Sequence[Action]) -> list[bool]:
        """One answer per action, in order."""
        ...

    def authorize_by_resource_type(
        self, session: Session, operation: AclOperation, resource_type: ResourceType
    ) -> bool:
        """Whether `operation` is allowed on at least one resource of the type (as Kafka's
        default implementation reads ACLs: an allow not dominated by a deny)."""
        ...

    def allows_everything(self, session: Session) -> bool:
        """True only when every action of `session` would be allowed now (no ACLs and
        allow.everyone.if.no.acl.found, a super user, no IAM policy in force): the handlers
        then skip the per-resource questions (a Metadata of every topic, each Produce).
        False is always a correct answer."""
        ...
