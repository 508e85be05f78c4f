"""msklite: Amazon MSK in a box — a pure-Python broker speaking the Apache Kafka wire protocol."""

from __future__ import annotations

from typing import TYPE_CHECKING

from msklite.errors import ErrorCode, KafkaError

if TYPE_CHECKING:
    from msklite.cluster import Cluster

__version__ = "0.1.0"
__all__ = ["Cluster", "ErrorCode", "KafkaError", "__version__"]


def __getattr__(name: str) -> object:
    # The cluster (≈100 ms of imports) loads on first use: the pytest plugin, loaded into
    # every pytest run where msklite is installed, and its out-of-process modes need none of it.
    if name == "Cluster":
        from msklite.cluster import Cluster

        return Cluster
    raise AttributeError(f"module 'msklite' has no attribute {name!r}")
