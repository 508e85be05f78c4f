"""The MSK control plane (boto3's `kafka` client, `aws kafka`; restJson1, API 2018-11-14) over
the clusters of a `Fleet`: every operation of the service model is routed; those msklite
emulates change real clusters, the others answer BadRequestException naming themselves.

Behavior:
- CreateCluster / CreateClusterV2 start a `Cluster`: `NumberOfBrokerNodes` brokers (a multiple
  of the client subnets, as MSK requires) spread over the subnets' AZs in subnet order; a
  subnet's AZ id is derived from its id (stable, distinct within a request). Client
  authentication chooses the listeners: unauthenticated → PLAINTEXT (ClientBroker PLAINTEXT or
  TLS_PLAINTEXT) and TLS (TLS or TLS_PLAINTEXT; MSK's default is TLS), `Tls` → mTLS on the TLS
  listener, `Sasl.Scram` → SASL_SSL/SCRAM, `Sasl.Iam` → the IAM listener where msklite serves
  one. Serverless clusters are IAM-only, as on MSK: 3 brokers over the VPC's subnets.
- States CREATING → ACTIVE, UPDATING, REBOOTING_BROKER, DELETING as MSK reports them; the work
  happens in the background (plus `Fleet.transition_delay`); every update is an operation
  (UPDATE_IN_PROGRESS → UPDATE_COMPLETE / UPDATE_FAILED) and needs the cluster ACTIVE and its
  `CurrentVersion`, which each update changes.
- UpdateBrokerCount adds brokers live, in AZ order; RebootBroker stops and starts one broker
  and ends once it is back in every ISR (leadership moves away and comes back);
  UpdateClusterConfiguration applies the configuration's dynamic broker configs at once
  (cluster-wide) and keeps the rest for the next start;
  UpdateClusterKafkaVersion rolls the brokers one by one onto the target release (a later one
  only, as GetCompatibleKafkaVersions lists), each caught up before the next stops, through
  the steps INITIALIZE_UPDATE, UPDATE_APPLY, FINALIZE_UPDATE; UpdateBrokerStorage and
  UpdateBrokerType are recorded.
- Configurations: serverProperties checked by MSK's rules (msklite.msk), revisions from 1.
- SCRAM secrets: a secret's name must start with `AmazonMSK_`; its user name and password come
  from the fleet's secrets (`--scram-secrets FILE`), as Secrets Manager would hold them.
- Any request is accepted whatever its signature; the region of a SigV4 signature names the
  region of the ARNs created (default us-east-1).
"""

from __future__ import annotations

import base64
import functools
import hashlib
import json
import logging
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from aiohttp import web
from botocore.model import OperationModel, ServiceModel

from msklite.cluster import Cluster
from msklite.config import BROKER_CONFIGS, PER_BROKER
from msklite.controller import Controller
from msklite.credentials import TYPE_OF
from msklite.errors import KafkaError
from msklite.kafka_releases import RELEASES
from msklite.kafka_version import kafka_version
from msklite.msk import msk_configuration
from msklite.security.listeners import KINDS
from msklite.web import Route
from msklite.web.fleet import ACCOUNT, Fleet, Record, cluster_arn, new_version, now
from msklite.web.restjson import (
    ApiError,
    bad_request,
    error_body,
    error_status,
    iso8601,
    load_service,
    parse_request,
    path_pattern,
    to_json,
)

logger = logging.getLogger(__name__)
API_VERSION = "2018-11-14"
DEFAULT_REGION = "us-east-1"
# the bootstrap field of each listener kind (GetBootstrapBrokers)
BOOTSTRAP_FIELDS = {
    "plaintext": "BootstrapBrokerString",
    "tls": "BootstrapBrokerStringTls",
    "scram": "BootstrapBrokerStringSaslScram",
    "iam": "BootstrapBrokerStringSaslIam",
}
_DIRECTIONS = {
    "east": "e",
    "west": "w",
    "north": "n",
    "south": "s",
    "central": "c",
    "northeast": "ne",
    "northwest": "nw",
    "southeast": "se",
    "southwest": "sw",
}


@dataclass(frozen=True, slots=True)
class Call:
    region: str
    request_id: str


def routes(fleet: Fleet) -> list[Route]:
    service = load_service("kafka", API_VERSION)
    api = MskApi(fleet)
    out = []
    for name in service.operation_names:
        op = service.operation_model(name)
        handler = functools.partial(_dispatch, service, op, getattr(api, _snake(name), None))
        out.append(Route(op.http["method"], path_pattern(op), handler))
    return out


def _snake(name: str) -> str:
    """`CreateClusterV2` -> `create_cluster_v2`."""
    return "".join(f"_{c.lower()}" if c.isupper() else c for c in name).lstrip("_")


Handler = Callable[[dict[str, Any], Call], Awaitable[dict[str, Any]]]


async def _dispatch(
    service: ServiceModel, op: OperationModel, handler: Handler | None, request: web.Request
) -> web.StreamResponse:
    call = Call(_region(request.headers.get("Authorization", "")), str(uuid.uuid4()))
    headers = {"x-amzn-RequestId": call.request_id}
    try:
        if handler is None:
            raise bad_request(f"msklite does not emulate {op.name}.")
        params = parse_request(
            op,
            request.match_info,
            {k: request.query.getall(k) for k in request.query},
            await request.read(),
        )
        result = await handler(params, call)
    except ApiError as e:
        error = e
    except Exception:
        # msklite's own bug: logged, and answered as the model says a service fault is
        logger.exception("MSK API %s failed", op.name)
        error = ApiError("InternalServerErrorException", "msklite failed; see its log.")
    else:
        status = int(op.http.get("responseCode", 200))
        if op.output_shape is None:
            return web.Response(status=status, headers=headers)
        body = to_json(op.output_shape, result)
        return web.json_response(body, status=status, headers=headers)
    declared = {s.name for s in op.error_shapes}
    code = error.code if error.code in declared else "BadRequestException"
    return web.json_response(
        error_body(error),
        status=error_status(service, code),
        headers={**headers, "x-amzn-ErrorType": code},
    )


