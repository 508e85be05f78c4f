"""What security costs: a producer's throughput over each listener MSK offers, and the handshake
of a new connection on each, against one `msklite serve` process in the same run.

The process serves 3 brokers with every listener kind (`--auth plaintext,tls,scram,iam`):
PLAINTEXT, TLS, SASL_SSL with SCRAM-SHA-512 (a `--scram-user`) and SASL_SSL with IAM
(permissive: any well-formed signature of fixed, fake keys is accepted, so no AWS account or
credentials are involved).

- produce: per listener and per acks (1 and all), a fresh confluent-kafka `Producer` configured
  as an MSK client would be (TLS with msklite's CA; SCRAM-SHA-512; OAUTHBEARER with a token from
  aws-msk-iam-sasl-signer-python, the MSK IAM client library's form for librdkafka) connects
  and delivers one warm-up record per partition to a fresh topic of 3 partitions at RF 3; the
  machine is prepared (`warm.py`), then N records of 1 KiB (linger.ms=5, no compression,
  idempotence off) are timed from the first `produce()` to `flush()` returning. After a
  warm-up round (N/4 records each, not kept), each round runs every (acks, listener) pair, the
  listener order rotating per round so that drifting background load hits all alike; the
  figure is the median over rounds, the ratio the median over rounds of each round's figure
  over that round's plaintext one. The topic is deleted after its run.
- handshake: per listener, M new connections opened one after the other from this process,
  each doing what a client does before its first real request: TCP connect, the TLS
  handshake (full: no session resumption, as librdkafka), ApiVersions, and on the SASL
  listeners SaslHandshake v1 and SaslAuthenticate v2 (SCRAM-SHA-512's two round trips with
  kafka-python's SCRAM client; AWS_MSK_IAM's one, a SigV4 payload signed by kafka-python's
  MSK IAM client), then closed. Figures: connections per second (the client's wall time per
  connection, its own TLS and hashing included) and the broker process's CPU per connection.

Targets: none (issue 12 asks for these figures in its closing note). The machine's 2 cores are
shared: figures move with other load (the JSON keeps the load average before the section).

    python -m benchmarks --only security
"""

from __future__ import annotations

import os
import socket
import ssl
import statistics
import struct
import time
from collections.abc import Callable
from typing import Any

from botocore.credentials import CredentialProvider, Credentials
from confluent_kafka import Producer
from confluent_kafka.admin import AdminClient, NewTopic
from kafka.net.sasl.msk import AwsMskIamClient
from kafka.net.sasl.scram import ScramClient
from kafka.protocol.metadata.api_versions import ApiVersionsRequest
from kafka.protocol.sasl import SaslAuthenticateRequest, SaslHandshakeRequest

from benchmarks import warm
from benchmarks.procs import BenchError, BrokerProcess, free_port_block, msklite_command
from benchmarks.report import Section, summary

RECORD_BYTES = 1024
PARTITIONS = 3
USER, PASSWORD = "bench", "bench-secret"
# Fixed fake keys: msklite's permissive IAM listener accepts any well-formed signature.
KEY_ID, SECRET, REGION = "AKIAMSKLITEBENCH0000", "msklite-bench-secret-key", "us-east-1"
# (name, the serve line that carries its bootstrap string)
LISTENERS = (
    ("plaintext", "Bootstrap servers: "),
    ("TLS", "Bootstrap servers (TLS): "),
    ("SASL/SCRAM", "Bootstrap servers (SASL/SCRAM): "),
    ("IAM", "Bootstrap servers (IAM): "),
)
ACKS = ("1", "all")
START_TIMEOUT_S = 60.0
# with --port P, a listener kind's ports start at P, P+100, P+200, P+300 (3 brokers each)
PORT_OFFSETS = tuple(kind * 100 + broker for kind in range(4) for broker in range(3))


class _FakeKeys(CredentialProvider):  # type: ignore[misc]
    METHOD = "msklite-bench"

    def load(self) -> Credentials:
        return Credentials(KEY_ID, SECRET)


def _oauth_cb(_config: str) -> tuple[str, float]:
    from aws_msk_iam_sasl_signer import MSKAuthTokenProvider

    token, expiry_ms = MSKAuthTokenProvider.generate_auth_token_from_credentials_provider(
        REGION, _FakeKeys()
    )
    return token, expiry_ms / 1000


def client_config(listener: str, bootstrap: str, ca: str) -> dict[str, Any]:
    """The confluent-kafka settings of an MSK client of `listener`."""
    conf: dict[str, Any] = {"bootstrap.servers": bootstrap}
    if listener == "plaintext":
        return conf
    conf |= {"ssl.ca.location": ca}
    if listener == "TLS":
        return conf | {"security.protocol": "SSL"}
    conf |= {"security.protocol": "SASL_SSL"}
    if listener == "SASL/SCRAM":
        return conf | {
            "sasl.mechanism": "SCRAM-SHA-512",
            "sasl.username": USER,
            "sasl.password": PASSWORD,
        }
    return conf | {"sasl.mechanism": "OAUTHBEARER", "oauth_cb": _oauth_cb}


