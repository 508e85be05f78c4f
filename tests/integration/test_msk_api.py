"""The MSK control plane (msklite/web/msk_api.py) driven by boto3's `kafka` client, the way
infrastructure code drives MSK: clusters created, found, used by real Kafka clients through
the bootstrap brokers the API hands out, scaled, rebooted, configured and deleted. Every
response body (errors too) is checked against botocore's service model."""

from __future__ import annotations

import json
import logging
import shutil
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError
from confluent_kafka import Consumer, Producer
from confluent_kafka.admin import AdminClient, ConfigResource, NewTopic
from kafka.protocol.metadata.api_versions import ApiVersionsRequest

from msklite import Cluster
from msklite.protocol.api_keys import ApiKey
from msklite.web.service import Service
from tests.integration.helpers import wait_until
from tests.integration.msk_model import ResponseChecker
from tests.integration.rawclient import RawClient

SUBNETS = ["subnet-0a1b", "subnet-0c2d", "subnet-0e3f"]
PLAINTEXT = {"EncryptionInTransit": {"ClientBroker": "PLAINTEXT"}}
SECRETS = {"AmazonMSK_alice": ("alice", "alice-secret")}
CONSUMER_GROUP_HEARTBEAT, JOIN_GROUP = ApiKey.CONSUMER_GROUP_HEARTBEAT, ApiKey.JOIN_GROUP


@pytest.fixture
def aws_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """Fake static credentials; no profile, config file or instance metadata consulted."""
    for key, value in {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_SESSION_TOKEN": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_CONFIG_FILE": "/dev/null",
        "AWS_SHARED_CREDENTIALS_FILE": "/dev/null",
        "AWS_EC2_METADATA_DISABLED": "true",
    }.items():
        monkeypatch.setenv(key, value)
    monkeypatch.delenv("AWS_PROFILE", raising=False)


@pytest.fixture
def service(aws_env: None, tmp_path: Path) -> Iterator[Service]:
    svc = Service(
        Cluster(brokers=1, data_dir=str(tmp_path / "data")), aws_port=0, scram_secrets=SECRETS
    ).start()
    yield svc
    svc.stop()


@pytest.fixture
def checker() -> ResponseChecker:
    return ResponseChecker()


@pytest.fixture
def kafka(service: Service, checker: ResponseChecker) -> Iterator[Any]:
    client = boto3.client("kafka", endpoint_url=service.url, region_name="us-east-1")
    client.meta.events.register("after-call.kafka", checker)
    yield client
    assert checker.checked, "no response was checked"
    assert checker.problems == []


def provisioned(brokers: int = 3, subnets: list[str] = SUBNETS, **extra: Any) -> dict[str, Any]:
    return {
        "BrokerNodeGroupInfo": {"ClientSubnets": subnets, "InstanceType": "kafka.m5.large"},
        "KafkaVersion": "3.9.x",
        "NumberOfBrokerNodes": brokers,
        "EncryptionInfo": PLAINTEXT,
        **extra,
    }


def wait_state(kafka: Any, arn: str, state: str = "ACTIVE") -> dict[str, Any]:
    """Poll DescribeClusterV2 as MSK users do (the kafka model has no waiters)."""
    info: dict[str, Any] = {}

    def reached() -> bool:
        info.update(kafka.describe_cluster_v2(ClusterArn=arn)["ClusterInfo"])
        return bool(info["State"] == state)

    # each poll is an HTTP request served on the brokers' loop: not more than MSK users do
    wait_until(reached, f"cluster {arn} {state}", timeout=60, interval=0.1)
    return info


def create(kafka: Any, name: str, **spec: Any) -> tuple[str, str]:
    """(cluster ARN, plaintext bootstrap) of a new ACTIVE cluster."""
    arn = kafka.create_cluster_v2(ClusterName=name, Provisioned=provisioned(**spec))["ClusterArn"]
    wait_state(kafka, arn)
    return arn, kafka.get_bootstrap_brokers(ClusterArn=arn)["BootstrapBrokerString"]


def make_topic(bootstrap: str, topic: str, partitions: int = 1, rf: int = 3) -> None:
    admin = AdminClient({"bootstrap.servers": bootstrap})
    admin.create_topics([NewTopic(topic, partitions, rf)])[topic].result(30)


def consume_all(bootstrap: str, topic: str, expected: int) -> list[bytes]:
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": f"check-{topic}",
            "auto.offset.reset": "earliest",
            "enable.auto.commit": False,
        }
    )
    consumer.subscribe([topic])
    values: list[bytes] = []
    deadline = time.monotonic() + 60
    try:
        while len(values) < expected and time.monotonic() < deadline:
            msg = consumer.poll(0.5)
            if msg is not None and msg.error() is None:
                values.append(msg.value() or b"")
    finally:
        consumer.close()
    return values


def error_of(call: Any, **kwargs: Any) -> tuple[str, int, str]:
    with pytest.raises(ClientError) as e:
        call(**kwargs)
    response = e.value.response
    return (
        response["Error"]["Code"],
        response["ResponseMetadata"]["HTTPStatusCode"],
        response["Error"]["Message"],
    )


