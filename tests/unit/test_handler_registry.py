"""The handler registry's index and its lazy loading: every handler module is reachable from
the index and agrees with it, and the cold start imports none of them but ApiVersions'."""

from __future__ import annotations

import importlib
import json
import pkgutil
import subprocess
import sys

import pytest

import msklite.handlers
from msklite.handlers import registry
from msklite.protocol.api_keys import ApiKey


def test_every_handler_module_is_indexed_and_agrees_with_the_index() -> None:
    for info in pkgutil.iter_modules(msklite.handlers.__path__):
        importlib.import_module(f"msklite.handlers.{info.name}")  # @handles checks its line
    assert set(registry._LOADED) == set(registry._INDEX)
    for key, spec in registry.load_all().items():
        module, versions, flexible_from = registry._INDEX[key]
        assert spec.handler.__module__ == f"msklite.handlers.{module}"
        assert (spec.min_version, spec.max_version, spec.flexible_from) == (
            *versions,
            flexible_from,
        )


def test_a_declaration_the_index_does_not_repeat_is_refused() -> None:
    def handler() -> None: ...

    handler.__module__ = "msklite.handlers.metadata"
    with pytest.raises(RuntimeError, match="_INDEX must say"):
        registry.handles(ApiKey.DESCRIBE_CLUSTER, versions=(0, 2), flexible_from=0)(handler)  # type: ignore[arg-type]


def test_the_first_request_puts_the_real_handler_in_place_of_the_stand_in(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    key = ApiKey.LIST_GROUPS
    monkeypatch.setitem(registry.HANDLERS, key, registry._STANDINS[key])
    spec = registry.loaded(key)
    assert registry.HANDLERS[key] is spec and spec.handler.__name__ == "list_groups"


def test_a_replaced_entry_is_left_alone(monkeypatch: pytest.MonkeyPatch) -> None:
    key = ApiKey.LIST_GROUPS
    replaced = registry._STANDINS[ApiKey.HEARTBEAT]
    monkeypatch.setitem(registry.HANDLERS, key, replaced)
    registry.loaded(key)
    assert registry.HANDLERS[key] is replaced


# What `msklite serve` may import before its first answer: the registry, ApiVersions and the
# broker's own state; no other handler module, no spec codec, no HTTP or AWS library, no IAM.
_COLD = """
import json, sys
import msklite.__main__
from msklite.cluster import Cluster
cluster = Cluster(brokers=1, port=0).start()
cluster.stop()
print(json.dumps(sorted(sys.modules)))
"""


def test_the_cold_start_imports_no_handler_module_nor_codec() -> None:
    out = subprocess.run(
        [sys.executable, "-c", _COLD], capture_output=True, text=True, check=True, timeout=60
    )
    loaded = set(json.loads(out.stdout))
    handlers = {m for m in loaded if m.startswith("msklite.handlers.")}
    assert handlers <= {
        "msklite.handlers.api_versions",
        "msklite.handlers.context",
        "msklite.handlers.fetch_sessions",
        "msklite.handlers.metadata_cache",
        "msklite.handlers.registry",
    }
    heavy = {"msklite.protocol.schemas", "msklite.protocol.messages", "kafka", "aiohttp"}
    assert not heavy & loaded
    assert not {m for m in loaded if m.startswith("botocore")}
    # IAM's verifier and policies load only when IAM is used; difflib only to suggest a name
    assert not {"msklite.security.iam", "msklite.security.iam_policy", "difflib"} & loaded
