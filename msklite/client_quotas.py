"""Client quotas as cluster metadata: the entities, their validation, DescribeClientQuotas'
filters and the lookup of the quota that applies to a (user, client-id).

Kafka's counterparts: the controller's ClientQuotaControlManager (what AlterClientQuotas may
set, with its error messages), ClientQuotasImage.describe (the filters) and the broker's
DefaultQuotaCallback (the eight levels of precedence, and the metric tags that decide which
clients share one quota). The controller owns the table (`QuotaTable`) and saves it with the
rest of the metadata; the brokers' quota managers (msklite.throttle) read it.

An entity is a tuple of (type, name) pairs sorted by type, a None name being the type's
default (`<default>` in kafka-configs): ((client-id, "app"), (user, None)) is client "app" of
any user without a quota of its own.
"""

from __future__ import annotations

import ipaddress
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from msklite.errors import ErrorCode, KafkaError

USER, CLIENT_ID, IP = "user", "client-id", "ip"
PRODUCER_BYTE_RATE = "producer_byte_rate"
CONSUMER_BYTE_RATE = "consumer_byte_rate"
REQUEST_PERCENTAGE = "request_percentage"
CONTROLLER_MUTATION_RATE = "controller_mutation_rate"
CONNECTION_CREATION_RATE = "connection_creation_rate"

# The keys an entity may set and their ConfigDef types (QuotaConfigs), in the order Java's
# HashMap lists them (DescribeClientQuotas answers in that order).
_USER_CLIENT_KEYS = {
    REQUEST_PERCENTAGE: "DOUBLE",
    PRODUCER_BYTE_RATE: "LONG",
    CONSUMER_BYTE_RATE: "LONG",
    CONTROLLER_MUTATION_RATE: "DOUBLE",
}
_IP_KEYS = {CONNECTION_CREATION_RATE: "INT"}
_KEY_ORDER = {k: i for i, k in enumerate([*_USER_CLIENT_KEYS, *_IP_KEYS])}
_LIMITS = {"INT": 2**31 - 1, "LONG": 2**63 - 1}

Entity = tuple[tuple[str, str | None], ...]

MATCH_EXACT, MATCH_DEFAULT, MATCH_SPECIFIED = 0, 1, 2


def entity_of(pairs: Iterable[tuple[str, str | None]]) -> Entity:
    """The entity a request names: a type named twice keeps its last name, as Kafka's
    HashMap does."""
    return tuple(sorted(dict(pairs).items()))


def entity_text(entity: Entity) -> str:
    """Java's ClientQuotaEntity.toString, as Kafka's messages quote it."""
    inner = ", ".join(f"{t}={'null' if n is None else n}" for t, n in entity)
    return f"ClientQuotaEntity(entries={{{inner}}})"


def _invalid(message: str) -> KafkaError:
    return KafkaError(ErrorCode.INVALID_REQUEST, message)


def _keys_for(entity: Entity) -> Mapping[str, str]:
    """Check the entity's types, names and combination (ClientQuotaControlManager's
    validateEntity and configKeysForEntityType); its settable keys."""
    if not entity:
        raise _invalid("Invalid empty client quota entity")
    for etype, name in entity:
        if etype not in (USER, CLIENT_ID, IP):
            raise _invalid(f"Unhandled client quota entity type: {etype}")
        if name == "":
            raise _invalid(f"Empty {etype} not supported")
    types = dict(entity)
    if IP in types:
        if len(types) > 1:
            # sic: Kafka's message has no space between "should" and "not"
            raise _invalid(
                "Invalid quota entity combination, IP entity shouldnot be combined with User "
                "or ClientId"
            )
        ip = types[IP]
        if ip is not None and not _is_ip(ip):
            raise _invalid(f"{ip} is not a valid IP or resolvable host.")
        return _IP_KEYS
    return _USER_CLIENT_KEYS


def _is_ip(text: str) -> bool:
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return text == "localhost"
    return True


def _check_value(keys: Mapping[str, str], key: str, value: float) -> None:
    """ClientQuotaControlManager.validateQuotaKeyValue (NaN passes there too)."""
    kind = keys.get(key)
    if kind is None:
        raise _invalid(f"Invalid configuration key {key}")
    if value <= 0.0:
        raise _invalid(f"Quota {key} must be greater than 0")
    if kind == "DOUBLE":
        return
    if value > _LIMITS[kind]:
        article = "an" if kind == "INT" else "a"
        raise _invalid(f"Proposed value for {key} is too large for {article} {kind}.")
    if abs(math.fmod(value, 1.0)) > 1e-6:
        raise _invalid(f"{key} cannot be a fractional value.")


# An alteration: the entity and its ops, (key, value, remove) each.
Op = tuple[str, float, bool]


@dataclass(slots=True)
class Outcome:
    """One distinct entity of an AlterClientQuotas request and what became of it."""

    entity: Entity
    code: ErrorCode = ErrorCode.NONE
    message: str | None = None