def test_create_use_scale_and_delete_a_cluster(kafka: Any) -> None:
    assert kafka.waiter_names == []  # botocore's kafka model defines no waiter to use
    started = time.perf_counter()
    created = kafka.create_cluster_v2(
        ClusterName="orders", Provisioned=provisioned(), Tags={"team": "payments"}
    )
    assert created["State"] == "CREATING" and created["ClusterType"] == "PROVISIONED"
    arn = created["ClusterArn"]
    assert arn.startswith("arn:aws:kafka:us-east-1:123456789012:cluster/orders/")
    info = wait_state(kafka, arn)
    active = time.perf_counter()
    bootstrap = kafka.get_bootstrap_brokers(ClusterArn=arn)["BootstrapBrokerString"]
    assert len(bootstrap.split(",")) == 3
    make_topic(bootstrap, "orders")
    producer = Producer({"bootstrap.servers": bootstrap, "acks": "all"})
    acked: list[float] = []
    producer.produce(
        "orders",
        b"first",
        on_delivery=lambda err, _: acked.append(time.perf_counter()) if err is None else None,
    )
    producer.flush(30)
    assert acked
    print(
        f"\nCreateClusterV2 -> ACTIVE {1000 * (active - started):.0f} ms -> first produce "
        f"acknowledged {1000 * (acked[0] - started):.0f} ms (topic creation included)"
    )
    assert consume_all(bootstrap, "orders", 1) == [b"first"]

    assert info["Tags"] == {"team": "payments"}
    assert info["Provisioned"]["NumberOfBrokerNodes"] == 3
    nodes = kafka.list_nodes(ClusterArn=arn)["NodeInfoList"]
    assert [n["BrokerNodeInfo"]["BrokerId"] for n in nodes] == [1.0, 2.0, 3.0]
    assert [n["BrokerNodeInfo"]["ClientSubnet"] for n in nodes] == SUBNETS
    md = AdminClient({"bootstrap.servers": bootstrap}).list_topics(timeout=10)
    racks = {b.id: b for b in md.brokers.values()}
    assert set(racks) == {1, 2, 3}

    # UpdateBrokerCount: three more brokers, live, one per AZ in subnet order
    version = info["CurrentVersion"]
    op = kafka.update_broker_count(
        ClusterArn=arn, CurrentVersion=version, TargetNumberOfBrokerNodes=6
    )
    described = kafka.describe_cluster_operation(ClusterOperationArn=op["ClusterOperationArn"])
    assert described["ClusterOperationInfo"]["OperationType"] == "INCREASE_BROKER_COUNT"
    info = wait_state(kafka, arn)
    assert info["CurrentVersion"] != version
    assert info["Provisioned"]["NumberOfBrokerNodes"] == 6
    nodes = kafka.list_nodes(ClusterArn=arn)["NodeInfoList"]
    assert [n["BrokerNodeInfo"]["ClientSubnet"] for n in nodes] == SUBNETS + SUBNETS
    bootstrap = kafka.get_bootstrap_brokers(ClusterArn=arn)["BootstrapBrokerString"]
    assert len(bootstrap.split(",")) == 6
    md = AdminClient({"bootstrap.servers": bootstrap}).list_topics(timeout=10)
    assert {b.id for b in md.brokers.values()} == {1, 2, 3, 4, 5, 6}
    operation = kafka.describe_cluster_operation_v2(ClusterOperationArn=op["ClusterOperationArn"])
    assert operation["ClusterOperationInfo"]["OperationState"] == "UPDATE_COMPLETE"
    listed = kafka.list_cluster_operations(ClusterArn=arn)["ClusterOperationInfoList"]
    assert [o["OperationType"] for o in listed] == ["INCREASE_BROKER_COUNT", "CREATE"]
    listed = kafka.list_cluster_operations_v2(ClusterArn=arn, MaxResults=1)
    assert [o["OperationType"] for o in listed["ClusterOperationInfoList"]] == [
        "INCREASE_BROKER_COUNT"
    ]
    assert "NextToken" in listed

    deleted = kafka.delete_cluster(ClusterArn=arn)
    assert deleted["State"] == "DELETING"

    def gone() -> bool:
        try:
            kafka.describe_cluster_v2(ClusterArn=arn)
        except ClientError as e:
            return bool(e.response["Error"]["Code"] == "NotFoundException")
        return False

    wait_until(gone, "the cluster deleted", timeout=60)
    names = [c["ClusterName"] for c in kafka.list_clusters_v2()["ClusterInfoList"]]
    assert names == ["msklite"]


class Producing:
    """A confluent-kafka producer (acks=all, idempotent) sending numbered records from a
    thread until stopped, with at most `window` unacknowledged at a time (a loaded machine
    must not fill librdkafka's queue while a broker is down); `acked` and `failed` as the
    delivery reports come."""

    def __init__(self, bootstrap: str, topic: str, window: int = 500) -> None:
        self.acked: list[bytes] = []
        self.failed: list[str] = []
        self._stop = threading.Event()
        self._room = threading.Semaphore(window)
        self._args = (bootstrap, topic)
        self._worker = threading.Thread(target=self._run)

    def _run(self) -> None:
        bootstrap, topic = self._args
        producer = Producer(
            {"bootstrap.servers": bootstrap, "acks": "all", "enable.idempotence": True}
        )

        def delivered(err: Any, msg: Any) -> None:
            (self.failed.append(str(err)) if err is not None else self.acked.append(msg.value()))
            self._room.release()

        n = 0
        while not self._stop.is_set():
            if self._room.acquire(timeout=0.05):
                producer.produce(topic, str(n).encode(), on_delivery=delivered)
                n += 1
            producer.poll(0)
            producer.poll(0.001)
        producer.flush(60)

    def acked_more(self, count: int, what: str) -> None:
        """Until `count` more records than now are acknowledged."""
        target = len(self.acked) + count
        wait_until(lambda: len(self.acked) >= target, what, 60)

    def __enter__(self) -> Producing:
        self._worker.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._worker.join(90)
        assert not self._worker.is_alive()


