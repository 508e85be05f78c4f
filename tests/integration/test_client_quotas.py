"""DescribeClientQuotas and AlterClientQuotas over raw sockets (no Python client has a quota
admin API): entities and their defaults, Kafka's validation messages, the filters, and
persistence across a restart."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest
from kafka.protocol.admin.client_quotas import (
    AlterClientQuotasRequest,
    DescribeClientQuotasRequest,
)

from msklite import Cluster
from tests.integration.rawclient import RawClient

A = AlterClientQuotasRequest
Pairs = Sequence[tuple[str, str | None]]
Ops = list[tuple[str, float, bool]]
USER_CLIENT = [("user", "alice"), ("client-id", "app")]


def _alter(
    cluster: Cluster,
    entries: list[tuple[Pairs, Ops]],
    validate_only: bool = False,
    version: int = 1,
) -> list[tuple[Pairs, int, str | None]]:
    req = A(
        version=version,
        entries=[
            A.EntryData(
                entity=[A.EntryData.EntityData(entity_type=t, entity_name=n) for t, n in pairs],
                ops=[A.EntryData.OpData(key=k, value=v, remove=r) for k, v, r in ops],
            )
            for pairs, ops in entries
        ],
        validate_only=validate_only,
    )
    with RawClient(cluster.bootstrap_servers) as c:
        resp = c.request(req, version)
    assert resp.throttle_time_ms == 0
    return [
        ([(e.entity_type, e.entity_name) for e in r.entity], r.error_code, r.error_message)
        for r in resp.entries
    ]


def _describe(
    cluster: Cluster,
    components: list[tuple[str, int, str | None]],
    strict: bool = False,
    version: int = 1,
) -> Any:
    d = DescribeClientQuotasRequest
    req = d(
        version=version,
        components=[
            d.ComponentData(entity_type=t, match_type=m, match=s) for t, m, s in components
        ],
        strict=strict,
    )
    with RawClient(cluster.bootstrap_servers) as c:
        return c.request(req, version)


def _found(
    cluster: Cluster, components: list[tuple[str, int, str | None]], strict: bool = False
) -> dict[tuple[tuple[str, str | None], ...], dict[str, float]]:
    resp = _describe(cluster, components, strict)
    assert (resp.error_code, resp.error_message) == (0, None)
    return {
        tuple((e.entity_type, e.entity_name) for e in entry.entity): {
            v.key: v.value for v in entry.values
        }
        for entry in resp.entries
    }


def _set(key: str, value: float) -> tuple[str, float, bool]:
    return (key, value, False)


@pytest.mark.msk(brokers=1)
@pytest.mark.parametrize("version", [0, 1])
def test_alter_and_describe_every_entity_shape(msk_cluster: Cluster, version: int) -> None:
    entries: list[tuple[Pairs, Ops]] = [
        (USER_CLIENT, [_set("producer_byte_rate", 1024), _set("consumer_byte_rate", 2048)]),
        ([("user", "alice")], [_set("request_percentage", 12.5)]),
        ([("user", None)], [_set("producer_byte_rate", 4096)]),
        ([("client-id", None)], [_set("controller_mutation_rate", 0.5)]),
        ([("user", None), ("client-id", "app")], [_set("consumer_byte_rate", 10)]),
        ([("ip", "127.0.0.1")], [_set("connection_creation_rate", 5)]),
    ]
    out = _alter(msk_cluster, entries, version=version)
    # client-id before user, as Kafka's HashMap lists them
    assert out == [
        ([("client-id", "app"), ("user", "alice")], 0, None),
        ([("user", "alice")], 0, None),
        ([("user", None)], 0, None),
        ([("client-id", None)], 0, None),
        ([("client-id", "app"), ("user", None)], 0, None),
        ([("ip", "127.0.0.1")], 0, None),
    ]
    everything = _found(msk_cluster, [])
    assert everything[("client-id", "app"), ("user", "alice")] == {
        "producer_byte_rate": 1024.0,
        "consumer_byte_rate": 2048.0,
    }
    assert len(everything) == 6
    resp = _describe(msk_cluster, [("user", 0, "alice")], version=version)
    assert [[(e.entity_type, e.entity_name) for e in x.entity] for x in resp.entries] == [
        [("client-id", "app"), ("user", "alice")],
        [("user", "alice")],
    ]
    # strict: only entities with exactly the filtered types
    assert list(_found(msk_cluster, [("user", 0, "alice")], strict=True)) == [(("user", "alice"),)]
    assert set(_found(msk_cluster, [("user", 1, None)])) == {
        (("user", None),),
        (("client-id", "app"), ("user", None)),
    }
    assert set(_found(msk_cluster, [("client-id", 2, None)], strict=True)) == {
        (("client-id", None),)
    }
    assert set(_found(msk_cluster, [("client-id", 2, None), ("user", 2, None)])) == {
        (("client-id", "app"), ("user", "alice")),
        (("client-id", "app"), ("user", None)),
    }
    assert set(_found(msk_cluster, [("ip", 2, None)])) == {(("ip", "127.0.0.1"),)}

    # removing a key, then the last key, removes the entity
    rm = [("producer_byte_rate", 0.0, True)]
    assert _alter(msk_cluster, [(USER_CLIENT, rm)])[0][1:] == (0, None)
    assert _found(msk_cluster, [("user", 0, "alice"), ("client-id", 0, "app")]) == {
        (("client-id", "app"), ("user", "alice")): {"consumer_byte_rate": 2048.0}
    }
    rm = [("consumer_byte_rate", 0.0, True), ("producer_byte_rate", 0.0, True)]
    assert _alter(msk_cluster, [(USER_CLIENT, rm)])[0][1:] == (0, None)
    assert _found(msk_cluster, [("user", 0, "alice"), ("client-id", 0, "app")]) == {}


def _entity(pairs: Pairs) -> str:
    inner = ", ".join(f"{t}={'null' if n is None else n}" for t, n in sorted(pairs))
    return f"ClientQuotaEntity(entries={{{inner}}})"


@pytest.mark.msk(brokers=1)
def test_kafkas_refusals(msk_cluster: Cluster) -> None:
    cases: list[tuple[Pairs, Ops, str]] = [
        ([], [_set("producer_byte_rate", 1)], "Invalid empty client quota entity"),
        (
            [("group", "g")],
            [_set("producer_byte_rate", 1)],
            "Unhandled client quota entity type: group",
        ),
        ([("user", "")], [_set("producer_byte_rate", 1)], "Empty user not supported"),
        (
            [("ip", "127.0.0.1"), ("user", "u")],
            [_set("connection_creation_rate", 1)],
            "Invalid quota entity combination, IP entity shouldnot be combined with User or "
            "ClientId",
        ),
        (
            [("ip", "no-such-host.invalid")],
            [_set("connection_creation_rate", 1)],
            "no-such-host.invalid is not a valid IP or resolvable host.",
        ),
        (
            [("user", "u1")],
            [_set("connection_creation_rate", 1)],
            "Invalid configuration key connection_creation_rate",
        ),
        (
            [("ip", None)],
            [_set("producer_byte_rate", 1)],
            "Invalid configuration key producer_byte_rate",
        ),
        ([("user", "u2")], [_set("nope", 1)], "Invalid configuration key nope"),
        (
            [("user", "u3")],
            [_set("producer_byte_rate", 0)],
            "Quota producer_byte_rate must be greater than 0",
        ),
        (
            [("user", "u4")],
            [_set("request_percentage", -1)],
            "Quota request_percentage must be greater than 0",
        ),
        (
            [("user", "u5")],
            [_set("producer_byte_rate", 1.5)],
            "producer_byte_rate cannot be a fractional value.",
        ),
        (
            [("user", "u6")],
            [_set("producer_byte_rate", 1e19)],
            "Proposed value for producer_byte_rate is too large for a LONG.",
        ),
        (
            [("ip", "::1")],
            [_set("connection_creation_rate", 3e9)],
            "Proposed value for connection_creation_rate is too large for an INT.",
        ),
    ]
    # each entity on its own: one request holds them all
    out = _alter(msk_cluster, [(pairs, ops) for pairs, ops, _ in cases])
    assert [(code, message) for _, code, message in out] == [(42, m) for _, _, m in cases]
    assert _found(msk_cluster, []) == {}

    # one entity named twice: answered once, its first changes kept (as Kafka does)
    twice = [("user", "dup")]
    out = _alter(
        msk_cluster,
        [(twice, [_set("producer_byte_rate", 5)]), (twice, [_set("producer_byte_rate", 7)])],
    )
    assert out == [(twice, 42, f"Ignoring duplicate entity {_entity(twice)}")]
    assert _found(msk_cluster, [("user", 0, "dup")]) == {
        (("user", "dup"),): {"producer_byte_rate": 5.0}
    }
    # a key twice in one entity: the same answer, nothing changed
    again = [("user", "again")]
    out = _alter(
        msk_cluster, [(again, [_set("producer_byte_rate", 5), _set("producer_byte_rate", 6)])]
    )
    assert out == [(again, 42, f"Ignoring duplicate entity {_entity(again)}")]
    # a type named twice keeps its last name
    out = _alter(
        msk_cluster, [([("user", "first"), ("user", "last")], [_set("producer_byte_rate", 9)])]
    )
    assert out == [([("user", "last")], 0, None)]
    # validate_only checks without changing
    out = _alter(
        msk_cluster, [([("user", "v")], [_set("producer_byte_rate", 9)])], validate_only=True
    )
    assert out == [([("user", "v")], 0, None)]
    assert _found(msk_cluster, [("user", 0, "v")]) == {}


@pytest.mark.msk(brokers=1)
@pytest.mark.parametrize(
    ("components", "code", "message"),
    [
        ([("", 0, "x")], 42, "Invalid empty entity type."),
        (
            [("user", 0, "a"), ("user", 2, None)],
            42,
            "Entity type user cannot appear more than once in the filter.",
        ),
        ([("group", 0, "g")], 35, "Unsupported entity type group"),
        (
            [("user", 0, None)],
            42,
            "Request specified MATCH_TYPE_EXACT, but set match string to null.",
        ),
        (
            [("user", 1, "a")],
            42,
            "Request specified MATCH_TYPE_DEFAULT, but also specified a match string.",
        ),
        (
            [("user", 2, "a")],
            42,
            "Request specified MATCH_TYPE_SPECIFIED, but also specified a match string.",
        ),
        ([("user", 7, None)], 42, "Unknown match type 7"),
        (
            [("ip", 2, None), ("client-id", 2, None)],
            42,
            "Invalid entity filter component combination. IP filter component should not be "
            "used with user or clientId filter component.",
        ),
    ],
)
def test_describe_refusals(
    msk_cluster: Cluster, components: list[tuple[str, int, str | None]], code: int, message: str
) -> None:
    resp = _describe(msk_cluster, components)
    assert (resp.error_code, resp.error_message, resp.entries) == (code, message, None)


def test_quotas_survive_a_restart_and_reach_every_broker(tmp_path: Path) -> None:
    data = str(tmp_path / "data")
    with Cluster(brokers=3, data_dir=data) as cluster:
        assert _alter(cluster, [([("user", None)], [_set("consumer_byte_rate", 1e6)])])[0][1] == 0
        assert _alter(cluster, [(USER_CLIENT, [_set("producer_byte_rate", 2048)])])[0][1] == 0
        for broker in cluster.brokers.values():
            assert broker.ctx.quotas.produce.enabled and broker.ctx.quotas.active
    with Cluster(brokers=3, data_dir=data) as cluster:
        assert _found(cluster, []) == {
            (("user", None),): {"consumer_byte_rate": 1e6},
            (("client-id", "app"), ("user", "alice")): {"producer_byte_rate": 2048.0},
        }
        for broker in cluster.brokers.values():
            assert broker.ctx.quotas.fetch.overrides == {(("user", None),): 1e6}


@pytest.mark.msk(brokers=1, config={"allow.everyone.if.no.acl.found": False})
def test_quotas_need_the_cluster_config_acls(msk_cluster: Cluster) -> None:
    """No ACLs and allow.everyone.if.no.acl.found=false: the anonymous principal may neither
    describe (DESCRIBE_CONFIGS on the cluster) nor alter (ALTER_CONFIGS) quotas."""
    resp = _describe(msk_cluster, [])
    assert (resp.error_code, resp.error_message, resp.entries) == (31, None, None)
    twice = [("user", "a")]
    out = _alter(msk_cluster, [(twice, [_set("producer_byte_rate", 1)])] * 2)
    assert out == [(twice, 31, "Cluster authorization failed.")] * 2
    assert msk_cluster._controller().client_quotas.entities == {}