class QuotaTable:
    """Every entity's quotas, as the controller holds them (ClientQuotaControlManager)."""

    def __init__(self) -> None:
        self.entities: dict[Entity, dict[str, float]] = {}

    def alter(
        self, entries: Sequence[tuple[Entity, Sequence[Op]]], validate_only: bool
    ) -> tuple[list[Outcome], dict[Entity, dict[str, float]]]:
        """Kafka's alterClientQuotas: each entity checked on its own, and the new quotas of
        those that changed (empty: removed). Nothing is changed here (`replace` does it).

        As in Kafka, an entity named twice is answered once, "Ignoring duplicate entity …",
        while the changes of its first appearance still apply; a key set twice in one entity
        gets the same answer."""
        outcomes: dict[Entity, Outcome] = {}
        changed: dict[Entity, dict[str, float]] = {}
        for entity, ops in entries:
            keys_seen: set[str] = set()
            duplicate_key = False
            for key, _, _ in ops:
                duplicate_key |= key in keys_seen
                keys_seen.add(key)
            if duplicate_key or entity in outcomes:
                outcomes[entity] = Outcome(
                    entity,
                    ErrorCode.INVALID_REQUEST,
                    f"Ignoring duplicate entity {entity_text(entity)}",
                )
                continue
            outcome = outcomes[entity] = Outcome(entity)
            try:
                keys = _keys_for(entity)
                new = dict(changed.get(entity, self.entities.get(entity, {})))
                for key, value, remove in ops:
                    if remove:
                        new.pop(key, None)
                    else:
                        _check_value(keys, key, value)
                        new[key] = value
            except KafkaError as e:
                outcome.code, outcome.message = e.code, e.message
                continue
            if new != self.entities.get(entity, {}) and not validate_only:
                changed[entity] = new
        return list(outcomes.values()), changed

    def replace(self, changed: Mapping[Entity, Mapping[str, float]]) -> None:
        for entity, quotas in changed.items():
            if quotas:
                self.entities[entity] = dict(quotas)
            else:
                self.entities.pop(entity, None)

    def describe(
        self, components: Sequence[tuple[str, int, str | None]], strict: bool
    ) -> list[tuple[Entity, list[tuple[str, float]]]]:
        """The entities a DescribeClientQuotas filter matches, with their quotas
        (ClientQuotasImage.describe): components are (entity type, match type, match)."""
        exact: dict[str, str | None] = {}
        specified: set[str] = set()
        for etype, match_type, match in components:
            if not etype:
                raise _invalid("Invalid empty entity type.")
            if etype in exact or etype in specified:
                raise _invalid(f"Entity type {etype} cannot appear more than once in the filter.")
            if etype not in (IP, USER, CLIENT_ID):
                raise KafkaError(ErrorCode.UNSUPPORTED_VERSION, f"Unsupported entity type {etype}")
            if match_type == MATCH_EXACT:
                if match is None:
                    raise _invalid(
                        "Request specified MATCH_TYPE_EXACT, but set match string to null."
                    )
                exact[etype] = match
            elif match_type == MATCH_DEFAULT:
                if match is not None:
                    raise _invalid(
                        "Request specified MATCH_TYPE_DEFAULT, but also specified a match string."
                    )
                exact[etype] = None
            elif match_type == MATCH_SPECIFIED:
                if match is not None:
                    raise _invalid(
                        "Request specified MATCH_TYPE_SPECIFIED, but also specified a match string."
                    )
                specified.add(etype)
            else:
                raise _invalid(f"Unknown match type {match_type}")
        named = exact.keys() | specified
        if IP in named and (USER in named or CLIENT_ID in named):
            raise _invalid(
                "Invalid entity filter component combination. IP filter component should not "
                "be used with user or clientId filter component."
            )
        out = []
        for entity, quotas in self.entities.items():
            types = dict(entity)
            if strict and len(types) != len(named):
                continue
            if any(t not in types or types[t] != n for t, n in exact.items()):
                continue
            if any(t not in types for t in specified):
                continue
            values = sorted(quotas.items(), key=lambda kv: _KEY_ORDER.get(kv[0], 99))
            out.append((entity, values))
        return out

    # ---- persistence (the controller's metadata) ----

    def to_json(self) -> list[dict[str, object]]:
        return [
            {"entity": [list(pair) for pair in entity], "quotas": quotas}
            for entity, quotas in self.entities.items()
        ]

    def load_json(self, saved: Iterable[Mapping[str, object]]) -> None:
        self.entities = {}
        for item in saved:
            pairs = item["entity"]
            quotas = item["quotas"]
            assert isinstance(pairs, list) and isinstance(quotas, dict)
            self.entities[entity_of((t, n) for t, n in pairs)] = {
                str(k): float(v) for k, v in quotas.items()
            }