def test_reboot_a_broker_mid_produce_loses_no_acked_record(kafka: Any, service: Service) -> None:
    arn, bootstrap = create(kafka, "reboot")
    make_topic(bootstrap, "payments")
    cluster = service.fleet.running()["reboot"]
    before = service.call(lambda: cluster.partition("payments", 0))
    leader = before.leader
    with Producing(bootstrap, "payments") as producing:
        producing.acked_more(100, "records acked before the reboot")
        op = kafka.reboot_broker(ClusterArn=arn, BrokerIds=[str(leader)])
        info = kafka.describe_cluster_operation(ClusterOperationArn=op["ClusterOperationArn"])
        assert info["ClusterOperationInfo"]["OperationType"] == "REBOOT_NODE"
        wait_state(kafka, arn)
        # leadership left the rebooted broker and came back once it caught up
        wait_until(
            lambda: partitions(service, cluster, "payments", 1)[0].leader == leader,
            "the preferred leader back",
            60,
            interval=0.05,
        )
        producing.acked_more(100, "records acked after the reboot")
    (after,) = partitions(service, cluster, "payments", 1)
    assert after.leader_epoch >= before.leader_epoch + 2
    assert producing.failed == []
    consumed = consume_all(bootstrap, "payments", len(producing.acked))
    assert set(producing.acked) <= set(consumed)
    state = kafka.describe_cluster_operation_v2(ClusterOperationArn=op["ClusterOperationArn"])
    assert state["ClusterOperationInfo"]["OperationState"] == "UPDATE_COMPLETE"


def partitions(service: Service, cluster: Cluster, topic: str, count: int) -> list[Any]:
    """The state of the topic's first `count` partitions (`Cluster.partition`), read on the
    service's loop."""
    return service.call(lambda: [cluster.partition(topic, p) for p in range(count)])


def advertised(address: str) -> dict[int, tuple[int, int]]:
    """What the broker at `address` answers to ApiVersions v3, over a raw socket."""
    with RawClient(address) as raw:
        req = ApiVersionsRequest(version=3, client_software_name="raw", client_software_version="1")
        resp = raw.request(req, 3)
    assert resp.error_code == 0
    return {k.api_key: (k.min_version, k.max_version) for k in resp.api_keys}


def test_kafka_version_update_rolls_the_brokers(kafka: Any, service: Service) -> None:
    arn, bootstrap = create(kafka, "rolling")
    make_topic(bootstrap, "orders", partitions=3)
    cluster = service.fleet.running()["rolling"]
    leaders = [p.leader for p in partitions(service, cluster, "orders", 3)]
    assert len(set(leaders)) == 3  # every broker leads one partition
    addresses = bootstrap.split(",")
    for address in addresses:
        table = advertised(address)
        assert table[CONSUMER_GROUP_HEARTBEAT] == (0, 0)  # 3.9's KIP-848 preview
        assert table[JOIN_GROUP][0] == 0
    version = kafka.describe_cluster(ClusterArn=arn)["ClusterInfo"]["CurrentVersion"]
    # only what GetCompatibleKafkaVersions lists
    (compatible,) = kafka.get_compatible_kafka_versions(ClusterArn=arn)["CompatibleKafkaVersions"]
    assert "3.8.x" not in compatible["TargetVersions"]
    code, status, _ = error_of(
        kafka.update_cluster_kafka_version,
        ClusterArn=arn,
        CurrentVersion=version,
        TargetKafkaVersion="3.8.x",
    )
    assert (code, status) == ("BadRequestException", 400)
    epochs = [p.leader_epoch for p in partitions(service, cluster, "orders", 3)]
    with Producing(bootstrap, "orders") as producing:
        producing.acked_more(100, "records acked before the update")
        op = kafka.update_cluster_kafka_version(
            ClusterArn=arn, CurrentVersion=version, TargetKafkaVersion="4.0.x"
        )
        assert kafka.describe_cluster(ClusterArn=arn)["ClusterInfo"]["State"] == "UPDATING"
        info = wait_state(kafka, arn)
        producing.acked_more(100, "records acked after the update")
    assert info["Provisioned"]["CurrentBrokerSoftwareInfo"]["KafkaVersion"] == "4.0.x"
    described = kafka.describe_cluster(ClusterArn=arn)["ClusterInfo"]
    assert described["CurrentBrokerSoftwareInfo"]["KafkaVersion"] == "4.0.x"
    operation = kafka.describe_cluster_operation(ClusterOperationArn=op["ClusterOperationArn"])[
        "ClusterOperationInfo"
    ]
    assert operation["OperationType"] == "UPDATE_CLUSTER_KAFKA_VERSION"
    assert operation["OperationState"] == "UPDATE_COMPLETE"
    assert [(s["StepName"], s["StepInfo"]["StepStatus"]) for s in operation["OperationSteps"]] == [
        ("INITIALIZE_UPDATE", "SUCCEEDED"),
        ("UPDATE_APPLY", "SUCCEEDED"),
        ("FINALIZE_UPDATE", "SUCCEEDED"),
    ]
    assert operation["TargetClusterInfo"]["KafkaVersion"] == "4.0.x"
    # every broker restarted (each leadership moved away and back to its preferred broker)
    wait_until(
        lambda: [p.leader for p in partitions(service, cluster, "orders", 3)] == leaders,
        "the preferred leaders back",
        60,
        interval=0.05,
    )
    for p, state in enumerate(partitions(service, cluster, "orders", 3)):
        assert state.leader_epoch >= epochs[p] + 2
    # the brokers speak 4.0 now: KIP-848 GA, JoinGroup v0-v1 gone (KIP-896)
    assert bootstrap == kafka.get_bootstrap_brokers(ClusterArn=arn)["BootstrapBrokerString"]
    for address in addresses:
        table = advertised(address)
        assert table[CONSUMER_GROUP_HEARTBEAT] == (0, 1)
        assert table[JOIN_GROUP][0] == 2
    assert producing.failed == []
    consumed = consume_all(bootstrap, "orders", len(producing.acked))
    assert set(producing.acked) <= set(consumed)
    # and no further update back: a downgrade is refused
    code, _, _ = error_of(
        kafka.update_cluster_kafka_version,
        ClusterArn=arn,
        CurrentVersion=described["CurrentVersion"],
        TargetKafkaVersion="3.9.x",
    )
    assert code == "BadRequestException"


