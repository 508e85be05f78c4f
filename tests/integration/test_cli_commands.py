"""`msklite topic|group|produce|consume|cluster` run as a user runs them (a subprocess) against
an in-process cluster, checked with confluent-kafka (librdkafka) independently."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

from confluent_kafka import Consumer, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, ConfigResource, ResourceType

from msklite import Cluster

ENV = {**os.environ, "PYTHONUNBUFFERED": "1"}


def cli(
    cluster: Cluster, *args: str, stdin: str = "", ok: bool = True
) -> subprocess.CompletedProcess[str]:
    out = subprocess.run(
        [sys.executable, "-m", "msklite", *args, "--bootstrap", cluster.bootstrap_servers],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=60,
        env=ENV,
    )
    if ok:
        assert out.returncode == 0, out
    return out


def _admin(cluster: Cluster) -> AdminClient:
    return AdminClient({"bootstrap.servers": cluster.bootstrap_servers})


def test_topic_create_list_describe_alter_delete(msk_cluster: Cluster) -> None:
    created = cli(
        msk_cluster, "topic", "create", "cli-t", "-p", "3", "-r", "2", "-c", "retention.ms=60000"
    )
    assert created.stdout.strip() == "created topic cli-t: 3 partition(s), replication factor 2"
    admin = _admin(msk_cluster)
    meta = admin.list_topics(timeout=10).topics["cli-t"]
    assert len(meta.partitions) == 3
    assert all(len(p.replicas) == 2 for p in meta.partitions.values())

    listed = cli(msk_cluster, "topic", "list").stdout.splitlines()
    assert listed[0].split() == ["NAME", "PARTITIONS", "REPLICAS"]
    assert ["cli-t", "3", "2"] in [line.split() for line in listed]
    rows = json.loads(cli(msk_cluster, "topic", "list", "--json").stdout)
    assert {"name": "cli-t", "partitions": 3, "replicas": 2, "internal": False} in rows

    described = json.loads(cli(msk_cluster, "topic", "describe", "cli-t", "--json").stdout)
    (topic,) = described
    assert [p["partition"] for p in topic["partitions"]] == [0, 1, 2]
    for p in topic["partitions"]:
        assert p["leader"] == meta.partitions[p["partition"]].leader
        assert p["isr"] and set(p["isr"]) <= set(p["replicas"])
        assert (p["log_start"], p["log_end"]) == (0, 0)
    assert topic["configs"] == {"retention.ms": "60000"}
    text = cli(msk_cluster, "topic", "describe", "cli-t").stdout
    assert "LEADER" in text and "retention.ms=60000" in text

    cli(
        msk_cluster,
        "topic",
        "alter-config",
        "cli-t",
        "--set",
        "retention.ms=7000",
        "--set",
        "cleanup.policy=compact",
    )
    resource = ConfigResource(ResourceType.TOPIC, "cli-t")
    configs = admin.describe_configs([resource])[resource].result(timeout=10)
    assert configs["retention.ms"].value == "7000"
    assert configs["cleanup.policy"].value == "compact"
    cli(msk_cluster, "topic", "alter-config", "cli-t", "--delete", "cleanup.policy")
    configs = admin.describe_configs([resource])[resource].result(timeout=10)
    assert configs["cleanup.policy"].value == "delete"  # back to the default

    again = cli(msk_cluster, "topic", "create", "cli-t", ok=False)
    assert again.returncode == 1
    assert (
        again.stderr.strip()
        == "msklite: cli-t: TopicAlreadyExistsError: Topic 'cli-t' already exists."
        or (
            again.stderr.startswith("msklite: cli-t: TopicAlreadyExistsError")
            and len(again.stderr.strip().splitlines()) == 1
        )
    )
    assert cli(msk_cluster, "topic", "create", "cli-t", "--if-not-exists").returncode == 0

    cli(msk_cluster, "topic", "delete", "cli-t")
    assert "cli-t" not in admin.list_topics(timeout=10).topics
    gone = cli(msk_cluster, "topic", "describe", "cli-t", ok=False)
    assert gone.returncode == 1
    assert gone.stderr.splitlines() == ["msklite: cli-t: UnknownTopicOrPartitionError"]


def test_produce_lines_with_keys_and_headers_read_by_librdkafka(msk_cluster: Cluster) -> None:
    msk_cluster.create_topic("cli-p", 1)
    out = cli(
        msk_cluster,
        "produce",
        "cli-p",
        "-k",
        ":",
        "-H",
        "origin=cli",
        "-H",
        "n=1",
        stdin="k1:hello\nk2:a:b\nno key here\n",
    )
    assert out.stdout.strip() == "produced 3 record(s) to cli-p"
    consumer = Consumer(
        {
            "bootstrap.servers": msk_cluster.bootstrap_servers,
            "group.id": "cli-p-reader",
            "auto.offset.reset": "earliest",
        }
    )
    try:
        consumer.subscribe(["cli-p"])
        got: list[tuple[bytes | None, bytes | None, object]] = []
        deadline = time.monotonic() + 30
        while len(got) < 3 and time.monotonic() < deadline:
            m = consumer.poll(0.5)
            if m is not None and m.error() is None:
                got.append((m.key(), m.value(), m.headers()))
    finally:
        consumer.close()
    missing = cli(msk_cluster, "produce", "no-such-topic", "--timeout", "2", stdin="x\n", ok=False)
    assert missing.returncode == 1
    assert missing.stderr.splitlines() == ["msklite: topic no-such-topic does not exist"]
    headers = [("origin", b"cli"), ("n", b"1")]
    assert got == [
        (b"k1", b"hello", headers),
        (b"k2", b"a:b", headers),  # the first separator splits
        (None, b"no key here", headers),
    ]


def test_consume_what_librdkafka_produced_from_each_starting_point(msk_cluster: Cluster) -> None:
    msk_cluster.create_topic("cli-c", 1)
    producer = Producer({"bootstrap.servers": msk_cluster.bootstrap_servers})
    for i in range(5):
        producer.produce(
            "cli-c",
            value=f"v{i}".encode(),
            key=f"k{i}".encode(),
            headers=[("i", str(i).encode())],
            timestamp=1_700_000_000_000 + i * 1000,
        )
    assert producer.flush(10) == 0

    def consume(*args: str) -> str:
        return cli(msk_cluster, "consume", "cli-c", *args, "--idle", "1").stdout

    assert consume("-o", "beginning", "-n", "5", "-f", "%p:%o %k=%s %h %T\\n").splitlines() == [
        f"0:{i} k{i}=v{i} i={i} {1_700_000_000_000 + i * 1000}" for i in range(5)
    ]
    assert consume("-o", "3", "-f", "%s,").strip() == "v3,v4,"
    assert consume("-o", "@1700000002500", "-f", "%o ").split() == ["3", "4"]
    assert consume("-o", "end", "-f", "%s") == ""
    records = [
        json.loads(line) for line in consume("-o", "beginning", "-n", "2", "--json").splitlines()
    ]
    assert records[1] == {
        "topic": "cli-c",
        "partition": 0,
        "offset": 1,
        "timestamp": 1_700_000_001_000,
        "key": "k1",
        "value": "v1",
        "headers": {"i": "1"},
    }
    missing = cli(msk_cluster, "consume", "no-such-topic", "--timeout", "3", ok=False)
    assert missing.returncode == 1
    assert missing.stderr.splitlines() == ["msklite: topic no-such-topic does not exist"]


def test_group_lag_reset_and_reread(msk_cluster: Cluster) -> None:
    msk_cluster.create_topic("cli-g", 2)
    producer = Producer({"bootstrap.servers": msk_cluster.bootstrap_servers})
    for i in range(10):
        producer.produce("cli-g", value=b"x", partition=i % 2)
    assert producer.flush(10) == 0
    consumer = Consumer(
        {
            "bootstrap.servers": msk_cluster.bootstrap_servers,
            "group.id": "cli-grp",
            "enable.auto.commit": False,
        }
    )
    # the group read 2 of partition 0's 5 records and 4 of partition 1's
    consumer.commit(
        offsets=[TopicPartition("cli-g", 0, 2), TopicPartition("cli-g", 1, 4)], asynchronous=False
    )
    consumer.close()

    listed = json.loads(cli(msk_cluster, "group", "list", "--json").stdout)
    assert {"group": "cli-grp", "state": "Empty", "type": "classic"} in listed
    (group,) = json.loads(cli(msk_cluster, "group", "describe", "cli-grp", "--json").stdout)
    assert group["state"] == "Empty"
    assert [
        (p["partition"], p["current_offset"], p["log_end_offset"], p["lag"])
        for p in group["partitions"]
    ] == [(0, 2, 5, 3), (1, 4, 5, 1)]
    text = cli(msk_cluster, "group", "describe", "cli-grp").stdout.splitlines()
    assert text[1].split()[:5] == ["TOPIC", "PARTITION", "CURRENT-OFFSET", "LOG-END-OFFSET", "LAG"]
    assert text[2].split()[:5] == ["cli-g", "0", "2", "5", "3"]

    cli(msk_cluster, "group", "reset-offsets", "cli-grp", "--topic", "cli-g", "--to-earliest")
    admin = _admin(msk_cluster)
    from confluent_kafka import ConsumerGroupTopicPartitions

    fut = admin.list_consumer_group_offsets([ConsumerGroupTopicPartitions("cli-grp")])
    offsets = fut["cli-grp"].result(timeout=10).topic_partitions
    assert sorted((tp.partition, tp.offset) for tp in offsets) == [(0, 0), (1, 0)]

    reread = cli(msk_cluster, "consume", "cli-g", "-g", "cli-grp", "-n", "10", "-f", "%p ")
    assert sorted(reread.stdout.split()) == ["0"] * 5 + ["1"] * 5
    (group,) = json.loads(cli(msk_cluster, "group", "describe", "cli-grp", "--json").stdout)
    assert [p["lag"] for p in group["partitions"]] == [0, 0]

    cli(msk_cluster, "group", "delete", "cli-grp")
    assert "cli-grp" not in [
        g["group"] for g in json.loads(cli(msk_cluster, "group", "list", "--json").stdout)
    ]


def test_cluster_describe(msk_cluster: Cluster) -> None:
    data = json.loads(cli(msk_cluster, "cluster", "describe", "--json").stdout)
    assert msk_cluster.controller is not None
    assert data["cluster_id"] == msk_cluster.controller.cluster_id
    assert [b["id"] for b in data["brokers"]] == [1, 2, 3]
    assert [b["rack"] for b in data["brokers"]] == [i.rack for i in msk_cluster.infos]
    text = cli(msk_cluster, "cluster", "describe").stdout.splitlines()
    assert text[1].split() == ["ID", "HOST", "PORT", "RACK", "LEADERS"]


def test_unreachable_bootstrap_is_one_clear_line() -> None:
    started = time.monotonic()
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "msklite",
            "topic",
            "list",
            "--bootstrap",
            "127.0.0.1:1",
            "--timeout",
            "2",
        ],
        capture_output=True,
        text=True,
        timeout=60,
        env=ENV,
    )
    assert out.returncode == 1
    assert out.stderr.splitlines() == ["msklite: no broker reachable at 127.0.0.1:1 within 2 s"]
    assert time.monotonic() - started < 30


def test_serve_console_lists_and_describes_topics_and_groups(msk_cluster: Cluster) -> None:
    from msklite.console import execute

    msk_cluster.create_topic("console-t", 2)
    consumer = Consumer(
        {
            "bootstrap.servers": msk_cluster.bootstrap_servers,
            "group.id": "console-g",
            "enable.auto.commit": False,
        }
    )
    consumer.commit(offsets=[TopicPartition("console-t", 1, 0)], asynchronous=False)
    consumer.close()

    def console(line: str) -> str:
        said: list[str] = []
        msk_cluster._run(execute(msk_cluster, line, said.append))
        return "\n".join(said)

    assert ["console-t", "2", "3"] in [line.split() for line in console("topic list").splitlines()]
    described = console("topic describe console-t").splitlines()
    assert described[0].startswith("Topic console-t ")
    assert [line.split()[0] for line in described[2:]] == ["0", "1"]
    assert "console-g" in console("group list")
    group = console("group describe console-g").splitlines()
    assert group[0].startswith("Group console-g  state Empty")
    assert group[2].split()[:5] == ["console-t", "1", "0", "0", "0"]
    assert console("topic describe nope") == "msklite: nope: UnknownTopicOrPartitionError"
    assert "topic list | topic describe NAME" in console("topic")  # the help
