"""Producer throughput: confluent-kafka into msklite and into librdkafka's mock cluster.

One producer (acks=1, linger.ms=5, no compression) writes `messages` values of `value_size`
random bytes into a 1-partition topic. Each run gets a fresh broker process:
- msklite: `python -m msklite serve --ephemeral --brokers 3 --port 0`, topic created with the
  AdminClient (replication factor 1);
- mock: `/work/shared/peers/rdkafka_mock_broker.py --brokers 3 --topic bench1:1:3`.
Runs alternate (msklite, mock, msklite, mock, ...) so that drifting background load hits both.
The clock runs from the first timed produce() until flush() has returned with nothing left;
before it, the producer fetches metadata and delivers one warm-up message, so connections
are already open. The broker's CPU time (utime+stime from /proc) is read around the same span.
"""

from __future__ import annotations

import itertools
import logging
import os
import time
from collections.abc import Callable
from typing import Any

from confluent_kafka import Consumer, KafkaException, Producer, TopicPartition
from confluent_kafka.admin import AdminClient
from confluent_kafka.cimpl import NewTopic

from benchmarks.procs import BenchError, BrokerProcess, mock_command, msklite_command
from benchmarks.report import Section, summary

TOPIC = "bench1"
GIB = 1 << 30
_logger_ids = itertools.count()


class RdkafkaLog(logging.Handler):
    """Collects librdkafka's log lines (instead of letting them spray stderr)."""

    KEEP = 20

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.count = 0
        self.warnings = 0
        self.lines: list[str] = []
        self.logger = logging.getLogger(f"benchmarks.rdkafka.{next(_logger_ids)}")
        self.logger.propagate = False
        self.logger.setLevel(logging.DEBUG)
        self.logger.addHandler(self)

    def emit(self, record: logging.LogRecord) -> None:
        self.count += 1
        if record.levelno >= logging.WARNING:
            self.warnings += 1
        if len(self.lines) < self.KEEP:
            self.lines.append(f"{record.levelname}: {record.getMessage()}")

    def detach(self) -> None:
        self.logger.removeHandler(self)

    def report(self) -> dict[str, Any]:
        return {"count": self.count, "warnings": self.warnings, "first": self.lines}


def _client_cpu() -> float:
    t = os.times()
    return t.user + t.system


def _create_topic(
    bootstrap: str, timeout: float, log: RdkafkaLog, replication_factor: int = 1
) -> None:
    admin = AdminClient({"bootstrap.servers": bootstrap}, logger=log.logger)
    futures = admin.create_topics(
        [NewTopic(TOPIC, num_partitions=1, replication_factor=replication_factor)],
        operation_timeout=timeout,
    )
    try:
        futures[TOPIC].result(timeout=timeout)
    except (KafkaException, TimeoutError) as e:
        raise BenchError(f"CreateTopics failed: {e!r}") from e


def _high_watermark(bootstrap: str, timeout: float, log: RdkafkaLog) -> int:
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": "msklite-bench",
            "enable.auto.commit": False,
            "logger": log.logger,
        }
    )
    try:
        _low, high = consumer.get_watermark_offsets(TopicPartition(TOPIC, 0), timeout=timeout)
        return int(high)
    finally:
        consumer.close()


def _produce(
    bootstrap: str,
    broker_cpu: Callable[[], tuple[float, float]],
    messages: int,
    value_size: int,
    linger_ms: int,
    deadline: float,
    log: RdkafkaLog,
    acks: str = "1",
) -> dict[str, Any]:
    failures: list[str] = []

    def on_delivery(err: Any, _msg: Any) -> None:
        if err is not None:
            failures.append(str(err))

    producer = Producer(
        {
            "bootstrap.servers": bootstrap,
            "client.id": "msklite-bench",
            "acks": acks,
            "linger.ms": linger_ms,
            "compression.type": "none",
            "enable.idempotence": False,
            "delivery.report.only.error": True,
            "on_delivery": on_delivery,
            "message.timeout.ms": 60000,
            "logger": log.logger,
        }
    )
    try:
        return _timed_produce(producer, failures, broker_cpu, messages, value_size, deadline)
    except BaseException:
        producer.purge()  # drop what is still queued so that the producer can go away at once
        producer.flush(0)
        raise