SERVER_PROPERTIES = b"auto.create.topics.enable=true\nnum.partitions=2\nlog.retention.ms=3600000\n"


def test_configurations_create_revise_and_apply(kafka: Any) -> None:
    created = kafka.create_configuration(
        Name="retention", KafkaVersions=["3.9.x"], ServerProperties=SERVER_PROPERTIES
    )
    config_arn = created["Arn"]
    assert created["LatestRevision"]["Revision"] == 1 and created["State"] == "ACTIVE"
    code, status, message = error_of(
        kafka.create_configuration, Name="bad", ServerProperties=b"broker.id=7\n"
    )
    assert (code, status) == ("BadRequestException", 400)
    assert "Key 'broker.id' is not supported" in message
    code, status, _ = error_of(
        kafka.create_configuration, Name="retention", ServerProperties=SERVER_PROPERTIES
    )
    assert (code, status) == ("ConflictException", 409)

    arn, bootstrap = create(
        kafka, "configured", ConfigurationInfo={"Arn": config_arn, "Revision": 1}
    )
    admin = AdminClient({"bootstrap.servers": bootstrap})

    def broker_config(name: str) -> str:
        resource = ConfigResource("BROKER", "1")
        configs = admin.describe_configs([resource])[resource].result(10)
        return str(configs[name].value)

    assert broker_config("num.partitions") == "2"
    assert broker_config("log.retention.ms") == "3600000"

    revised = kafka.update_configuration(
        Arn=config_arn,
        Description="a day",
        ServerProperties=b"num.partitions=2\nlog.retention.ms=86400000\n",
    )
    assert revised["LatestRevision"]["Revision"] == 2
    revision = kafka.describe_configuration_revision(Arn=config_arn, Revision=2)
    assert revision["ServerProperties"] == b"num.partitions=2\nlog.retention.ms=86400000\n"
    revisions = kafka.list_configuration_revisions(Arn=config_arn)["Revisions"]
    assert [r["Revision"] for r in revisions] == [1, 2]
    described = kafka.describe_configuration(Arn=config_arn)
    assert described["LatestRevision"]["Description"] == "a day"
    assert [c["Name"] for c in kafka.list_configurations()["Configurations"]] == ["retention"]

    version = kafka.describe_cluster(ClusterArn=arn)["ClusterInfo"]["CurrentVersion"]
    op = kafka.update_cluster_configuration(
        ClusterArn=arn, CurrentVersion=version, ConfigurationInfo={"Arn": config_arn, "Revision": 2}
    )
    wait_state(kafka, arn)
    assert broker_config("log.retention.ms") == "86400000"  # applied live
    done = kafka.describe_cluster_operation(ClusterOperationArn=op["ClusterOperationArn"])
    assert done["ClusterOperationInfo"]["OperationState"] == "UPDATE_COMPLETE"
    software = kafka.describe_cluster(ClusterArn=arn)["ClusterInfo"]["CurrentBrokerSoftwareInfo"]
    assert software == {
        "ConfigurationArn": config_arn,
        "ConfigurationRevision": 2,
        "KafkaVersion": "3.9.x",
    }

    code, _, message = error_of(kafka.delete_configuration, Arn=config_arn)
    assert code == "BadRequestException" and "in use by configured" in message
    kafka.delete_cluster(ClusterArn=arn)
    wait_until(
        lambda: all(c["ClusterArn"] != arn for c in kafka.list_clusters_v2()["ClusterInfoList"]),
        "the cluster deleted",
        60,
    )
    assert kafka.delete_configuration(Arn=config_arn)["State"] == "DELETING"
    code, status, _ = error_of(kafka.describe_configuration, Arn=config_arn)
    assert (code, status) == ("NotFoundException", 404)


def test_errors_as_the_model_declares_them(kafka: Any, service: Service) -> None:
    missing = "arn:aws:kafka:us-east-1:123456789012:cluster/none/0000"
    assert error_of(kafka.describe_cluster_v2, ClusterArn=missing)[:2] == ("NotFoundException", 404)
    # UpdateBrokerCount declares no NotFoundException: MSK's BadRequestException instead
    code, status, _ = error_of(
        kafka.update_broker_count,
        ClusterArn=missing,
        CurrentVersion="X",
        TargetNumberOfBrokerNodes=6,
    )
    assert (code, status) == ("BadRequestException", 400)
    code, _, message = error_of(
        kafka.create_cluster_v2, ClusterName="odd", Provisioned=provisioned(brokers=4)
    )
    assert code == "BadRequestException" and "multiple of the number of client subnets" in message
    code, _, message = error_of(
        kafka.create_cluster_v2,
        ClusterName="sasl-plain",
        Provisioned=provisioned(ClientAuthentication={"Sasl": {"Scram": {"Enabled": True}}}),
    )
    assert code == "BadRequestException" and "encryption in transit" in message
    code, _, message = error_of(
        kafka.create_cluster_v2,
        ClusterName="old",
        Provisioned=provisioned() | {"KafkaVersion": "1.1.1"},
    )
    assert code == "BadRequestException" and "unknown Kafka version" in message
    code, _, message = error_of(kafka.list_replicators)
    assert code == "BadRequestException" and "does not emulate ListReplicators" in message

    arn, _ = create(kafka, "locked", brokers=2, subnets=SUBNETS[:2])
    assert error_of(kafka.create_cluster_v2, ClusterName="locked", Provisioned=provisioned())[
        :2
    ] == (
        "ConflictException",
        409,
    )
    version = kafka.describe_cluster_v2(ClusterArn=arn)["ClusterInfo"]["CurrentVersion"]
    code, _, message = error_of(
        kafka.update_broker_type,
        ClusterArn=arn,
        CurrentVersion="STALE",
        TargetInstanceType="kafka.m5.xlarge",
    )
    assert code == "BadRequestException" and "not the current version" in message
    kafka.update_broker_type(
        ClusterArn=arn, CurrentVersion=version, TargetInstanceType="kafka.m5.xlarge"
    )
    # the version moved: the same request again is refused (optimistic locking)
    code, _, _ = error_of(
        kafka.update_broker_type,
        ClusterArn=arn,
        CurrentVersion=version,
        TargetInstanceType="kafka.m5.xlarge",
    )
    assert code == "BadRequestException"
    info = wait_state(kafka, arn)
    assert info["Provisioned"]["BrokerNodeGroupInfo"]["InstanceType"] == "kafka.m5.xlarge"
    code, _, message = error_of(
        kafka.update_broker_count,
        ClusterArn=arn,
        CurrentVersion=info["CurrentVersion"],
        TargetNumberOfBrokerNodes=3,
    )
    assert code == "BadRequestException" and "multiple of the number of AZs" in message


