"""The clusters one `msklite serve` process serves: the one it started itself (`default`,
listed by the MSK API as `msklite`) and those the MSK API creates (msk_api.py), each a `Cluster`
with its own brokers, ports and data directory under the default cluster's (`msk-api/`).

The MSK API's records (clusters, configurations, operations) are JSON documents keyed by the
service model's member names, saved to `msk-api/state.json` after every change and loaded at
the next start, when the clusters that were running start again on their data directories and
ports (a port another process took meanwhile is replaced by a free one, with a WARNING). A
cluster that cannot start is FAILED, as MSK reports a broken cluster, and the others serve."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import shutil
import socket
import time
import uuid
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from msklite.cluster import Cluster

logger = logging.getLogger(__name__)
DEFAULT_CLUSTER_NAME = "msklite"
ACCOUNT = "123456789012"  # the account every ARN names (credentials are not checked)
STATE_FILE = "state.json"

Record = dict[str, Any]


def now() -> float:
    return time.time()


def new_version() -> str:
    """An opaque cluster version, as MSK's `currentVersion` (`K3AEGXETSR30VB`)."""
    return uuid.uuid4().hex[:14].upper()


class Fleet:
    def __init__(
        self,
        default: Cluster,
        host: str,
        transition_delay: float = 0.0,
        secrets: Mapping[str, tuple[str, str]] | None = None,
    ) -> None:
        """`transition_delay`: seconds a cluster stays CREATING, UPDATING, REBOOTING_BROKER or
        DELETING beyond the work itself (MSK takes minutes; tests want near-instant).
        `secrets`: Secrets Manager's part, secret name -> (SCRAM user name, password)."""
        self.default = default
        self.secrets = dict(secrets or {})
        self.host = host  # where created clusters listen
        self.transition_delay = transition_delay
        self.clusters: dict[str, Record] = {}  # arn -> record
        self.configurations: dict[str, Record] = {}  # arn -> record
        self.operations: dict[str, Record] = {}  # arn -> record
        self.running_clusters: dict[str, Cluster] = {}  # arn -> running cluster
        self._tasks: set[asyncio.Task[None]] = set()
        self._dir: str | None = None

    # ---- what others read ----

    def running(self) -> dict[str, Cluster]:
        """The running clusters by name."""
        out = {DEFAULT_CLUSTER_NAME: self.default} if self.default.started else {}
        for arn, cluster in self.running_clusters.items():
            if cluster.started and arn in self.clusters:
                out[self.clusters[arn]["ClusterName"]] = cluster
        return out

    # ---- lifecycle ----

    @property
    def directory(self) -> str:
        if self._dir is None:
            raise RuntimeError("the fleet is not open")
        return self._dir

    async def open(self, region: str = "us-east-1") -> None:
        """Load the saved records and start the clusters that were running (the default one
        runs already)."""
        self._load(os.path.join(self.default.data_dir, "msk-api"))
        for arn, record in list(self.clusters.items()):
            if record.get("_default"):
                continue
            if record["State"] == "DELETING":
                self._forget_cluster(arn)
                continue
            try:
                cluster = self.build(record)
                await cluster.astart()
            except Exception as e:
                # one cluster that cannot start (its disk, its saved metadata) leaves the
                # others serving
                logger.error("MSK API cluster %s did not start: %s", record["ClusterName"], e)
                record["State"] = "FAILED"
                record["StateInfo"] = {
                    "Code": "InternalServerError",
                    "Message": f"The cluster did not start: {e}",
                }
                continue
            record.pop("StateInfo", None)
            self.running_clusters[arn] = cluster
            if record["State"] != "ACTIVE":
                record["State"] = "ACTIVE"
                self._interrupted(record.pop("ActiveOperationArn", None))
        self._ensure_default(region)
        try:
            self.save()
        except OSError as e:  # e.g. a full disk: the Kafka side keeps serving regardless
            logger.error("MSK API state not saved: %s", e)

    def _load(self, directory: str) -> None:
        self._dir = directory
        os.makedirs(os.path.join(directory, "clusters"), exist_ok=True)
        path = os.path.join(directory, STATE_FILE)
        if os.path.exists(path):
            with open(path, encoding="utf-8") as f:
                saved = json.load(f)
            self.clusters = saved.get("clusters", {})
            self.configurations = saved.get("configurations", {})
            self.operations = saved.get("operations", {})

    def _ensure_default(self, region: str) -> None:
        for record in self.clusters.values():
            if record.get("_default"):
                # `serve --brokers` may have grown it since
                record["Provisioned"]["NumberOfBrokerNodes"] = len(self.default.infos)
                # and `--kafka-version` its release (an update of the version lasts one run)
                record["Provisioned"]["CurrentBrokerSoftwareInfo"]["KafkaVersion"] = (
                    self.default.kafka_version
                )
                return
        controller = self.default.controller
        assert controller is not None
        cluster_uuid = str(uuid.uuid5(uuid.NAMESPACE_URL, controller.cluster_id))
        arn = cluster_arn(region, DEFAULT_CLUSTER_NAME, cluster_uuid)
        azs = list(self.default.azs)
        auth = [kind.auth for kind in self.default.security.kinds]
        self.clusters[arn] = {
            "_default": True,
            "_auth": auth,
            "_uuid": cluster_uuid,
            "_azs": azs,
            "_subnets": [f"subnet-{az}" for az in azs],
            "_nodes": {},
            "_scramSecrets": [],
            "ClusterArn": arn,
            "ClusterName": DEFAULT_CLUSTER_NAME,
            "ClusterType": "PROVISIONED",
            "State": "ACTIVE",
            "CurrentVersion": new_version(),
            "CreationTime": now(),
            "Tags": {},
            "Provisioned": {
                "BrokerNodeGroupInfo": {
                    "BrokerAZDistribution": "DEFAULT",
                    "ClientSubnets": [f"subnet-{az}" for az in azs],
                    "InstanceType": "kafka.m5.large",
                    "SecurityGroups": [],
                },
                "CurrentBrokerSoftwareInfo": {"KafkaVersion": self.default.kafka_version},
                **_security_info(auth, self.default.security.tls_client_auth),
                "NumberOfBrokerNodes": len(self.default.infos),
                "EnhancedMonitoring": "DEFAULT",
                "StorageMode": "LOCAL",
            },
        }

    def cluster_of(self, arn: str) -> Cluster | None:
        record = self.clusters.get(arn)
        if record is None:
            return None
        return self.default if record.get("_default") else self.running_clusters.get(arn)

    def build(self, record: Record) -> Cluster:
        """The `Cluster` of a record (not started)."""
        data_dir = os.path.join(self.directory, "clusters", record["_uuid"])
        prov = record.get("Provisioned", {})
        cluster = Cluster(
            brokers=int(prov.get("NumberOfBrokerNodes", len(record["_azs"]))),
            data_dir=data_dir,
            config=record.get("_config", {}),
            host=self.host,
            port=0,
            azs=record["_azs"],
            auth=record["_auth"],
            tls_client_auth=bool(record.get("_tlsClientAuth")),
            kafka_version=prov.get("CurrentBrokerSoftwareInfo", {}).get("KafkaVersion", "3.9.x"),
        )
        saved = record.get("_ports", {})
        for info in cluster.infos:
            ports = saved.get(str(info.node_id), {})
            info.ports = {
                listener: port
                for listener, port in ports.items()
                if self._port_free(record, info.node_id, listener, port)
            }
        return cluster

    def _port_free(self, record: Record, node_id: int, listener: str, port: int) -> bool:
        """Whether a saved port can be bound again (else a WARNING: the broker takes another)."""
        try:
            family = socket.getaddrinfo(self.host, port, type=socket.SOCK_STREAM)[0][0]
            # as the listener will bind it (asyncio sets SO_REUSEADDR): a port left in
            # TIME_WAIT by the last run is free, one another process listens on is not
            with socket.socket(family, socket.SOCK_STREAM) as probe:
                probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                probe.bind((self.host, port))
        except OSError as e:
            logger.warning(
                "MSK API cluster %s: broker %d's %s port %d is not free (%s); it listens on "
                "another port, and GetBootstrapBrokers names the new one",
                record["ClusterName"],
                node_id,
                listener,
                port,
                e.strerror or e,
            )
            return False
        return True

    async def close(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        for task in list(self._tasks):
            with contextlib.suppress(asyncio.CancelledError):
                await task
        for cluster in self.running_clusters.values():
            await cluster.astop()
        self.running_clusters.clear()

    def save(self) -> None:
        if self._dir is None:
            return
        for arn, cluster in self.running_clusters.items():
            # where its brokers listen, to listen there again after a restart
            if arn in self.clusters:
                self.clusters[arn]["_ports"] = {
                    str(info.node_id): dict(info.ports) for info in cluster.infos if info.ports
                }
        path = os.path.join(self._dir, STATE_FILE)
        tmp = path + ".tmp"
        with open(tmp, "w", encoding="utf-8") as f:
            json.dump(
                {
                    "clusters": self.clusters,
                    "configurations": self.configurations,
                    "operations": self.operations,
                },
                f,
            )
        os.replace(tmp, path)

    # ---- background work with MSK's states ----

    def run(
        self,
        record: Record,
        operation_type: str,
        state: str,
        work: Callable[[], Awaitable[None]],
        client_request_id: str,
        source: Record | None = None,
        target: Record | None = None,
    ) -> str:
        """Start `work` as a cluster operation: the cluster is `state` until it is done, then
        ACTIVE (DELETING: gone); returns the operation's ARN."""
        arn = operation_arn(record)
        self.operations[arn] = {
            "OperationArn": arn,
            "ClusterArn": record["ClusterArn"],
            "ClusterType": record["ClusterType"],
            "OperationType": operation_type,
            "OperationState": "UPDATE_IN_PROGRESS",
            "CreationTime": now(),
            "ClientRequestId": client_request_id,
            "OperationSteps": [],
            "SourceClusterInfo": source or {},
            "TargetClusterInfo": target or {},
        }
        record["State"] = state
        record["ActiveOperationArn"] = arn
        if operation_type != "CREATE":
            record["CurrentVersion"] = new_version()
        self.save()

        async def go() -> None:
            error: str | None = None
            try:
                await work()
                if self.transition_delay:
                    await asyncio.sleep(self.transition_delay)
            except asyncio.CancelledError:
                raise
            except Exception as e:
                error = str(e) or type(e).__name__
                logger.warning(
                    "%s of cluster %s failed: %s", operation_type, record["ClusterName"], error
                )
            self._settle(record, arn, operation_type, state, error)

        task = asyncio.get_running_loop().create_task(go())
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return arn

    def _settle(
        self, record: Record, arn: str, operation_type: str, state: str, error: str | None
    ) -> None:
        """The end of an operation: the cluster ACTIVE again (or gone, or FAILED)."""
        if state == "DELETING" and error is None:
            self._finish(arn, None)
            self._forget_cluster(record["ClusterArn"])
        else:
            record.pop("ActiveOperationArn", None)
            if operation_type == "CREATE" and error is not None:
                record["State"] = "FAILED"
                record["StateInfo"] = {"Code": "InternalServerError", "Message": error}
            else:
                record["State"] = "ACTIVE"
            self._finish(arn, error)
        try:
            self.save()
        except OSError as e:
            logger.error("MSK API state not saved: %s", e)

    def _interrupted(self, arn: str | None) -> None:
        """End an operation the last run of `msklite serve` stopped in the middle of. Creating
        and rebooting are done now that the cluster runs; an update is failed: what it had
        changed and not saved is gone, and the cluster runs as it was saved."""
        op = self.operations.get(arn or "")
        if op is not None:
            done = op["OperationType"] in ("CREATE", "REBOOT_NODE")
            self._finish(arn, None if done else "interrupted by a restart of msklite; retry it")

    def _finish(self, arn: str | None, error: str | None) -> None:
        op = self.operations.get(arn or "")
        if op is None:
            return
        op["EndTime"] = now()
        op["OperationState"] = "UPDATE_FAILED" if error else "UPDATE_COMPLETE"
        if error:
            op["ErrorInfo"] = {"ErrorCode": "InternalServerError", "ErrorString": error}

    def _forget_cluster(self, arn: str) -> None:
        record = self.clusters.pop(arn)
        self.running_clusters.pop(arn, None)
        shutil.rmtree(os.path.join(self.directory, "clusters", record["_uuid"]), ignore_errors=True)


def _security_info(auth: list[str], mtls: bool) -> dict[str, Any]:
    """MSK's ClientAuthentication and EncryptionInfo of a cluster's listeners."""
    plaintext, tls = "plaintext" in auth, "tls" in auth or "scram" in auth or "iam" in auth
    client_broker = "TLS_PLAINTEXT" if plaintext and tls else "PLAINTEXT" if plaintext else "TLS"
    authentication: dict[str, Any] = {
        "Sasl": {
            "Scram": {"Enabled": "scram" in auth},
            "Iam": {"Enabled": "iam" in auth},
        },
        "Tls": {"Enabled": mtls},
        "Unauthenticated": {"Enabled": plaintext or ("tls" in auth and not mtls)},
    }
    return {
        "ClientAuthentication": authentication,
        "EncryptionInfo": {
            "EncryptionInTransit": {"ClientBroker": client_broker, "InCluster": True}
        },
    }


def cluster_arn(region: str, name: str, cluster_uuid: str) -> str:
    return f"arn:aws:kafka:{region}:{ACCOUNT}:cluster/{name}/{cluster_uuid}"


def operation_arn(record: Record) -> str:
    region = record["ClusterArn"].split(":")[3]
    return (
        f"arn:aws:kafka:{region}:{ACCOUNT}:cluster-operation/{record['ClusterName']}/"
        f"{record['_uuid']}/{uuid.uuid4()}"
    )
