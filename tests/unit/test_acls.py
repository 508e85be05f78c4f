"""The ACL authorizer (msklite.authz.acls) against Kafka's StandardAuthorizer rules, and a
hypothesis property against a plain model of them; the controller's ACL store."""

from __future__ import annotations

from dataclasses import dataclass

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from msklite.authz import (
    AclOperation,
    AclPermissionType,
    Action,
    PatternType,
    ResourceType,
)
from msklite.authz.acls import AclAuthorizer, AclBinding, AclFilter, StaticAcls, validate_new
from msklite.errors import ErrorCode, KafkaError

ALLOW, DENY = AclPermissionType.ALLOW, AclPermissionType.DENY
LIT, PRE = PatternType.LITERAL, PatternType.PREFIXED
Op = AclOperation
TOPIC = ResourceType.TOPIC


@dataclass
class S:
    principal: str = "User:alice"
    client_host: str = "127.0.0.1"
    listener: str = "CLIENT"


def acl(
    name: str,
    op: AclOperation,
    perm: AclPermissionType = ALLOW,
    principal: str = "User:alice",
    pattern: PatternType = LIT,
    host: str = "*",
    rtype: ResourceType = TOPIC,
) -> AclBinding:
    return AclBinding(rtype, name, pattern, principal, host, op, perm)


def check(
    acls: list[AclBinding],
    op: AclOperation,
    name: str,
    session: S | None = None,
    **kw: object,
) -> bool:
    az = AclAuthorizer(StaticAcls(tuple(acls)), **kw)  # type: ignore[arg-type]
    return az.authorize(session or S(), [Action(op, TOPIC, name)])[0]


def test_no_acls_allows_everyone_as_msk_sets_it_and_denies_as_kafka_defaults() -> None:
    assert check([], Op.WRITE, "t")
    assert not check([], Op.WRITE, "t", allow_everyone_if_no_acl_found=False)


def test_acls_on_the_resource_for_someone_else_deny() -> None:
    acls = [acl("t", Op.READ, principal="User:bob")]
    assert not check(acls, Op.READ, "t")
    assert check(acls, Op.READ, "other")  # no ACL there: allow.everyone applies


def test_deny_beats_allow_and_wildcards() -> None:
    acls = [acl("t", Op.ALL), acl("*", Op.WRITE, DENY, principal="User:*")]
    assert not check(acls, Op.WRITE, "t")
    assert check(acls, Op.READ, "t")


def test_prefixed_patterns_and_literal_prefixes() -> None:
    acls = [acl("pay", Op.READ, pattern=PRE), acl("or", Op.READ)]
    assert check(acls, Op.READ, "payments")
    # a literal "or" is no ACL on "orders": no ACL applies there
    assert check(acls, Op.READ, "orders")
    assert not check(acls, Op.READ, "orders", allow_everyone_if_no_acl_found=False)
    assert not check(acls, Op.READ, "pa", allow_everyone_if_no_acl_found=False)


def test_implied_operations_only_for_allow() -> None:
    for op in (Op.READ, Op.WRITE, Op.DELETE, Op.ALTER):
        assert check([acl("t", op)], Op.DESCRIBE, "t")
    assert not check([acl("t", Op.CREATE)], Op.DESCRIBE, "t")
    assert check([acl("t", Op.ALTER_CONFIGS)], Op.DESCRIBE_CONFIGS, "t")
    # DENY READ does not deny DESCRIBE
    assert check([acl("t", Op.READ, DENY), acl("t", Op.DESCRIBE)], Op.DESCRIBE, "t")


def test_hosts_super_users_and_principal_wildcard() -> None:
    acls = [acl("t", Op.READ, host="10.0.0.1")]
    assert not check(acls, Op.READ, "t")
    assert check(acls, Op.READ, "t", S(client_host="10.0.0.1"))
    assert check([acl("t", Op.READ, DENY)], Op.READ, "t", super_users=["User:alice"])
    assert check([acl("t", Op.READ, principal="User:*")], Op.READ, "t", S("User:zed"))


def test_authorize_by_resource_type() -> None:
    def any_write(acls: list[AclBinding]) -> bool:
        az = AclAuthorizer(StaticAcls(tuple(acls)), allow_everyone_if_no_acl_found=False)
        return az.authorize_by_resource_type(S(), Op.WRITE, TOPIC)

    assert not any_write([])
    assert any_write([acl("t", Op.WRITE)])
    assert not any_write([acl("t", Op.WRITE), acl("t", Op.WRITE, DENY)])
    assert not any_write([acl("tx", Op.WRITE), acl("t", Op.WRITE, DENY, pattern=PRE)])
    assert any_write([acl("*", Op.WRITE), acl("x", Op.WRITE, DENY)])
    assert not any_write([acl("*", Op.WRITE), acl("*", Op.WRITE, DENY)])


def test_validation_refuses_what_kafka_refuses() -> None:
    bad = [
        acl("t", Op.ANY),
        acl("t", Op.READ, pattern=PatternType.MATCH),
        acl("t", Op.READ, perm=AclPermissionType.ANY),
        acl("", Op.READ),
        acl("c", Op.ALTER, rtype=ResourceType.CLUSTER),
        acl("t", Op.READ, principal="alice"),
        acl("t", Op.READ, rtype=ResourceType.ANY),
    ]
    for b in bad:
        with pytest.raises(KafkaError) as e:
            validate_new(b)
        assert e.value.code == ErrorCode.INVALID_REQUEST
    validate_new(acl("kafka-cluster", Op.ALTER, rtype=ResourceType.CLUSTER))