def test_states_last_the_configured_delay(aws_env: None, checker: ResponseChecker) -> None:
    with Service(Cluster(brokers=1), aws_port=0, transition_delay=0.5) as svc:
        kafka = boto3.client("kafka", endpoint_url=svc.url, region_name="eu-west-1")
        kafka.meta.events.register("after-call.kafka", checker)
        arn = kafka.create_cluster_v2(
            ClusterName="slow", Provisioned=provisioned(brokers=2, subnets=SUBNETS[:2])
        )["ClusterArn"]
        assert arn.split(":")[3] == "eu-west-1"  # the signature's region
        assert kafka.describe_cluster_v2(ClusterArn=arn)["ClusterInfo"]["State"] == "CREATING"
        info = wait_state(kafka, arn)
        kafka.reboot_broker(ClusterArn=arn, BrokerIds=["1"])
        assert (
            kafka.describe_cluster_v2(ClusterArn=arn)["ClusterInfo"]["State"] == "REBOOTING_BROKER"
        )
        code, _, _ = error_of(
            kafka.update_broker_type,
            ClusterArn=arn,
            CurrentVersion=info["CurrentVersion"],
            TargetInstanceType="kafka.m5.xlarge",
        )
        assert code == "BadRequestException"  # not ACTIVE
        wait_state(kafka, arn)
    assert checker.problems == []


def test_list_filters_and_pages(kafka: Any) -> None:
    for name in ("app-a", "app-b", "other"):
        kafka.create_cluster_v2(
            ClusterName=name, Provisioned=provisioned(brokers=2, subnets=SUBNETS[:2])
        )
    pages = kafka.get_paginator("list_clusters_v2").paginate(PaginationConfig={"PageSize": 1})
    names = [c["ClusterName"] for page in pages for c in page["ClusterInfoList"]]
    assert names == ["msklite", "app-a", "app-b", "other"]
    listed = kafka.list_clusters_v2(ClusterNameFilter="app-", MaxResults=1)
    assert [c["ClusterName"] for c in listed["ClusterInfoList"]] == ["app-a"]
    listed = kafka.list_clusters_v2(ClusterNameFilter="app-", NextToken=listed["NextToken"])
    assert [c["ClusterName"] for c in listed["ClusterInfoList"]] == [
        "app-b"
    ] and "NextToken" not in listed
    assert kafka.list_clusters_v2(ClusterTypeFilter="SERVERLESS")["ClusterInfoList"] == []
    assert [
        c["ClusterName"] for c in kafka.list_clusters(ClusterNameFilter="oth")["ClusterInfoList"]
    ] == ["other"]
    code, _, _ = error_of(kafka.list_clusters_v2, NextToken="garbage")
    assert code == "BadRequestException"


def test_the_serve_cluster_is_listed(kafka: Any, service: Service) -> None:
    (info,) = kafka.list_clusters()["ClusterInfoList"]
    assert info["ClusterName"] == "msklite" and info["State"] == "ACTIVE"
    brokers = kafka.get_bootstrap_brokers(ClusterArn=info["ClusterArn"])
    assert brokers["BootstrapBrokerString"] == service.cluster.bootstrap_servers
    code, _, _ = error_of(kafka.delete_cluster, ClusterArn=info["ClusterArn"])
    assert code == "BadRequestException"


def test_versions_and_tags(kafka: Any) -> None:
    versions = [v["Version"] for v in kafka.list_kafka_versions()["KafkaVersions"]]
    assert "3.9.x" in versions and "2.8.1" in versions
    compatible = kafka.get_compatible_kafka_versions()["CompatibleKafkaVersions"]
    targets = {c["SourceVersion"]: c["TargetVersions"] for c in compatible}
    assert targets["3.8.x"][:3] == ["3.9.x", "4.0.x", "4.1.x"]  # upgrades only
    assert targets["3.9.x"] == targets["3.8.x"][1:]
    arn, _ = create(kafka, "tagged", brokers=2, subnets=SUBNETS[:2], KafkaVersion="3.8.x")
    (mine,) = kafka.get_compatible_kafka_versions(ClusterArn=arn)["CompatibleKafkaVersions"]
    assert mine["SourceVersion"] == "3.8.x"
    kafka.tag_resource(ResourceArn=arn, Tags={"env": "dev", "team": "a"})
    kafka.untag_resource(ResourceArn=arn, TagKeys=["team"])
    assert kafka.list_tags_for_resource(ResourceArn=arn)["Tags"] == {"env": "dev"}
    version = kafka.describe_cluster(ClusterArn=arn)["ClusterInfo"]["CurrentVersion"]
    code, _, _ = error_of(
        kafka.update_cluster_kafka_version,
        ClusterArn=arn,
        CurrentVersion=version,
        TargetKafkaVersion="3.6.0",
    )
    assert code == "BadRequestException"  # no downgrades
    kafka.update_cluster_kafka_version(
        ClusterArn=arn, CurrentVersion=version, TargetKafkaVersion="3.9.x"
    )
    info = wait_state(kafka, arn)
    assert info["Provisioned"]["CurrentBrokerSoftwareInfo"]["KafkaVersion"] == "3.9.x"
    code, status, _ = error_of(kafka.list_tags_for_resource, ResourceArn=arn + "-gone")
    assert (code, status) == ("NotFoundException", 404)


