"""IAM policies on the IAM listener, as MSK evaluates them: the `Authorizer` (msklite.authz) of
connections that authenticated with AWS_MSK_IAM or OAUTHBEARER-IAM.

Each Kafka authorization check (an ACL operation on a resource) is one `kafka-cluster:` action
on one resource ARN, as MSK's "semantics of IAM authorization policy actions" table pairs
them: DESCRIBE CLUSTER → DescribeCluster, WRITE TOPIC → WriteData, READ TOPIC → ReadData,
READ GROUP → AlterGroup, WRITE TRANSACTIONAL_ID → AlterTransactionalId, ... (`ACTIONS`). The
table's "required actions" are not implied: as on MSK, a producer's policy lists DescribeTopic
beside WriteData (Kafka's ACLs, by contrast, let WRITE imply DESCRIBE). Resources are MSK's
ARNs: `arn:aws:kafka:<region>:<account>:cluster/<cluster-name>/<cluster-uuid>`, and
`topic/`, `group/`, `transactional-id/` + `<cluster-name>/<cluster-uuid>/<name>`.

A policy document is IAM's JSON (`Version`, `Statement`: `Effect` Allow or Deny, `Action` or
`NotAction`, `Resource` or `NotResource`, each a string or a list; `*` and `?` wildcards;
actions match case-insensitively, resources exactly). An explicit Deny wins over any Allow;
without an Allow the action is denied (IAM's implicit deny). A statement with `Condition`,
`Principal` or `NotPrincipal` (identity policies have none) is refused when the policy is
loaded, naming it, rather than silently widened or narrowed.

Policies attach to principal ARNs (`--iam-policy ARN=FILE`, `Cluster(iam_policies=...)`,
`Cluster.attach_iam_policy`). While no policy is attached at all, every IAM principal may do
everything (local development needs no policy); once one is, every IAM principal is checked
and one without policies may do nothing, as in IAM.

Deviations from Kafka/MSK:
- Kafka's internal cluster actions (CLUSTER_ACTION: WriteTxnMarkers, ...) are denied, as MSK
  documents; `kafka-cluster:Connect` is checked at authentication (a principal whose policies
  do not allow it gets SASL_AUTHENTICATION_FAILED).
- The region, account and cluster name in the ARNs are msklite's (`IamResources`), the cluster
  uuid is the cluster id; policies written for a real cluster match with wildcards.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from msklite.authz import AclOperation, Action, ResourceType, Session
from msklite.msk import ACCOUNT, CLUSTER_NAME, REGION

_O, _R = AclOperation, ResourceType
ACTIONS: dict[tuple[ResourceType, AclOperation], str] = {
    (_R.CLUSTER, _O.DESCRIBE): "DescribeCluster",
    (_R.CLUSTER, _O.ALTER): "AlterCluster",
    (_R.CLUSTER, _O.DESCRIBE_CONFIGS): "DescribeClusterDynamicConfiguration",
    (_R.CLUSTER, _O.ALTER_CONFIGS): "AlterClusterDynamicConfiguration",
    (_R.CLUSTER, _O.IDEMPOTENT_WRITE): "WriteDataIdempotently",
    (_R.CLUSTER, _O.CREATE): "CreateTopic",
    (_R.TOPIC, _O.CREATE): "CreateTopic",
    (_R.TOPIC, _O.DESCRIBE): "DescribeTopic",
    (_R.TOPIC, _O.ALTER): "AlterTopic",
    (_R.TOPIC, _O.DELETE): "DeleteTopic",
    (_R.TOPIC, _O.READ): "ReadData",
    (_R.TOPIC, _O.WRITE): "WriteData",
    (_R.TOPIC, _O.DESCRIBE_CONFIGS): "DescribeTopicDynamicConfiguration",
    (_R.TOPIC, _O.ALTER_CONFIGS): "AlterTopicDynamicConfiguration",
    (_R.GROUP, _O.DESCRIBE): "DescribeGroup",
    (_R.GROUP, _O.READ): "AlterGroup",
    (_R.GROUP, _O.DELETE): "DeleteGroup",
    (_R.GROUP, _O.DESCRIBE_CONFIGS): "DescribeGroup",
    (_R.GROUP, _O.ALTER_CONFIGS): "AlterGroup",
    (_R.TRANSACTIONAL_ID, _O.DESCRIBE): "DescribeTransactionalId",
    (_R.TRANSACTIONAL_ID, _O.WRITE): "AlterTransactionalId",
}
CONNECT = "kafka-cluster:Connect"
KNOWN_ACTIONS = frozenset({"Connect", *ACTIONS.values()})
_RESOURCE_KIND = {
    ResourceType.TOPIC: "topic",
    ResourceType.GROUP: "group",
    ResourceType.TRANSACTIONAL_ID: "transactional-id",
}
_REFUSED_KEYS = ("Condition", "Principal", "NotPrincipal")
_STATEMENT_KEYS = frozenset({"Sid", "Effect", "Action", "NotAction", "Resource", "NotResource"})


@dataclass(frozen=True, slots=True)
class IamResources:
    """How msklite's cluster is named in resource ARNs."""

    cluster_uuid: str
    region: str = REGION
    account: str = ACCOUNT
    cluster_name: str = CLUSTER_NAME

    def arn(self, resource_type: ResourceType, name: str) -> str:
        base = f"arn:aws:kafka:{self.region}:{self.account}"
        cluster = f"{self.cluster_name}/{self.cluster_uuid}"
        if resource_type == ResourceType.CLUSTER:
            return f"{base}:cluster/{cluster}"
        return f"{base}:{_RESOURCE_KIND[resource_type]}/{cluster}/{name}"