def test_filters_match_as_kafka_does() -> None:
    lit, pre, star = acl("foo", Op.READ), acl("fo", Op.READ, pattern=PRE), acl("*", Op.READ)

    def f(name: str | None, pattern: PatternType) -> AclFilter:
        return AclFilter(ResourceType.ANY, name, pattern, None, None, Op.ANY, AclPermissionType.ANY)

    everything = [lit, pre, star]
    assert [b for b in everything if f("foo", PatternType.MATCH).matches(b)] == everything
    assert [b for b in everything if f("foo", PatternType.ANY).matches(b)] == [lit]
    assert [b for b in everything if f("fo", PatternType.PREFIXED).matches(b)] == [pre]
    assert [b for b in everything if f(None, LIT).matches(b)] == [lit, star]


# ---- the property: the indexed authorizer agrees with a plain reading of the rules ----

NAMES = st.sampled_from(["a", "ab", "abc", "b", "*"])
PRINCIPALS = st.sampled_from(["User:alice", "User:bob", "User:*"])
OPS = st.sampled_from([o for o in Op if o not in (Op.UNKNOWN, Op.ANY)])
BINDINGS = st.builds(
    AclBinding,
    st.sampled_from([TOPIC, ResourceType.GROUP]),
    NAMES,
    st.sampled_from([LIT, PRE]),
    PRINCIPALS,
    st.sampled_from(["*", "127.0.0.1", "10.0.0.1"]),
    OPS,
    st.sampled_from([ALLOW, DENY]),
)


def model(acls: list[AclBinding], s: S, a: Action, everyone: bool) -> bool:
    def on_resource(b: AclBinding) -> bool:
        if b.resource_type != a.resource_type:
            return False
        if b.pattern_type == LIT:
            return b.name in (a.name, "*")
        return a.name.startswith(b.name)

    def speaks_of(b: AclBinding) -> bool:
        if b.operation in (Op.ALL, a.operation):
            return True
        implied = {
            Op.DESCRIBE: {Op.READ, Op.WRITE, Op.DELETE, Op.ALTER},
            Op.DESCRIBE_CONFIGS: {Op.ALTER_CONFIGS},
        }
        return b.permission == ALLOW and b.operation in implied.get(a.operation, set())

    relevant = [b for b in acls if on_resource(b)]
    mine = [
        b
        for b in relevant
        if b.principal in (s.principal, "User:*") and b.host in ("*", s.client_host)
        if speaks_of(b)
    ]
    if any(b.permission == DENY for b in mine):
        return False
    if mine:
        return True
    return everyone and not relevant


@settings(max_examples=300, deadline=None)
@given(
    st.lists(BINDINGS, max_size=8),
    PRINCIPALS.filter(lambda p: p != "User:*"),
    st.sampled_from(["127.0.0.1", "10.0.0.1"]),
    st.lists(st.tuples(OPS, st.sampled_from([TOPIC, ResourceType.GROUP]), NAMES), min_size=1),
    st.booleans(),
)
def test_authorizer_agrees_with_the_model(
    acls: list[AclBinding],
    principal: str,
    host: str,
    actions: list[tuple[AclOperation, ResourceType, str]],
    everyone: bool,
) -> None:
    s = S(principal, host)
    az = AclAuthorizer(StaticAcls(tuple(acls)), allow_everyone_if_no_acl_found=everyone)
    todo = [Action(*a) for a in actions]
    assert az.authorize(s, todo) == [model(acls, s, a, everyone) for a in todo]


def test_remembered_decisions_are_forgotten_when_the_acls_change() -> None:
    @dataclass
    class Source:
        acls: tuple[AclBinding, ...]

    source = Source((acl("t", Op.WRITE),))
    az = AclAuthorizer(source)
    assert az.authorize(S(), [Action(Op.WRITE, TOPIC, "t")]) == [True]
    source.acls = (acl("t", Op.WRITE, DENY),)
    assert az.authorize(S(), [Action(Op.WRITE, TOPIC, "t")]) == [False]
    source.acls = ()
    assert az.authorize(S(), [Action(Op.WRITE, TOPIC, "t")]) == [True]


def test_allows_everything_only_while_no_acl_can_deny() -> None:
    """The handlers' fast path (no per-resource question) ends with the first ACL, for
    whoever is not a super user, and comes back when the last one goes."""

    @dataclass
    class Source:
        acls: tuple[AclBinding, ...]

    source = Source(())
    az = AclAuthorizer(source, super_users=["User:admin"])
    assert az.allows_everything(S())
    source.acls = (acl("t", Op.WRITE, DENY, principal="User:*"),)
    assert not az.allows_everything(S())
    assert az.authorize(S(), [Action(Op.WRITE, TOPIC, "t")]) == [False]
    assert az.allows_everything(S(principal="User:admin"))
    source.acls = ()
    assert az.allows_everything(S())
    closed = AclAuthorizer(Source(()), allow_everyone_if_no_acl_found=False)
    assert not closed.allows_everything(S())