def test_scram_secrets_become_users_of_the_cluster(kafka: Any, service: Service) -> None:
    arn = kafka.create_cluster_v2(
        ClusterName="scram",
        Provisioned=provisioned(
            brokers=2,
            subnets=SUBNETS[:2],
            EncryptionInfo={"EncryptionInTransit": {"ClientBroker": "TLS"}},
            ClientAuthentication={"Sasl": {"Scram": {"Enabled": True}}},
        ),
    )["ClusterArn"]
    wait_state(kafka, arn)
    brokers = kafka.get_bootstrap_brokers(ClusterArn=arn)
    assert set(brokers) - {"ResponseMetadata"} == {"BootstrapBrokerStringSaslScram"}
    secret = "arn:aws:secretsmanager:us-east-1:123456789012:secret:AmazonMSK_alice-AbCdEf"
    wrong = "arn:aws:secretsmanager:us-east-1:123456789012:secret:alice-AbCdEf"
    unknown = "arn:aws:secretsmanager:us-east-1:123456789012:secret:AmazonMSK_bob-AbCdEf"
    result = kafka.batch_associate_scram_secret(
        ClusterArn=arn, SecretArnList=[secret, wrong, unknown]
    )
    errors = {u["SecretArn"]: u["ErrorCode"] for u in result["UnprocessedScramSecrets"]}
    assert errors == {wrong: "InvalidSecretName", unknown: "SecretNotFound"}
    assert kafka.list_scram_secrets(ClusterArn=arn)["SecretArnList"] == [secret]

    cluster = service.fleet.running()["scram"]
    assert cluster.ca_certificate is not None
    client = {
        "bootstrap.servers": brokers["BootstrapBrokerStringSaslScram"],
        "security.protocol": "SASL_SSL",
        "sasl.mechanism": "SCRAM-SHA-512",
        "sasl.username": "alice",
        "sasl.password": "alice-secret",
        "ssl.ca.location": cluster.ca_certificate,
    }
    producer = Producer(client)
    admin = AdminClient(client)
    admin.create_topics([NewTopic("secure", 1, 2)])["secure"].result(30)
    errors_seen: list[Any] = []
    producer.produce("secure", b"hello", on_delivery=lambda err, _: errors_seen.append(err))
    assert producer.flush(30) == 0 and errors_seen == [None]

    result = kafka.batch_disassociate_scram_secret(ClusterArn=arn, SecretArnList=[secret, unknown])
    assert [u["SecretArn"] for u in result["UnprocessedScramSecrets"]] == [unknown]
    assert kafka.list_scram_secrets(ClusterArn=arn)["SecretArnList"] == []
    controller = cluster.controller
    assert controller is not None
    assert service.call(lambda: "alice" not in controller.scram)


def test_serverless_and_iam_follow_what_msklite_serves(kafka: Any) -> None:
    from msklite.security.listeners import KINDS

    spec = {
        "VpcConfigs": [{"SubnetIds": SUBNETS}],
        "ClientAuthentication": {"Sasl": {"Iam": {"Enabled": True}}},
    }
    if "iam" in KINDS:
        arn = kafka.create_cluster_v2(ClusterName="sls", Serverless=spec)["ClusterArn"]
        info = wait_state(kafka, arn)
        assert info["ClusterType"] == "SERVERLESS" and "Provisioned" not in info
        brokers = kafka.get_bootstrap_brokers(ClusterArn=arn)
        assert set(brokers) - {"ResponseMetadata"} == {"BootstrapBrokerStringSaslIam"}
    else:
        code, _, message = error_of(kafka.create_cluster_v2, ClusterName="sls", Serverless=spec)
        assert code == "BadRequestException" and "IAM" in message
    code, _, message = error_of(
        kafka.create_cluster_v2,
        ClusterName="sls-open",
        Serverless={"VpcConfigs": spec["VpcConfigs"]},
    )
    assert code == "BadRequestException" and "require IAM" in message


def test_clusters_survive_a_restart(
    aws_env: None, tmp_path: Path, checker: ResponseChecker
) -> None:
    data = str(tmp_path / "data")
    with Service(Cluster(brokers=1, data_dir=data), aws_port=0) as svc:
        kafka = boto3.client("kafka", endpoint_url=svc.url, region_name="us-east-1")
        kafka.meta.events.register("after-call.kafka", checker)
        arn, bootstrap = create(kafka, "durable")
        make_topic(bootstrap, "kept")
        producer = Producer({"bootstrap.servers": bootstrap, "acks": "all"})
        producer.produce("kept", b"before the restart")
        assert producer.flush(30) == 0
        default_arn = next(
            c["ClusterArn"]
            for c in kafka.list_clusters_v2()["ClusterInfoList"]
            if c["ClusterName"] == "msklite"
        )
        kafka.tag_resource(ResourceArn=arn, Tags={"kept": "yes"})
    with Service(Cluster(brokers=1, data_dir=data), aws_port=0) as svc:
        kafka = boto3.client("kafka", endpoint_url=svc.url, region_name="us-east-1")
        kafka.meta.events.register("after-call.kafka", checker)
        listed = {c["ClusterName"]: c for c in kafka.list_clusters_v2()["ClusterInfoList"]}
        assert set(listed) == {"msklite", "durable"}
        assert listed["msklite"]["ClusterArn"] == default_arn
        assert listed["durable"]["State"] == "ACTIVE" and listed["durable"]["Tags"] == {
            "kept": "yes"
        }
        bootstrap = kafka.get_bootstrap_brokers(ClusterArn=arn)["BootstrapBrokerString"]
        assert consume_all(bootstrap, "kept", 1) == [b"before the restart"]
    assert checker.problems == []


