"""The clusters one `msklite serve` process serves: the one it started itself (`default`,
listed by the MSK API as `msklite`) and those the MSK API creates (msk_api.py), each a `Cluster`
with its own brokers, ports and data directory."""

from __future__ import annotations

from msklite.cluster import Cluster

DEFAULT_CLUSTER_NAME = "msklite"


class Fleet:
    def __init__(self, default: Cluster, host: str) -> None:
        self.default = default
        self.host = host  # where created clusters listen

    def running(self) -> dict[str, Cluster]:
        """The running clusters by name."""
        return {DEFAULT_CLUSTER_NAME: self.default} if self.default.started else {}