def _timed_produce(
    producer: Producer,
    failures: list[str],
    broker_cpu: Callable[[], tuple[float, float]],
    messages: int,
    value_size: int,
    deadline: float,
) -> dict[str, Any]:
    value = os.urandom(value_size)
    producer.list_topics(TOPIC, timeout=max(deadline - time.monotonic(), 1.0))
    producer.produce(TOPIC, value, partition=0)
    if producer.flush(max(deadline - time.monotonic(), 1.0)) or failures:
        raise BenchError(f"warm-up message not delivered: {failures[:1]}")

    produce = producer.produce
    (user0, sys0), client0, t0 = broker_cpu(), _client_cpu(), time.perf_counter()
    for i in range(messages):
        while True:
            try:
                produce(TOPIC, value, partition=0)
                break
            except BufferError:  # local queue full: let librdkafka drain it
                producer.poll(0.001)
        if i % 4096 == 0:
            producer.poll(0)
            if time.monotonic() > deadline:
                raise BenchError(f"time limit hit after {i} of {messages} produce() calls")
    remaining = messages
    while remaining and time.monotonic() < deadline:
        remaining = producer.flush(min(1.0, max(deadline - time.monotonic(), 0.01)))
    elapsed = time.perf_counter() - t0
    (user1, sys1), client1 = broker_cpu(), _client_cpu()
    cpu = (user1 - user0) + (sys1 - sys0)
    if remaining:
        raise BenchError(f"time limit hit with {remaining} messages undelivered")
    if failures:
        raise BenchError(f"{len(failures)} delivery failures, first: {failures[0]}")
    payload = messages * value_size
    return {
        "elapsed_s": elapsed,
        "msg_per_s": messages / elapsed,
        "mb_per_s": payload / elapsed / 1e6,
        "broker_cpu_s": cpu,
        "broker_user_s": user1 - user0,
        "broker_sys_s": sys1 - sys0,
        "broker_cpu_s_per_gib": cpu / (payload / GIB),
        "client_cpu_s": client1 - client0,
    }


def _measure(
    server: BrokerProcess,
    bootstrap: str,
    messages: int,
    value_size: int,
    linger_ms: int,
    deadline: float,
    log: RdkafkaLog,
    acks: str = "1",
) -> dict[str, Any]:
    result = _produce(
        bootstrap, server.cpu_times, messages, value_size, linger_ms, deadline, log, acks
    )
    result["high_watermark"] = _high_watermark(bootstrap, 10.0, log)
    result["rss_kib_after"] = server.rss_kib()
    server.check_alive()
    result["exit_code"] = server.stop()
    # the mock announces itself on stderr with "# ..." lines; anything else is worth a look
    stderr = "\n".join(
        line for line in server.stderr_tail().splitlines() if not line.startswith("# ")
    )
    if stderr:
        result["stderr_tail"] = stderr
    return result


def _run_msklite(
    messages: int,
    value_size: int,
    linger_ms: int,
    timeout: float,
    brokers: int,
    loop: str,
    log: RdkafkaLog,
    acks: str = "1",
    replication_factor: int = 1,
) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    with BrokerProcess("msklite", msklite_command(brokers, 0, loop)) as server:
        _, line = server.wait_line("Bootstrap servers:", 30.0)
        bootstrap = line.split(":", 1)[1].strip()
        _create_topic(bootstrap, 30.0, log, replication_factor)
        return _measure(server, bootstrap, messages, value_size, linger_ms, deadline, log, acks)


def _run_mock(
    messages: int,
    value_size: int,
    linger_ms: int,
    timeout: float,
    brokers: int,
    loop: str,
    log: RdkafkaLog,
) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    with BrokerProcess("mock", mock_command(brokers, [f"{TOPIC}:1:{brokers}"])) as server:
        _, line = server.wait_line("BOOTSTRAP ", 30.0)
        bootstrap = line.split(" ", 1)[1].strip()
        return _measure(server, bootstrap, messages, value_size, linger_ms, deadline, log)