@pytest.mark.parametrize(
    ("method", "path", "body", "parameter"),
    [
        ("POST", "/api/v2/clusters", b"{not json", None),
        ("POST", "/api/v2/clusters", b"[1, 2]", None),
        ("POST", "/api/v2/clusters", b'{"clusterName": 5}', "clusterName"),
        ("POST", "/api/v2/clusters", b"{}", "clusterName"),
        ("POST", "/api/v2/clusters", b'{"clusterName": ""}', "clusterName"),
        ("GET", "/api/v2/clusters?maxResults=lots", b"", "maxResults"),
        ("GET", "/api/v2/clusters?maxResults=0", b"", "maxResults"),
        (
            "POST",
            "/v1/configurations",
            b'{"name": "x", "serverProperties": "%%%"}',
            "serverProperties",
        ),
        (
            "POST",
            "/v1/clusters",
            b'{"clusterName": "x", "kafkaVersion": "3.9.x", "numberOfBrokerNodes": 3,'
            b' "brokerNodeGroupInfo": {"instanceType": "kafka.m5.large"}}',
            "clientSubnets",
        ),
    ],
)
def test_bad_requests_over_raw_http(
    service: Service, method: str, path: str, body: bytes, parameter: str | None
) -> None:
    import urllib.error
    import urllib.request

    assert service.url is not None
    request = urllib.request.Request(f"{service.url}{path}", data=body or None, method=method)
    with pytest.raises(urllib.error.HTTPError) as e:
        urllib.request.urlopen(request, timeout=10)
    assert e.value.code == 400
    assert e.value.headers["x-amzn-ErrorType"] == "BadRequestException"
    answer = json.loads(e.value.read())
    assert answer["message"]
    assert answer.get("invalidParameter") == parameter


def test_every_handler_is_an_operation_of_the_model() -> None:
    """A handler whose name matches no operation would never be routed."""
    from msklite.web.msk_api import API_VERSION, MskApi, _snake
    from msklite.web.restjson import load_service

    operations = {_snake(n): n for n in load_service("kafka", API_VERSION).operation_names}
    handlers = {n for n in vars(MskApi) if not n.startswith("_")}
    assert handlers <= set(operations), handlers - set(operations)
    assert {operations[h] for h in handlers} >= {
        "CreateCluster", "CreateClusterV2", "DescribeCluster", "DescribeClusterV2",
        "ListClusters", "ListClustersV2", "DeleteCluster", "GetBootstrapBrokers", "ListNodes",
        "UpdateBrokerCount", "UpdateBrokerStorage", "UpdateBrokerType", "RebootBroker",
        "UpdateClusterConfiguration", "UpdateClusterKafkaVersion", "CreateConfiguration",
        "DescribeConfiguration", "ListConfigurations", "UpdateConfiguration",
        "DescribeConfigurationRevision", "ListConfigurationRevisions", "DeleteConfiguration",
        "ListKafkaVersions", "GetCompatibleKafkaVersions", "ListClusterOperations",
        "ListClusterOperationsV2", "DescribeClusterOperation", "DescribeClusterOperationV2",
        "TagResource", "UntagResource", "ListTagsForResource", "BatchAssociateScramSecret",
        "BatchDisassociateScramSecret", "ListScramSecrets",
    }  # fmt: skip


def test_clusters_keep_their_ports_across_a_restart(
    aws_env: None, tmp_path: Path, checker: ResponseChecker, caplog: pytest.LogCaptureFixture
) -> None:
    data = str(tmp_path / "data")
    with Service(Cluster(brokers=1, data_dir=data), aws_port=0) as svc:
        kafka = boto3.client("kafka", endpoint_url=svc.url, region_name="us-east-1")
        kafka.meta.events.register("after-call.kafka", checker)
        arn, first = create(kafka, "steady", brokers=2, subnets=SUBNETS[:2])
        make_topic(first, "kept", rf=2)
    with Service(Cluster(brokers=1, data_dir=data), aws_port=0) as svc:
        kafka = boto3.client("kafka", endpoint_url=svc.url, region_name="us-east-1")
        kafka.meta.events.register("after-call.kafka", checker)
        again = kafka.get_bootstrap_brokers(ClusterArn=arn)["BootstrapBrokerString"]
        assert sorted(again.split(",")) == sorted(first.split(","))
        producer = Producer({"bootstrap.servers": again, "acks": "all"})
        producer.produce("kept", b"on the same ports")
        assert producer.flush(30) == 0
    # another process took broker 1's port meanwhile: it listens elsewhere, with a WARNING
    taken_address = sorted(first.split(","))[0]
    host, port = taken_address.rsplit(":", 1)
    with socket.create_server((host, int(port))):
        caplog.set_level(logging.WARNING, "msklite.web.fleet")
        with Service(Cluster(brokers=1, data_dir=data), aws_port=0) as svc:
            kafka = boto3.client("kafka", endpoint_url=svc.url, region_name="us-east-1")
            kafka.meta.events.register("after-call.kafka", checker)
            moved = kafka.get_bootstrap_brokers(ClusterArn=arn)["BootstrapBrokerString"]
            assert taken_address not in moved.split(",")
            assert set(moved.split(",")) & set(first.split(","))  # the other one stayed
            assert kafka.describe_cluster_v2(ClusterArn=arn)["ClusterInfo"]["State"] == "ACTIVE"
            assert consume_all(moved, "kept", 1) == [b"on the same ports"]
    assert any(
        r.levelno == logging.WARNING and f"port {port} is not free" in r.getMessage()
        for r in caplog.records
    )
    assert checker.problems == []