def _produce(conf: dict[str, Any], topic: str, acks: str, messages: int) -> float:
    """Records per second: `messages` of 1 KiB from the first produce() to flush()."""
    failures: list[str] = []

    def on_delivery(err: Any, _msg: Any) -> None:
        if err is not None:
            failures.append(str(err))

    producer = Producer(
        conf
        | {
            "acks": acks,
            "linger.ms": 5,
            "compression.type": "none",
            "enable.idempotence": False,
            "delivery.report.only.error": True,
            "on_delivery": on_delivery,
            "message.timeout.ms": 60000,
        }
    )
    value = os.urandom(RECORD_BYTES)
    for p in range(PARTITIONS):  # opens (and authenticates) the connection to every leader
        producer.produce(topic, value, partition=p)
    if producer.flush(60) or failures:
        raise BenchError(f"{topic}: warm-up not delivered: {failures[:1]}")
    warm.warm_up(warm.mib_for_load(messages * RECORD_BYTES, 4))
    t0 = time.perf_counter()
    for i in range(messages):
        while True:
            try:
                producer.produce(topic, value, partition=i % PARTITIONS)
                break
            except BufferError:  # local queue full: let librdkafka drain it
                producer.poll(0.001)
    if producer.flush(120) or failures:
        raise BenchError(f"{topic}: {len(failures)} delivery failures: {failures[:1]}")
    return messages / (time.perf_counter() - t0)


class _Connection:
    """One client connection doing a client's first exchanges, with kafka-python's request
    classes over a blocking socket (TLS-wrapped on every listener but plaintext)."""

    def __init__(self, address: tuple[str, int], tls: ssl.SSLContext | None) -> None:
        sock = socket.create_connection(address, timeout=10)
        self.sock = tls.wrap_socket(sock, server_hostname=address[0]) if tls else sock
        self.correlation = 0

    def request(self, req: Any, version: int) -> Any:
        self.correlation += 1
        req.with_header(correlation_id=self.correlation, client_id="bench")
        self.sock.sendall(bytes(req.encode(version=version, header=True, framed=True)))
        (size,) = struct.unpack(">i", self._read(4))
        return req.header.get_response_class().decode(
            self._read(size), version=version, header=True
        )

    def _read(self, n: int) -> bytes:
        buf = bytearray()
        while len(buf) < n:
            chunk = self.sock.recv(n - len(buf))
            if not chunk:
                raise BenchError("connection closed by the broker")
            buf += chunk
        return bytes(buf)

    def authenticate(self, mechanism: str, tokens: Callable[[bytes], bytes | None]) -> None:
        """SaslHandshake v1, then SaslAuthenticate v2 while `tokens` (given the server's last
        answer) has something to send."""
        hs = self.request(SaslHandshakeRequest(mechanism=mechanism), 1)
        if hs.error_code:
            raise BenchError(f"SaslHandshake {mechanism}: error {hs.error_code}")
        answer = b""
        while (token := tokens(answer)) is not None:
            resp = self.request(SaslAuthenticateRequest(auth_bytes=token), 2)
            if resp.error_code:
                raise BenchError(f"{mechanism}: {resp.error_code} {resp.error_message}")
            answer = resp.auth_bytes

    def close(self) -> None:
        self.sock.close()


def _scram_tokens() -> Callable[[bytes], bytes | None]:
    client = ScramClient(USER, PASSWORD, "SCRAM-SHA-512")
    step = 0

    def next_token(answer: bytes) -> bytes | None:
        nonlocal step
        step += 1
        if step == 1:
            return bytes(client.first_message())
        if step == 2:
            client.process_server_first_message(answer)
            return bytes(client.final_message())
        client.process_server_final_message(answer)  # checks the server's signature
        return None

    return next_token


def _iam_tokens(host: str) -> Callable[[bytes], bytes | None]:
    sent = False

    def next_token(_answer: bytes) -> bytes | None:
        nonlocal sent
        if sent:
            return None
        sent = True
        return bytes(AwsMskIamClient(host, KEY_ID, SECRET, REGION).first_message())

    return next_token


def connect_once(listener: str, address: tuple[str, int], tls: ssl.SSLContext | None) -> None:
    """One new connection through `listener`'s whole handshake, then closed."""
    conn = _Connection(address, tls)
    try:
        if conn.request(ApiVersionsRequest(), 0).error_code:
            raise BenchError("ApiVersions failed")
        if listener == "SASL/SCRAM":
            conn.authenticate("SCRAM-SHA-512", _scram_tokens())
        elif listener == "IAM":
            conn.authenticate("AWS_MSK_IAM", _iam_tokens(address[0]))
    finally:
        conn.close()