def _pattern(text: str, ignore_case: bool) -> re.Pattern[str]:
    body = "".join(".*" if c == "*" else "." if c == "?" else re.escape(c) for c in text)
    return re.compile(body, re.IGNORECASE | re.DOTALL if ignore_case else re.DOTALL)


@dataclass(frozen=True, slots=True)
class Statement:
    allow: bool
    actions: tuple[re.Pattern[str], ...]
    not_action: bool  # `NotAction`: the statement applies to every other action
    resources: tuple[ArnPattern, ...]
    not_resource: bool

    def acts_on(self, action: str) -> bool:
        return any(p.fullmatch(action) for p in self.actions) != self.not_action

    def applies(self, action: str, resource: str) -> bool:
        return self.acts_on(action) and self.names(resource)

    def names(self, resource: str) -> bool:
        return any(p.matches(resource) for p in self.resources) != self.not_resource

    def could_name(self, prefix: str) -> bool:
        """Whether some ARN starting with `prefix` is among the statement's resources: a
        pattern's text before its first wildcard and the prefix agree where both go."""
        if self.not_resource:
            return True
        return any(p.extends(prefix) for p in self.resources)


class ArnPattern:
    """A Resource: `*`, or an ARN pattern matched as IAM does, segment by segment
    (partition, service, region, account), then the resource part (where `*` spans `/`)."""

    def __init__(self, text: str) -> None:
        self.text = text
        self._segments = [_pattern(p, ignore_case=False) for p in text.split(":", 5)]
        self._globs = text.split(":", 5)

    def matches(self, arn: str) -> bool:
        if self.text == "*":
            return True
        parts = arn.split(":", len(self._segments) - 1)
        return len(parts) == len(self._segments) and all(
            p.fullmatch(v) for p, v in zip(self._segments, parts, strict=True)
        )

    def extends(self, prefix: str) -> bool:
        """Whether the pattern matches some ARN starting with `prefix` (whose last segment,
        the resource part, is the one left open)."""
        if self.text == "*":
            return True
        parts = prefix.split(":", 5)
        if len(self._globs) != len(parts):
            return _glob_extends(self.text, prefix)
        fixed = zip(self._segments[:-1], parts[:-1], strict=True)
        return all(p.fullmatch(v) for p, v in fixed) and _glob_extends(self._globs[-1], parts[-1])