def _region(authorization: str) -> str:
    """The region of a SigV4 `Credential=AKID/date/region/service/aws4_request` scope."""
    _, sep, rest = authorization.partition("Credential=")
    parts = rest.split(",", 1)[0].split("/") if sep else []
    return parts[2] if len(parts) >= 5 and parts[2] else DEFAULT_REGION


def az_ids(region: str, subnets: list[str]) -> list[str]:
    """A stable AZ id for each subnet (`use1-az2`), distinct within the list: six AZs a
    region, the subnet's hash choosing one, the next free one on a clash."""
    words = region.split("-")
    short = (
        words[0] + _DIRECTIONS.get(words[1], words[1][:1]) + words[-1]
        if len(words) >= 3
        else region
    )
    taken: list[str] = []
    for subnet in subnets:
        n = int(hashlib.sha256(subnet.encode()).hexdigest(), 16) % 6
        while f"{short}-az{n + 1}" in taken:
            n = (n + 1) % 6
        taken.append(f"{short}-az{n + 1}")
    return taken


def _token(position: int) -> str:
    return base64.urlsafe_b64encode(json.dumps({"p": position}).encode()).decode()


def _page(items: list[Any], params: dict[str, Any], key: str) -> dict[str, Any]:
    start = 0
    if params.get("NextToken"):
        try:
            start = int(json.loads(base64.urlsafe_b64decode(params["NextToken"]))["p"])
        except (ValueError, KeyError, TypeError):
            raise bad_request("The NextToken is not valid.", "nextToken") from None
    size = int(params.get("MaxResults") or 100)
    out: dict[str, Any] = {key: items[start : start + size]}
    if start + size < len(items):
        out["NextToken"] = _token(start + size)
    return out


def _not_found(what: str, arn: str) -> ApiError:
    return ApiError("NotFoundException", f"The {what} {arn} does not exist.", "arn")