def run(
    messages: int,
    rounds: int,
    value_size: int = 1024,
    linger_ms: int = 5,
    timeout: float = 180.0,
    brokers: int = 3,
    loop: str = "default",
) -> Section:
    section = Section("throughput")
    targets: dict[str, Callable[..., dict[str, Any]]] = {
        "msklite": _run_msklite,
        "mock": _run_mock,
    }
    runs: dict[str, list[dict[str, Any]]] = {name: [] for name in targets}
    for r in range(rounds):
        for name, fn in targets.items():
            log = RdkafkaLog()
            try:
                result = fn(messages, value_size, linger_ms, timeout, brokers, loop, log)
            except (BenchError, KafkaException, OSError) as e:
                section.errors.append(f"{name} round {r + 1}: {e!r}")
                if log.lines:
                    section.errors.append(f"{name} round {r + 1}: librdkafka: {log.lines[0]}")
                continue
            finally:
                log.detach()
            result["round"] = r + 1
            result["rdkafka_log"] = log.report()
            if log.warnings:
                section.errors.append(
                    f"{name} round {r + 1}: {log.warnings} librdkafka warnings, e.g. {log.lines[0]}"
                )
            expected = messages + 1  # the warm-up message
            if result["high_watermark"] != expected:
                section.errors.append(
                    f"{name} round {r + 1}: high watermark {result['high_watermark']}"
                    f" != {expected} messages produced"
                )
            if result.get("exit_code", 0) != 0:
                section.errors.append(f"{name} round {r + 1}: exit code {result['exit_code']}")
            if result.get("stderr_tail"):
                section.errors.append(
                    f"{name} round {r + 1}: broker stderr: {result['stderr_tail'][-300:]}"
                )
            runs[name].append(result)

    def med(name: str, key: str) -> float | None:
        return summary([float(x[key]) for x in runs[name]])["median"]

    section.data = {
        "messages": messages,
        "value_size": value_size,
        "linger_ms": linger_ms,
        "acks": 1,
        "partitions": 1,
        "rounds": rounds,
        "server_loop": loop,
        "runs": runs,
        "summary": {
            name: {
                key: summary([float(x[key]) for x in runs[name]])
                for key in (
                    "msg_per_s",
                    "mb_per_s",
                    "broker_cpu_s_per_gib",
                    "broker_user_s",
                    "broker_sys_s",
                    "client_cpu_s",
                )
            }
            for name in targets
        },
    }
    for name in targets:
        n = len(runs[name])
        if not n:
            section.row(f"{name}", "failed", "no successful run")
            continue
        rates = ", ".join(f"{x['msg_per_s'] / 1000:.0f}k" for x in runs[name])
        section.row(
            f"{name} msg/s", f"{(med(name, 'msg_per_s') or 0):,.0f}", f"median of {n}: {rates}"
        )
        gib = messages * value_size / GIB
        user = (med(name, "broker_user_s") or 0) / gib
        system = (med(name, "broker_sys_s") or 0) / gib
        section.row(f"{name} MB/s", f"{(med(name, 'mb_per_s') or 0):.1f}", "payload, 1e6 B")
        section.row(
            f"{name} broker CPU per GiB",
            f"{(med(name, 'broker_cpu_s_per_gib') or 0):.2f} s",
            f"median; user {user:.2f} s + sys {system:.2f} s per GiB",
        )
        client = [x["client_cpu_s"] / x["elapsed_s"] for x in runs[name]]
        section.row(
            f"{name} client CPU", f"{summary(client)['median'] or 0:.2f} cores", "producer side"
        )
    mine, theirs = med("msklite", "msg_per_s"), med("mock", "msg_per_s")
    ratio = mine / theirs if mine and theirs else None
    section.data["ratio_msklite_over_mock"] = ratio
    section.row("ratio msklite/mock", "n/a" if ratio is None else f"{ratio:.2f}", "median msg/s")
    return section