def test_a_cluster_that_cannot_start_is_failed(
    aws_env: None, tmp_path: Path, checker: ResponseChecker
) -> None:
    data = tmp_path / "data"
    with Service(Cluster(brokers=1, data_dir=str(data)), aws_port=0) as svc:
        kafka = boto3.client("kafka", endpoint_url=svc.url, region_name="us-east-1")
        kafka.meta.events.register("after-call.kafka", checker)
        broken, _ = create(kafka, "broken", brokers=2, subnets=SUBNETS[:2])
        healthy, _ = create(kafka, "healthy", brokers=2, subnets=SUBNETS[:2])
    # the broken cluster's data directory became a file: it cannot start
    (cluster_dir,) = [d for d in (data / "msk-api" / "clusters").iterdir() if d.name in broken]
    shutil.rmtree(cluster_dir)
    cluster_dir.write_text("not a directory")
    with Service(Cluster(brokers=1, data_dir=str(data)), aws_port=0) as svc:
        kafka = boto3.client("kafka", endpoint_url=svc.url, region_name="us-east-1")
        kafka.meta.events.register("after-call.kafka", checker)
        info = kafka.describe_cluster(ClusterArn=broken)["ClusterInfo"]
        assert info["State"] == "FAILED"
        assert info["StateInfo"]["Code"] == "InternalServerError"
        assert "did not start" in info["StateInfo"]["Message"]
        code, status, _ = error_of(kafka.get_bootstrap_brokers, ClusterArn=broken)
        assert (code, status) == ("BadRequestException", 400)
        # the others serve
        bootstrap = kafka.get_bootstrap_brokers(ClusterArn=healthy)["BootstrapBrokerString"]
        make_topic(bootstrap, "alive", rf=2)
        assert kafka.describe_cluster(ClusterArn=healthy)["ClusterInfo"]["State"] == "ACTIVE"
        # a FAILED cluster can be deleted, as on MSK
        kafka.delete_cluster(ClusterArn=broken)
        wait_until(
            lambda: (
                broken not in {c["ClusterArn"] for c in kafka.list_clusters_v2()["ClusterInfoList"]}
            ),
            "the failed cluster deleted",
            30,
        )
    assert checker.problems == []


def test_kafka_version_update_refuses_a_config_the_target_lacks(kafka: Any) -> None:
    config = kafka.create_configuration(
        Name="old-timestamps",
        ServerProperties=b"log.message.timestamp.difference.max.ms=60000\n",
    )
    arn, _ = create(
        kafka,
        "old-configs",
        brokers=2,
        subnets=SUBNETS[:2],
        ConfigurationInfo={"Arn": config["Arn"], "Revision": 1},
    )
    version = kafka.describe_cluster(ClusterArn=arn)["ClusterInfo"]["CurrentVersion"]
    code, status, message = error_of(
        kafka.update_cluster_kafka_version,
        ClusterArn=arn,
        CurrentVersion=version,
        TargetKafkaVersion="4.0.x",
    )
    assert (code, status) == ("BadRequestException", 400)
    assert "log.message.timestamp.difference.max.ms" in message  # removed in Kafka 4.0
    info = kafka.describe_cluster(ClusterArn=arn)["ClusterInfo"]
    assert (info["State"], info["CurrentVersion"]) == ("ACTIVE", version)
    assert info["CurrentBrokerSoftwareInfo"]["KafkaVersion"] == "3.9.x"


def test_an_update_cut_short_by_a_restart_is_failed(
    aws_env: None, tmp_path: Path, checker: ResponseChecker
) -> None:
    data = str(tmp_path / "data")
    with Service(Cluster(brokers=1, data_dir=data), aws_port=0) as svc:
        kafka = boto3.client("kafka", endpoint_url=svc.url, region_name="us-east-1")
        kafka.meta.events.register("after-call.kafka", checker)
        arn, _ = create(kafka, "cut-short", brokers=2, subnets=SUBNETS[:2])
        svc.fleet.transition_delay = 600  # the update is still in progress at the restart
        version = kafka.describe_cluster(ClusterArn=arn)["ClusterInfo"]["CurrentVersion"]
        op = kafka.update_broker_type(
            ClusterArn=arn, CurrentVersion=version, TargetInstanceType="kafka.m5.xlarge"
        )["ClusterOperationArn"]
        assert kafka.describe_cluster(ClusterArn=arn)["ClusterInfo"]["State"] == "UPDATING"
    with Service(Cluster(brokers=1, data_dir=data), aws_port=0) as svc:
        kafka = boto3.client("kafka", endpoint_url=svc.url, region_name="us-east-1")
        kafka.meta.events.register("after-call.kafka", checker)
        info = kafka.describe_cluster_operation(ClusterOperationArn=op)["ClusterOperationInfo"]
        assert info["OperationState"] == "UPDATE_FAILED"
        assert "restart" in info["ErrorInfo"]["ErrorString"]
        cluster = kafka.describe_cluster(ClusterArn=arn)["ClusterInfo"]
        assert cluster["State"] == "ACTIVE"
        assert cluster["BrokerNodeGroupInfo"]["InstanceType"] == "kafka.m5.large"
        # the create before it was done
        (created,) = [
            o
            for o in kafka.list_cluster_operations(ClusterArn=arn)["ClusterOperationInfoList"]
            if o["OperationType"] == "CREATE"
        ]
        assert created["OperationState"] == "UPDATE_COMPLETE"
    assert checker.problems == []