class MskApi:
    def __init__(self, fleet: Fleet) -> None:
        self.fleet = fleet

    # ---- lookups ----

    def _record(self, arn: str) -> Record:
        record = self.fleet.clusters.get(arn)
        if record is None:
            raise ApiError("NotFoundException", f"The cluster {arn} does not exist.", "clusterArn")
        return record

    def _updatable(self, params: dict[str, Any]) -> Record:
        record = self._record(params["ClusterArn"])
        if record["State"] != "ACTIVE":
            raise bad_request(
                f"The operation cannot be performed while the cluster is in the "
                f"{record['State']} state; retry once it is ACTIVE."
            )
        if params.get("CurrentVersion") != record["CurrentVersion"]:
            raise bad_request(
                f"The cluster version {params.get('CurrentVersion')} is not the current "
                f"version {record['CurrentVersion']}; describe the cluster and retry.",
                "currentVersion",
            )
        return record

    def _provisioned(self, record: Record) -> dict[str, Any]:
        if record["ClusterType"] != "PROVISIONED":
            raise bad_request("This operation is not supported for serverless clusters.")
        prov: dict[str, Any] = record["Provisioned"]
        return prov

    # ---- clusters ----

    async def create_cluster(self, params: dict[str, Any], call: Call) -> dict[str, Any]:
        prov = {k: v for k, v in params.items() if k not in ("ClusterName", "Tags")}
        record = self._create(params["ClusterName"], params.get("Tags", {}), prov, None, call)
        return {k: record[k] for k in ("ClusterArn", "ClusterName", "State")}

    async def create_cluster_v2(self, params: dict[str, Any], call: Call) -> dict[str, Any]:
        prov, serverless = params.get("Provisioned"), params.get("Serverless")
        if (prov is None) == (serverless is None):
            raise bad_request("Specify exactly one of provisioned and serverless.")
        record = self._create(params["ClusterName"], params.get("Tags", {}), prov, serverless, call)
        return {k: record[k] for k in ("ClusterArn", "ClusterName", "State", "ClusterType")}

    def _create(
        self,
        name: str,
        tags: dict[str, str],
        prov: dict[str, Any] | None,
        serverless: dict[str, Any] | None,
        call: Call,
    ) -> Record:
        if any(r["ClusterName"] == name for r in self.fleet.clusters.values()):
            raise ApiError(
                "ConflictException", f"A cluster named {name} already exists.", "clusterName"
            )
        cluster_uuid = f"{uuid.uuid4()}-{len(self.fleet.clusters) + 1}"
        record: Record = {
            "_uuid": cluster_uuid,
            "_nodes": {},
            "_scramSecrets": [],
            "ClusterArn": cluster_arn(call.region, name, cluster_uuid),
            "ClusterName": name,
            "State": "CREATING",
            "CurrentVersion": new_version(),
            "CreationTime": now(),
            "Tags": dict(tags),
        }
        if prov is not None:
            record["ClusterType"] = "PROVISIONED"
            self._provisioned_spec(record, call.region, prov)
        else:
            assert serverless is not None
            record["ClusterType"] = "SERVERLESS"
            self._serverless_spec(record, call.region, serverless)
        self.fleet.clusters[record["ClusterArn"]] = record

        async def start() -> None:
            cluster = self.fleet.build(record)
            await cluster.astart()
            self.fleet.running_clusters[record["ClusterArn"]] = cluster
            added = now()
            for node_id in range(1, len(cluster.infos) + 1):
                record["_nodes"][str(node_id)] = added

        self.fleet.run(record, "CREATE", "CREATING", start, call.request_id)
        return record

    def _provisioned_spec(self, record: Record, region: str, prov: dict[str, Any]) -> None:
        group = prov["BrokerNodeGroupInfo"]
        subnets = list(group.get("ClientSubnets") or [])
        if not 2 <= len(subnets) <= 3:
            raise bad_request(
                "Specify two or three client subnets, each in its own AZ.", "clientSubnets"
            )
        if len(set(subnets)) != len(subnets):
            raise bad_request("The client subnets must be distinct.", "clientSubnets")
        count = int(prov["NumberOfBrokerNodes"])
        if count % len(subnets):
            raise bad_request(
                f"The number of broker nodes ({count}) must be a multiple of the number of "
                f"client subnets ({len(subnets)}).",
                "numberOfBrokerNodes",
            )
        version = self._version(prov["KafkaVersion"])
        auth, mtls = self._listeners(
            prov.get("ClientAuthentication") or {}, prov.get("EncryptionInfo") or {}
        )
        configs, software = self._configuration(prov.get("ConfigurationInfo"), version)
        record["_azs"] = az_ids(region, subnets)
        record["_subnets"] = subnets
        record["_auth"] = auth
        record["_tlsClientAuth"] = mtls
        record["_config"] = configs
        group.setdefault("BrokerAZDistribution", "DEFAULT")
        record["Provisioned"] = {
            "BrokerNodeGroupInfo": group,
            "ClientAuthentication": prov.get("ClientAuthentication") or {},
            "EncryptionInfo": prov.get("EncryptionInfo")
            or {"EncryptionInTransit": {"ClientBroker": "TLS", "InCluster": True}},
            "EnhancedMonitoring": prov.get("EnhancedMonitoring", "DEFAULT"),
            "OpenMonitoring": prov.get("OpenMonitoring"),
            "LoggingInfo": prov.get("LoggingInfo"),
            "NumberOfBrokerNodes": count,
            "StorageMode": prov.get("StorageMode", "LOCAL"),
            "CurrentBrokerSoftwareInfo": {**software, "KafkaVersion": prov["KafkaVersion"]},
        }

    def _serverless_spec(self, record: Record, region: str, spec: dict[str, Any]) -> None:
        subnets = [s for vpc in spec["VpcConfigs"] for s in vpc.get("SubnetIds", [])]
        if not 2 <= len(subnets) <= 5:
            raise bad_request("Specify two to five subnets.", "vpcConfigs")
        iam = spec.get("ClientAuthentication", {}).get("Sasl", {}).get("Iam", {}).get("Enabled")
        if not iam:
            raise bad_request(
                "Serverless clusters require IAM client authentication.", "clientAuthentication"
            )
        if "iam" not in KINDS:
            raise bad_request(
                "Serverless clusters authenticate with IAM (SASL/IAM), which this msklite "
                "does not serve yet.",
                "clientAuthentication",
            )
        record["_azs"] = az_ids(region, subnets)[:3]
        record["_subnets"] = subnets
        record["_auth"] = ["iam"]
        record["_tlsClientAuth"] = False
        record["_config"] = {}
        record["Serverless"] = {
            "VpcConfigs": spec["VpcConfigs"],
            "ClientAuthentication": spec["ClientAuthentication"],
        }
        record["Provisioned"] = {"NumberOfBrokerNodes": 3}  # how many brokers serve it

    def _version(self, name: str) -> str:
        try:
            return kafka_version(name)
        except ValueError as e:
            raise bad_request(str(e), "kafkaVersion") from None

    def _listeners(
        self, auth: dict[str, Any], encryption: dict[str, Any]
    ) -> tuple[list[str], bool]:
        """The `--auth` words and mTLS of MSK's client authentication and encryption."""
        client_broker = encryption.get("EncryptionInTransit", {}).get("ClientBroker", "TLS")
        sasl = auth.get("Sasl", {})
        scram = bool(sasl.get("Scram", {}).get("Enabled"))
        iam = bool(sasl.get("Iam", {}).get("Enabled"))
        mtls = bool(auth.get("Tls", {}).get("Enabled"))
        unauthenticated = auth.get("Unauthenticated", {}).get("Enabled", not (scram or iam or mtls))
        if client_broker == "PLAINTEXT" and (scram or iam or mtls):
            raise bad_request(
                "SASL and TLS client authentication need encryption in transit "
                "(ClientBroker TLS or TLS_PLAINTEXT).",
                "encryptionInTransit",
            )
        words = []
        if unauthenticated and client_broker != "TLS":
            words.append("plaintext")
        if client_broker != "PLAINTEXT" and (unauthenticated or mtls):
            words.append("tls")
        if scram:
            words.append("scram")
        if iam:
            if "iam" not in KINDS:
                raise bad_request(
                    "IAM client authentication is not served by this msklite yet.", "iam"
                )
            words.append("iam")
        if not words:
            raise bad_request(
                "The client authentication leaves no way to connect.", "clientAuthentication"
            )
        return words, mtls and not unauthenticated

    def _configuration(
        self, info: dict[str, Any] | None, version: str
    ) -> tuple[dict[str, str], dict[str, Any]]:
        """The broker configs of a ConfigurationInfo and the software info naming it."""
        if info is None:
            return {}, {}
        config = self.fleet.configurations.get(info["Arn"])
        if config is None or config["State"] != "ACTIVE":
            raise bad_request(
                f"The configuration {info['Arn']} does not exist.", "configurationInfo"
            )
        revisions = config["_revisions"]
        revision = int(info["Revision"])
        if not 1 <= revision <= len(revisions):
            raise bad_request(f"The configuration has no revision {revision}.", "revision")
        allowed = config.get("KafkaVersions") or []
        if allowed and version not in {kafka_version(v) for v in allowed if _known(v)}:
            raise bad_request(
                f"The configuration is for Kafka {', '.join(allowed)}, not {version}.",
                "configurationInfo",
            )
        text = base64.b64decode(revisions[revision - 1]["_serverProperties"]).decode()
        return msk_configuration(text), {
            "ConfigurationArn": info["Arn"],
            "ConfigurationRevision": revision,
        }

    def _describe_v1(self, record: Record) -> dict[str, Any]:
        prov = record.get("Provisioned", {})
        out = {k: v for k, v in record.items() if not k.startswith("_")}
        out.update(prov)
        return out

    async def describe_cluster(self, params: dict[str, Any], call: Call) -> dict[str, Any]:
        record = self._record(params["ClusterArn"])
        if record["ClusterType"] != "PROVISIONED":
            raise bad_request("Use DescribeClusterV2 for serverless clusters.")
        return {"ClusterInfo": self._describe_v1(record)}

    async def describe_cluster_v2(self, params: dict[str, Any], call: Call) -> dict[str, Any]:
        return {"ClusterInfo": self._describe_v2(self._record(params["ClusterArn"]))}

    def _describe_v2(self, record: Record) -> dict[str, Any]:
        out = {k: v for k, v in record.items() if not k.startswith("_")}
        if record["ClusterType"] == "SERVERLESS":
            out.pop("Provisioned", None)
        return out

    def _listed(self, params: dict[str, Any]) -> list[Record]:
        prefix = params.get("ClusterNameFilter", "")
        kind = params.get("ClusterTypeFilter")
        if kind is not None and kind not in ("PROVISIONED", "SERVERLESS"):
            raise bad_request(
                "clusterTypeFilter must be PROVISIONED or SERVERLESS.", "clusterTypeFilter"
            )
        return [
            r
            for r in sorted(self.fleet.clusters.values(), key=lambda r: r["CreationTime"])
            if r["ClusterName"].startswith(prefix) and kind in (None, r["ClusterType"])
        ]

    async def list_clusters(self, params: dict[str, Any], call: Call) -> dict[str, Any]:
        records = [r for r in self._listed(params) if r["ClusterType"] == "PROVISIONED"]
        return _page([self._describe_v1(r) for r in records], params, "ClusterInfoList")

    async def list_clusters_v2(self, params: dict[str, Any], call: Call) -> dict[str, Any]:
        return _page(
            [self._describe_v2(r) for r in self._listed(params)], params, "ClusterInfoList"
        )

    async def delete_cluster(self, params: dict[str, Any], call: Call) -> dict[str, Any]:
        record = self._record(params["ClusterArn"])
        if record.get("_default"):
            raise bad_request(
                "The cluster msklite serve started itself is deleted by stopping msklite."
            )
        if "CurrentVersion" in params and params["CurrentVersion"] != record["CurrentVersion"]:
            raise bad_request("The cluster version is not the current version.", "currentVersion")
        if record["State"] == "DELETING":
            raise bad_request("The cluster is already being deleted.")
        arn = record["ClusterArn"]

        async def delete() -> None:
            cluster = self.fleet.running_clusters.pop(arn, None)
            if cluster is not None:
                await cluster.astop()

        self.fleet.run(record, "DELETE", "DELETING", delete, call.request_id)
        return {"ClusterArn": arn, "State": "DELETING"}

    async def get_bootstrap_brokers(self, params: dict[str, Any], call: Call) -> dict[str, Any]:
        cluster = self._running(self._record(params["ClusterArn"]))
        return {
            BOOTSTRAP_FIELDS[kind.auth]: servers
            for kind, (_, servers) in zip(
                cluster.security.kinds, cluster.bootstrap_lines, strict=True
            )
            if kind.auth in BOOTSTRAP_FIELDS
        }

    async def list_nodes(self, params: dict[str, Any], call: Call) -> dict[str, Any]:
        record = self._record(params["ClusterArn"])
        prov = self._provisioned(record)
        cluster = self.fleet.cluster_of(record["ClusterArn"])
        region = record["ClusterArn"].split(":")[3]
        nodes = []
        for info in [] if cluster is None else cluster.infos:
            index = (info.node_id - 1) % len(record["_azs"])
            nodes.append(
                {
                    "AddedToClusterTime": iso8601(
                        record["_nodes"].get(str(info.node_id), record["CreationTime"])
                    ),
                    "InstanceType": prov["BrokerNodeGroupInfo"].get(
                        "InstanceType", "kafka.m5.large"
                    ),
                    "NodeARN": f"arn:aws:kafka:{region}:{ACCOUNT}:broker/"
                    f"{record['ClusterName']}/{record['_uuid']}/{info.node_id}",
                    "NodeType": "BROKER",
                    "BrokerNodeInfo": {
                        "AttachedENIId": f"eni-{record['_uuid'][:8]}{info.node_id:04d}",
                        "BrokerId": float(info.node_id),
                        "ClientSubnet": record["_subnets"][index],
                        "ClientVpcIpAddress": info.host,
                        "CurrentBrokerSoftwareInfo": prov.get("CurrentBrokerSoftwareInfo"),
                        "Endpoints": [info.host],
                    },
                }
            )
        return _page(nodes, params, "NodeInfoList")

    # ---- updates ----

    async def update_broker_count(self, params: dict[str, Any], call: Call) -> dict[str, Any]:
        record = self._updatable(params)
        prov = self._provisioned(record)
        current, target = int(prov["NumberOfBrokerNodes"]), int(params["TargetNumberOfBrokerNodes"])
        azs = record["_azs"]
        if target <= current:
            raise bad_request(
                f"The target number of broker nodes ({target}) must be greater than the current "
                f"number ({current}): msklite adds brokers only.",
                "targetNumberOfBrokerNodes",
            )
        if target % len(azs):
            raise bad_request(
                f"The number of broker nodes must be a multiple of the number of AZs ({len(azs)}).",
                "targetNumberOfBrokerNodes",
            )
        cluster = self.fleet.cluster_of(record["ClusterArn"])
        assert cluster is not None

        async def grow() -> None:
            for node_id in range(current + 1, target + 1):
                await cluster.aadd_broker(azs[(node_id - 1) % len(azs)])
                record["_nodes"][str(node_id)] = now()
                prov["NumberOfBrokerNodes"] = node_id
                self.fleet.save()

        arn = self.fleet.run(
            record,
            "INCREASE_BROKER_COUNT",
            "UPDATING",
            grow,
            call.request_id,
            {"NumberOfBrokerNodes": current},
            {"NumberOfBrokerNodes": target},
        )
        return {"ClusterArn": record["ClusterArn"], "ClusterOperationArn": arn}

    async def update_broker_storage(self, params: dict[str, Any], call: Call) -> dict[str, Any]:
        record = self._updatable(params)
        prov = self._provisioned(record)
        target = params["TargetBrokerEBSVolumeInfo"]
        source = prov.get("BrokerNodeGroupInfo", {}).get("StorageInfo")

        async def record_it() -> None:
            size = next((v.get("VolumeSizeGB") for v in target if v.get("VolumeSizeGB")), None)
            if size is not None:
                storage = prov["BrokerNodeGroupInfo"].setdefault("StorageInfo", {})
                storage.setdefault("EbsStorageInfo", {})["VolumeSize"] = size

        arn = self.fleet.run(
            record,
            "UPDATE_BROKER_STORAGE",
            "UPDATING",
            record_it,
            call.request_id,
            {
                "BrokerEBSVolumeInfo": [
                    {
                        "KafkaBrokerNodeId": "ALL",
                        "VolumeSizeGB": (source or {}).get("EbsStorageInfo", {}).get("VolumeSize"),
                    }
                ]
            },
            {"BrokerEBSVolumeInfo": target},
        )
        return {"ClusterArn": record["ClusterArn"], "ClusterOperationArn": arn}

    async def update_broker_type(self, params: dict[str, Any], call: Call) -> dict[str, Any]:
        record = self._updatable(params)
        prov = self._provisioned(record)
        source = prov["BrokerNodeGroupInfo"].get("InstanceType")

        async def record_it() -> None:
            prov["BrokerNodeGroupInfo"]["InstanceType"] = params["TargetInstanceType"]

        arn = self.fleet.run(
            record,
            "UPDATE_BROKER_TYPE",
            "UPDATING",
            record_it,
            call.request_id,
            {"InstanceType": source},
            {"InstanceType": params["TargetInstanceType"]},
        )
        return {"ClusterArn": record["ClusterArn"], "ClusterOperationArn": arn}

    async def reboot_broker(self, params: dict[str, Any], call: Call) -> dict[str, Any]:
        record = self._record(params["ClusterArn"])
        self._provisioned(record)
        if record["State"] != "ACTIVE":
            raise bad_request(f"The cluster is {record['State']}; retry once it is ACTIVE.")
        ids = params["BrokerIds"]
        if len(ids) != 1:
            raise bad_request("Reboot one broker at a time.", "brokerIds")
        cluster = self.fleet.cluster_of(record["ClusterArn"])
        assert cluster is not None
        try:
            node_id = int(ids[0])
        except ValueError:
            raise bad_request(f"No broker {ids[0]!r}.", "brokerIds") from None
        if node_id not in {i.node_id for i in cluster.infos}:
            raise bad_request(f"The cluster has no broker {node_id}.", "brokerIds")

        async def reboot() -> None:
            if node_id in cluster.brokers:
                await cluster.astop_broker(node_id)
            await cluster.astart_broker(node_id)
            # MSK's reboot ends once the broker is back in sync
            await cluster.acaught_up(node_id)

        arn = self.fleet.run(record, "REBOOT_NODE", "REBOOTING_BROKER", reboot, call.request_id)
        return {"ClusterArn": record["ClusterArn"], "ClusterOperationArn": arn}

    async def update_cluster_configuration(
        self, params: dict[str, Any], call: Call
    ) -> dict[str, Any]:
        record = self._updatable(params)
        prov = self._provisioned(record)
        version = self._version(prov["CurrentBrokerSoftwareInfo"]["KafkaVersion"])
        configs, software = self._configuration(params["ConfigurationInfo"], version)
        cluster = self.fleet.cluster_of(record["ClusterArn"])
        assert cluster is not None and cluster.controller is not None
        controller = cluster.controller
        source = dict(prov["CurrentBrokerSoftwareInfo"])

        async def apply() -> None:
            _apply_configuration(record, controller, configs)
            prov["CurrentBrokerSoftwareInfo"].update(software)

        arn = self.fleet.run(
            record,
            "UPDATE_CLUSTER_CONFIGURATION",
            "UPDATING",
            apply,
            call.request_id,
            {"ConfigurationInfo": _config_info(source)},
            {"ConfigurationInfo": params["ConfigurationInfo"]},
        )
        return {"ClusterArn": record["ClusterArn"], "ClusterOperationArn": arn}

    async def update_cluster_kafka_version(
        self, params: dict[str, Any], call: Call
    ) -> dict[str, Any]:
        record = self._updatable(params)
        prov = self._provisioned(record)
        source_name = prov["CurrentBrokerSoftwareInfo"]["KafkaVersion"]
        target_name = params["TargetKafkaVersion"]
        source, target = self._version(source_name), self._version(target_name)
        if target not in _upgrades(source):
            raise bad_request(
                f"Kafka {source_name} cannot be updated to {target_name}; see "
                "GetCompatibleKafkaVersions.",
                "targetKafkaVersion",
            )
        configs: dict[str, str] = {}
        software: dict[str, Any] = {}
        if params.get("ConfigurationInfo"):
            configs, software = self._configuration(params["ConfigurationInfo"], target)
        cluster = self._running(record)
        try:
            cluster.broker_configs.upgrade_check(target)
        except ValueError as e:
            raise bad_request(str(e), "targetKafkaVersion") from None

        async def roll() -> None:
            op = self.fleet.operations[record["ActiveOperationArn"]]
            steps: dict[str, Record] = {
                name: {"StepInfo": {"StepStatus": "PENDING"}, "StepName": name}
                for name in ("INITIALIZE_UPDATE", "UPDATE_APPLY", "FINALIZE_UPDATE")
            }
            op["OperationSteps"] = list(steps.values())
            current = "INITIALIZE_UPDATE"

            def step(name: str) -> None:
                nonlocal current
                steps[current]["StepInfo"]["StepStatus"] = "SUCCEEDED"
                steps[name]["StepInfo"]["StepStatus"] = "IN_PROGRESS"
                current = name

            steps[current]["StepInfo"]["StepStatus"] = "IN_PROGRESS"
            try:
                step("UPDATE_APPLY")
                await cluster.aupdate_kafka_version(
                    target,
                    lambda node_id: logger.info(
                        "cluster %s: broker %d runs Kafka %s",
                        record["ClusterName"],
                        node_id,
                        target_name,
                    ),
                )
                step("FINALIZE_UPDATE")
                assert cluster.controller is not None
                _apply_configuration(record, cluster.controller, configs)
                prov["CurrentBrokerSoftwareInfo"].update({**software, "KafkaVersion": target_name})
                steps[current]["StepInfo"]["StepStatus"] = "SUCCEEDED"
            except BaseException:
                steps[current]["StepInfo"]["StepStatus"] = "FAILED"
                raise

        arn = self.fleet.run(
            record,
            "UPDATE_CLUSTER_KAFKA_VERSION",
            "UPDATING",
            roll,
            call.request_id,
            {"KafkaVersion": source_name},
            {"KafkaVersion": target_name},
        )
        return {"ClusterArn": record["ClusterArn"], "ClusterOperationArn": arn}

    # ---- operations ----

    def _operation(self, arn: str) -> Record:
        op = self.fleet.operations.get(arn)
        if op is None:
            raise ApiError(
                "NotFoundException",
                f"The cluster operation {arn} does not exist.",
                "clusterOperationArn",
            )
        return op

    async def describe_cluster_operation(
        self, params: dict[str, Any], call: Call
    ) -> dict[str, Any]:
        return {"ClusterOperationInfo": self._operation(params["ClusterOperationArn"])}

    async def describe_cluster_operation_v2(
        self, params: dict[str, Any], call: Call
    ) -> dict[str, Any]:
        return {
            "ClusterOperationInfo": _operation_v2(self._operation(params["ClusterOperationArn"]))
        }

    def _operations_of(self, arn: str) -> list[Record]:
        known = arn in self.fleet.clusters
        ops = [o for o in self.fleet.operations.values() if o["ClusterArn"] == arn]
        if not known and not ops:
            self._record(arn)
        return sorted(ops, key=lambda o: o["CreationTime"], reverse=True)

    async def list_cluster_operations(self, params: dict[str, Any], call: Call) -> dict[str, Any]:
        return _page(self._operations_of(params["ClusterArn"]), params, "ClusterOperationInfoList")

    async def list_cluster_operations_v2(
        self, params: dict[str, Any], call: Call
    ) -> dict[str, Any]:
        ops = [_operation_v2(o) for o in self._operations_of(params["ClusterArn"])]
        return _page(ops, params, "ClusterOperationInfoList")

    # ---- configurations ----

    def _config(self, arn: str) -> Record:
        config = self.fleet.configurations.get(arn)
        if config is None:
            raise ApiError("NotFoundException", f"The configuration {arn} does not exist.", "arn")
        return config

    def _check_properties(self, text: bytes) -> str:
        try:
            msk_configuration(text.decode("utf-8"))
        except (ValueError, UnicodeDecodeError) as e:
            raise bad_request(str(e), "serverProperties") from None
        return base64.b64encode(text).decode("ascii")

    async def create_configuration(self, params: dict[str, Any], call: Call) -> dict[str, Any]:
        name = params["Name"]
        if any(c["Name"] == name for c in self.fleet.configurations.values()):
            raise ApiError(
                "ConflictException", f"A configuration named {name} already exists.", "name"
            )
        for version in params.get("KafkaVersions", []):
            self._version(version)
        encoded = self._check_properties(params["ServerProperties"])
        created = now()
        arn = (
            f"arn:aws:kafka:{call.region}:{ACCOUNT}:configuration/{name}/"
            f"{uuid.uuid4()}-{len(self.fleet.configurations) + 1}"
        )
        revision = {
            "Revision": 1,
            "CreationTime": created,
            "Description": params.get("Description"),
            "_serverProperties": encoded,
        }
        self.fleet.configurations[arn] = {
            "Arn": arn,
            "Name": name,
            "Description": params.get("Description", ""),
            "KafkaVersions": params.get("KafkaVersions", []),
            "CreationTime": created,
            "State": "ACTIVE",
            "_revisions": [revision],
        }
        self.fleet.save()
        return {
            "Arn": arn,
            "CreationTime": created,
            "LatestRevision": _revision(revision),
            "Name": name,
            "State": "ACTIVE",
        }

    def _described(self, config: Record) -> dict[str, Any]:
        out = {k: v for k, v in config.items() if not k.startswith("_")}
        out["LatestRevision"] = _revision(config["_revisions"][-1])
        return out

    async def describe_configuration(self, params: dict[str, Any], call: Call) -> dict[str, Any]:
        return self._described(self._config(params["Arn"]))

    async def list_configurations(self, params: dict[str, Any], call: Call) -> dict[str, Any]:
        configs = sorted(self.fleet.configurations.values(), key=lambda c: c["CreationTime"])
        return _page([self._described(c) for c in configs], params, "Configurations")

    async def update_configuration(self, params: dict[str, Any], call: Call) -> dict[str, Any]:
        config = self._config(params["Arn"])
        encoded = self._check_properties(params["ServerProperties"])
        revision = {
            "Revision": len(config["_revisions"]) + 1,
            "CreationTime": now(),
            "Description": params.get("Description"),
            "_serverProperties": encoded,
        }
        config["_revisions"].append(revision)
        self.fleet.save()
        return {"Arn": config["Arn"], "LatestRevision": _revision(revision)}

    async def describe_configuration_revision(
        self, params: dict[str, Any], call: Call
    ) -> dict[str, Any]:
        config = self._config(params["Arn"])
        number = int(params["Revision"])
        if not 1 <= number <= len(config["_revisions"]):
            raise ApiError(
                "NotFoundException", f"The configuration has no revision {number}.", "revision"
            )
        revision = config["_revisions"][number - 1]
        return {
            "Arn": config["Arn"],
            "CreationTime": revision["CreationTime"],
            "Description": revision.get("Description"),
            "Revision": number,
            "ServerProperties": base64.b64decode(revision["_serverProperties"]),
        }

    async def list_configuration_revisions(
        self, params: dict[str, Any], call: Call
    ) -> dict[str, Any]:
        config = self._config(params["Arn"])
        return _page([_revision(r) for r in config["_revisions"]], params, "Revisions")

    async def delete_configuration(self, params: dict[str, Any], call: Call) -> dict[str, Any]:
        config = self._config(params["Arn"])
        users = [
            r["ClusterName"]
            for r in self.fleet.clusters.values()
            if r.get("Provisioned", {}).get("CurrentBrokerSoftwareInfo", {}).get("ConfigurationArn")
            == config["Arn"]
        ]
        if users:
            raise bad_request(f"The configuration is in use by {', '.join(users)}.", "arn")
        del self.fleet.configurations[config["Arn"]]
        self.fleet.save()
        return {"Arn": config["Arn"], "State": "DELETING"}

    # ---- versions ----

    async def list_kafka_versions(self, params: dict[str, Any], call: Call) -> dict[str, Any]:
        return _page(
            [{"Version": v, "Status": "ACTIVE"} for v in RELEASES], params, "KafkaVersions"
        )

    async def get_compatible_kafka_versions(
        self, params: dict[str, Any], call: Call
    ) -> dict[str, Any]:
        if params.get("ClusterArn"):
            record = self._record(params["ClusterArn"])
            name = self._provisioned(record)["CurrentBrokerSoftwareInfo"]["KafkaVersion"]
            sources = [name]
        else:
            sources = list(RELEASES)
        return {
            "CompatibleKafkaVersions": [
                {"SourceVersion": s, "TargetVersions": _upgrades(self._version(s))} for s in sources
            ]
        }

    # ---- tags ----

    def _tagged(self, arn: str) -> Record:
        record = self.fleet.clusters.get(arn) or self.fleet.configurations.get(arn)
        if record is None:
            raise ApiError(
                "NotFoundException", f"The resource {arn} does not exist.", "resourceArn"
            )
        return record

    async def tag_resource(self, params: dict[str, Any], call: Call) -> dict[str, Any]:
        record = self._tagged(params["ResourceArn"])
        record.setdefault("Tags", {}).update(params["Tags"])
        self.fleet.save()
        return {}

    async def untag_resource(self, params: dict[str, Any], call: Call) -> dict[str, Any]:
        record = self._tagged(params["ResourceArn"])
        for key in params["TagKeys"]:
            record.setdefault("Tags", {}).pop(key, None)
        self.fleet.save()
        return {}

    async def list_tags_for_resource(self, params: dict[str, Any], call: Call) -> dict[str, Any]:
        return {"Tags": dict(self._tagged(params["ResourceArn"]).get("Tags", {}))}

    # ---- SCRAM secrets ----

    def _scram_cluster(self, arn: str) -> Record:
        record = self._record(arn)
        if "scram" not in record.get("_auth", []):
            raise bad_request(
                "SASL/SCRAM authentication is not enabled on the cluster.", "clusterArn"
            )
        return record

    async def batch_associate_scram_secret(
        self, params: dict[str, Any], call: Call
    ) -> dict[str, Any]:
        record = self._scram_cluster(params["ClusterArn"])
        cluster = self._running(record)
        unprocessed = []
        for arn in params["SecretArnList"]:
            error = self._secret_error(arn)
            if error is None and arn in record["_scramSecrets"]:
                error = (
                    "SecretAlreadyAssociated",
                    "The secret is already associated with the cluster.",
                )
            if error is not None:
                unprocessed.append(
                    {"SecretArn": arn, "ErrorCode": error[0], "ErrorMessage": error[1]}
                )
                continue
            user, password = self.fleet.secrets[_secret_name(arn)]
            record["_scramSecrets"].append(arn)
            cluster.add_scram_user(user, password)  # saved with the cluster's metadata
        self.fleet.save()
        return {"ClusterArn": record["ClusterArn"], "UnprocessedScramSecrets": unprocessed}

    def _running(self, record: Record) -> Cluster:
        cluster = self.fleet.cluster_of(record["ClusterArn"])
        if cluster is None or not cluster.started:
            raise bad_request(f"The cluster is {record['State']}; retry once it is ACTIVE.")
        return cluster

    def _secret_error(self, arn: str) -> tuple[str, str] | None:
        parts = arn.split(":")
        if len(parts) < 7 or parts[2] != "secretsmanager" or parts[5] != "secret":
            return "InvalidSecretArn", "The secret ARN is not a Secrets Manager secret ARN."
        name = _secret_name(arn)
        if not name.startswith("AmazonMSK_"):
            return "InvalidSecretName", "The secret name must start with AmazonMSK_."
        if name not in self.fleet.secrets:
            return "SecretNotFound", f"msklite has no secret {name} (see --scram-secrets)."
        return None

    async def batch_disassociate_scram_secret(
        self, params: dict[str, Any], call: Call
    ) -> dict[str, Any]:
        record = self._scram_cluster(params["ClusterArn"])
        controller = self._running(record).controller
        assert controller is not None
        unprocessed = []
        for arn in params["SecretArnList"]:
            if arn not in record["_scramSecrets"]:
                unprocessed.append(
                    {
                        "SecretArn": arn,
                        "ErrorCode": "SecretNotAssociated",
                        "ErrorMessage": "The secret is not associated with the cluster.",
                    }
                )
                continue
            record["_scramSecrets"].remove(arn)
            secret = self.fleet.secrets.get(_secret_name(arn))
            if secret is not None:
                user = secret[0]
                # one mechanism a request, as AlterUserScramCredentials allows
                for mechanism in list(controller.scram.get(user, {})):
                    controller.alter_scram_credentials([(user, TYPE_OF[mechanism])], [])
        self.fleet.save()
        return {"ClusterArn": record["ClusterArn"], "UnprocessedScramSecrets": unprocessed}

    async def list_scram_secrets(self, params: dict[str, Any], call: Call) -> dict[str, Any]:
        record = self._record(params["ClusterArn"])
        return _page(list(record.get("_scramSecrets", [])), params, "SecretArnList")