def _glob_extends(glob: str, text: str) -> bool:
    """Whether `glob` (with * and ?) matches some string that starts with `text`: walk the
    text through the glob's positions; whatever glob is left can match something."""
    states = _closure(glob, {0})
    for c in text:
        states = _closure(
            glob,
            {
                i + (glob[i] != "*")
                for i in states
                if i < len(glob) and (glob[i] in "*?" or glob[i] == c)
            },
        )
        if not states:
            return False
    return True


def _closure(glob: str, states: set[int]) -> set[int]:
    """The positions reachable by letting each * match nothing."""
    out = set(states)
    todo = list(states)
    while todo:
        i = todo.pop()
        if i < len(glob) and glob[i] == "*" and i + 1 not in out:
            out.add(i + 1)
            todo.append(i + 1)
    return out


@dataclass(frozen=True, slots=True)
class Policy:
    statements: tuple[Statement, ...]


def parse_policy(document: str | Mapping[str, Any], where: str = "policy") -> Policy:
    """An identity policy document (JSON text or its dict); ValueError says what is refused."""
    if isinstance(document, str):
        try:
            document = json.loads(document)
        except json.JSONDecodeError as e:
            raise ValueError(f"{where}: not JSON ({e})") from None
    if not isinstance(document, Mapping):
        raise ValueError(f"{where}: a policy is a JSON object")
    version = document.get("Version", "2012-10-17")
    if version not in ("2012-10-17", "2008-10-17"):
        raise ValueError(f"{where}: unknown policy Version {version!r}")
    raw = document.get("Statement")
    statements = [raw] if isinstance(raw, Mapping) else raw
    if not isinstance(statements, list) or not statements:
        raise ValueError(f"{where}: Statement is a statement or a non-empty list of them")
    return Policy(tuple(_statement(s, f"{where}, statement {i}") for i, s in enumerate(statements)))


def _statement(s: object, where: str) -> Statement:
    if not isinstance(s, Mapping):
        raise ValueError(f"{where}: a statement is a JSON object")
    for key in _REFUSED_KEYS:
        if key in s:
            raise ValueError(
                f"{where}: {key} is not supported by msklite's IAM policies (an identity "
                "policy's statements apply to the principal it is attached to, unconditionally)"
            )
    unknown = set(s) - _STATEMENT_KEYS
    if unknown:
        raise ValueError(f"{where}: unknown statement fields {sorted(unknown)}")
    effect = s.get("Effect")
    if effect not in ("Allow", "Deny"):
        raise ValueError(f"{where}: Effect is Allow or Deny, got {effect!r}")
    actions, not_action = _one_of(s, "Action", "NotAction", where)
    for action in actions:
        if action == "*":
            continue
        service, _, name = action.partition(":")
        if service.lower() != "kafka-cluster" or not name:
            raise ValueError(f"{where}: {action!r} is not a kafka-cluster: action")
        if "*" not in name and "?" not in name and name.lower() not in _KNOWN_LOWER:
            raise ValueError(f"{where}: unknown action {action!r}")
    resources, not_resource = _one_of(s, "Resource", "NotResource", where)
    return Statement(
        effect == "Allow",
        tuple(_pattern(a, ignore_case=True) for a in actions),
        not_action,
        tuple(ArnPattern(r) for r in resources),
        not_resource,
    )


_KNOWN_LOWER = frozenset(a.lower() for a in KNOWN_ACTIONS) | {
    # MSK's actions that no Kafka API msklite serves asks for
    "describeclusterdynamicconfiguration",
    "alterclusterdynamicconfiguration",
}


def _one_of(s: Mapping[str, Any], key: str, not_key: str, where: str) -> tuple[list[str], bool]:
    if (key in s) == (not_key in s):
        raise ValueError(f"{where}: exactly one of {key} and {not_key}")
    value = s[key] if key in s else s[not_key]
    values = [value] if isinstance(value, str) else value
    if not isinstance(values, list) or not values or not all(isinstance(v, str) for v in values):
        raise ValueError(f"{where}: {key if key in s else not_key} is a string or a list of them")
    return values, not_key in s