def handshakes(
    broker: BrokerProcess, listener: str, bootstrap: str, ca: str, count: int
) -> dict[str, float]:
    host, port = bootstrap.split(",")[0].rsplit(":", 1)
    address = (host, int(port))
    tls = None if listener == "plaintext" else ssl.create_default_context(cafile=ca)
    for _ in range(3):  # warm-up
        connect_once(listener, address, tls)
    cpu0, t0 = broker.cpu_seconds(), time.perf_counter()
    for _ in range(count):
        connect_once(listener, address, tls)
    wall = time.perf_counter() - t0
    cpu = broker.cpu_seconds() - cpu0
    return {
        "connections": count,
        "per_s": count / wall,
        "ms_per_connection": 1000 * wall / count,
        "broker_cpu_ms_per_connection": 1000 * cpu / count,
    }


def _free_port_layout(attempts: int = 50) -> int:
    """A port P such that every listener port of `--port P` is free right now (racy, as
    always): 12 ports, not a block of 303, which a busy machine rarely has."""
    for _ in range(attempts):
        base = free_port_block(3)
        if base + PORT_OFFSETS[-1] > 65535:
            continue
        held: list[socket.socket] = []
        try:
            for offset in PORT_OFFSETS:
                s = socket.socket()
                held.append(s)
                s.bind(("127.0.0.1", base + offset))
        except OSError:
            continue
        finally:
            for s in held:
                s.close()
        return base
    raise BenchError("no free ports for the four listeners")


def measure(messages: int, rounds: int, connections: int) -> dict[str, Any]:
    port = _free_port_layout()
    auth = ["--auth", "plaintext,tls,scram,iam", "--scram-user", f"{USER}:{PASSWORD}"]
    argv = [*msklite_command(3, port), *auth]
    rates: dict[str, dict[str, list[float]]] = {a: {n: [] for n, _ in LISTENERS} for a in ACKS}
    with BrokerProcess("msklite", argv) as broker:
        bootstraps = {
            name: broker.wait_line(line, START_TIMEOUT_S)[1].split(": ", 1)[1].strip()
            for name, line in LISTENERS
        }
        ca = broker.wait_line("CA certificate: ", START_TIMEOUT_S)[1].split(": ", 1)[1].strip()
        admin = AdminClient({"bootstrap.servers": bootstraps["plaintext"]})
        names = [n for n, _ in LISTENERS]
        # round -1 is a warm-up, not kept: the broker's first runs (its heap and log files
        # growing into new memory) ran at a third of the later ones' rate
        for r in range(-1, rounds):
            order = names[r % len(names) :] + names[: r % len(names)]
            for acks in ACKS:
                for name in order:
                    topic = f"sec-{r + 1}-{acks}-{names.index(name)}"
                    admin.create_topics([NewTopic(topic, PARTITIONS, 3)])[topic].result(30)
                    conf = client_config(name, bootstraps[name], ca)
                    rate = _produce(conf, topic, acks, messages if r >= 0 else messages // 4)
                    if r >= 0:
                        rates[acks][name].append(rate)
                    admin.delete_topics([topic])[topic].result(30)
                    broker.check_alive()
        del admin  # its connections close before the broker stops (no refused reconnects)
        shakes = {
            name: handshakes(broker, name, bootstraps[name], ca, connections) for name in names
        }
    return {"records_per_s": rates, "handshakes": shakes}


def run(quick: bool = False) -> Section:
    section = Section("security")
    messages, rounds, connections = (30_000, 1, 50) if quick else (200_000, 5, 200)
    try:
        r = measure(messages, rounds, connections)
    except BenchError as e:
        section.errors.append(str(e))
        return section
    medians: dict[str, dict[str, float]] = {}
    ratios: dict[str, dict[str, float]] = {}
    for acks, by_listener in r["records_per_s"].items():
        medians[acks] = {n: statistics.median(v) for n, v in by_listener.items()}
        # per round, against the plaintext run of the same round: drift cancels out
        plain = by_listener["plaintext"]
        ratios[acks] = {
            n: statistics.median(x / p for x, p in zip(v, plain, strict=True))
            for n, v in by_listener.items()
        }
        for name, value in medians[acks].items():
            ratio = "" if name == "plaintext" else f"{ratios[acks][name]:.2f} of plaintext; "
            section.row(
                f"producer 1 KiB x{PARTITIONS}p RF 3 acks={acks}, {name}",
                f"{value:,.0f} rec/s",
                f"{ratio}median of {rounds}",
            )
    base_conn = r["handshakes"]["plaintext"]
    for name, h in r["handshakes"].items():
        extra = (
            ""
            if name == "plaintext"
            else f"; +{h['ms_per_connection'] - base_conn['ms_per_connection']:.1f} ms over"
            " plaintext"
        )
        section.row(
            f"new connection + handshake, {name}",
            f"{h['per_s']:,.0f} conn/s",
            f"{h['ms_per_connection']:.1f} ms each, broker CPU"
            f" {h['broker_cpu_ms_per_connection']:.1f} ms{extra}",
        )
    section.data.update(
        {
            "runs": r,
            "medians": medians,
            "ratios_to_plaintext": ratios,
            "summary": {
                acks: {n: summary(v) for n, v in by.items()}
                for acks, by in r["records_per_s"].items()
            },
            "messages": messages,
            "rounds": rounds,
            "note": "msklite serve in its own process, clients in this one; 2 shared cores",
        }
    )
    return section