def _apply_configuration(record: Record, controller: Controller, configs: dict[str, str]) -> None:
    """A configuration's dynamic cluster-wide broker configs applied at once; all of them
    kept for the cluster's next start."""
    dynamic = {
        k: v
        for k, v in configs.items()
        if not BROKER_CONFIGS[k].read_only and BROKER_CONFIGS[k].mode != PER_BROKER
    }
    try:
        controller.alter_broker_configs(None, dynamic)
    except KafkaError as e:
        raise RuntimeError(e.message) from None
    record["_config"] = {**record.get("_config", {}), **configs}


def _secret_name(arn: str) -> str:
    """A secret ARN's name without Secrets Manager's random six-character suffix."""
    name = arn.split(":", 6)[6] if arn.count(":") >= 6 else arn
    base, sep, suffix = name.rpartition("-")
    return base if sep and len(suffix) == 6 else name


def _known(version: str) -> bool:
    try:
        kafka_version(version)
    except ValueError:
        return False
    return True


def _upgrades(version: str) -> list[str]:
    names = list(RELEASES)
    return names[names.index(version) + 1 :]


def _revision(revision: Record) -> dict[str, Any]:
    return {k: v for k, v in revision.items() if not k.startswith("_")}


def _config_info(software: dict[str, Any]) -> dict[str, Any] | None:
    if "ConfigurationArn" not in software:
        return None
    return {"Arn": software["ConfigurationArn"], "Revision": software["ConfigurationRevision"]}


def _operation_v2(op: Record) -> dict[str, Any]:
    return {
        "ClusterArn": op["ClusterArn"],
        "ClusterType": op.get("ClusterType", "PROVISIONED"),
        "StartTime": op["CreationTime"],
        "EndTime": op.get("EndTime"),
        "ErrorInfo": op.get("ErrorInfo"),
        "OperationArn": op["OperationArn"],
        "OperationState": op["OperationState"],
        "OperationType": op["OperationType"],
        "Provisioned": {
            "OperationSteps": op.get("OperationSteps", []),
            "SourceClusterInfo": op.get("SourceClusterInfo", {}),
            "TargetClusterInfo": op.get("TargetClusterInfo", {}),
        },
    }