def load_policy(path: str) -> Policy:
    with open(path, encoding="utf-8") as f:
        return parse_policy(f.read(), path)


class IamPolicies:
    """The policies attached to each principal ARN."""

    def __init__(self) -> None:
        self._attached: dict[str, list[Policy]] = {}

    def attach(self, principal_arn: str, policy: Policy | str | Mapping[str, Any]) -> None:
        if not principal_arn.startswith("arn:"):
            raise ValueError(f"a policy attaches to a principal ARN, got {principal_arn!r}")
        if not isinstance(policy, Policy):
            policy = parse_policy(policy, f"the policy of {principal_arn}")
        self._attached.setdefault(principal_arn, []).append(policy)

    @property
    def enforced(self) -> bool:
        return bool(self._attached)

    def statements(self, principal_arn: str) -> list[Statement]:
        return [s for policy in self._attached.get(principal_arn, ()) for s in policy.statements]

    def allowed(self, principal_arn: str, action: str, resource: str) -> bool:
        """IAM's evaluation: an applying Deny denies, else an applying Allow allows."""
        allowed = False
        for s in self.statements(principal_arn):
            if s.applies(action, resource):
                if not s.allow:
                    return False
                allowed = True
        return allowed

    def may_connect(self, principal_arn: str, cluster_arn: str) -> bool:
        return not self.enforced or self.allowed(principal_arn, CONNECT, cluster_arn)


class IamPolicyAuthorizer:
    """The `Authorizer` of the IAM listener's sessions (principal `User:<ARN>`)."""

    def __init__(self, policies: IamPolicies, resources: IamResources) -> None:
        self.policies = policies
        self.resources = resources

    def allows_everything(self, session: Session) -> bool:
        return not self.policies.enforced

    def authorize(self, session: Session, actions: Sequence[Action]) -> list[bool]:
        if not self.policies.enforced:
            return [True] * len(actions)
        arn = session.principal.removeprefix("User:")
        return [self._decide(arn, a.operation, a.resource_type, a.name) for a in actions]

    def _decide(
        self, arn: str, operation: AclOperation, resource_type: ResourceType, name: str
    ) -> bool:
        action = ACTIONS.get((resource_type, operation))
        if action is None:  # CLUSTER_ACTION and the like: not for clients on MSK
            return False
        resource = self.resources.arn(resource_type, name)
        return self.policies.allowed(arn, f"kafka-cluster:{action}", resource)

    def authorize_by_resource_type(
        self, session: Session, operation: AclOperation, resource_type: ResourceType
    ) -> bool:
        """Whether the operation is allowed on some resource of the type: an applying Allow
        whose resources can name one, unless a Deny applies to the type's every resource (it
        matches a name no resource has, which only a wildcard does)."""
        if not self.policies.enforced:
            return True
        action = ACTIONS.get((resource_type, operation))
        if action is None:
            return False
        name = f"kafka-cluster:{action}"
        prefix = self.resources.arn(resource_type, "")
        probe = prefix + "\x00"
        statements = [
            s
            for s in self.policies.statements(session.principal.removeprefix("User:"))
            if s.acts_on(name)
        ]
        if any(not s.allow and s.applies(name, probe) for s in statements):
            return False
        return any(s.allow and s.could_name(prefix) for s in statements)


def iam_policies_from(
    mapping: Mapping[str, Iterable[str | Mapping[str, Any] | Policy] | str | Mapping[str, Any]],
) -> IamPolicies:
    """`{principal ARN: policy or [policies]}`, each a Policy, its JSON text or dict."""
    policies = IamPolicies()
    for arn, value in mapping.items():
        items = [value] if isinstance(value, str | Mapping | Policy) else list(value)
        for item in items:
            policies.attach(arn, item)
    return policies
