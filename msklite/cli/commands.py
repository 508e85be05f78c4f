"""The everyday commands' arguments (registered on `msklite`'s parser) and what they do, with
kafka-python's clients. kafka-python is imported inside `run` only."""

from __future__ import annotations

import argparse
import socket
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from typing import Any, TextIO

from msklite.cli.render import as_json, client_options, parse_properties, render, table

DEFAULT_BOOTSTRAP = "127.0.0.1:9092"  # where `msklite serve` listens by default
DEFAULT_FORMAT = "%s\\n"


class CommandError(Exception):
    """Ends a command with one line on standard error and exit status 1."""


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--bootstrap",
        default=DEFAULT_BOOTSTRAP,
        metavar="HOST:PORT[,...]",
        help=f"the cluster to talk to (default {DEFAULT_BOOTSTRAP}, `msklite serve`'s)",
    )
    p.add_argument(
        "--command-config",
        metavar="FILE",
        help="client properties (security.protocol, sasl.*, ssl.*), as kafka-topics.sh takes",
    )
    p.add_argument("--json", action="store_true", help="print JSON for scripts")
    p.add_argument(
        "--timeout",
        type=float,
        default=10.0,
        metavar="SECONDS",
        help="give up when the cluster does not answer within this long (default 10)",
    )


def _kv(item: str) -> tuple[str, str]:
    key, sep, value = item.partition("=")
    if not sep or not key:
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE, got {item!r}")
    return key, value


def add_parsers(sub: Any) -> None:
    """`topic`, `group`, `produce`, `consume` and `cluster` on `msklite`'s subparsers."""
    topic = sub.add_parser("topic", help="create, list, describe, alter or delete topics")
    tsub = topic.add_subparsers(dest="verb", required=True)
    p = tsub.add_parser("create", help="create a topic")
    p.add_argument("name")
    p.add_argument("-p", "--partitions", type=int, default=-1, help="default: the broker's")
    p.add_argument("-r", "--replication-factor", type=int, default=-1, help="default: the broker's")
    p.add_argument("-c", "--config", type=_kv, action="append", default=[], metavar="KEY=VALUE")
    p.add_argument("--if-not-exists", action="store_true", help="an existing topic is no error")
    _common(p)
    p = tsub.add_parser("list", help="list topics")
    p.add_argument("--internal", action="store_true", help="include internal topics")
    _common(p)
    p = tsub.add_parser("describe", help="partitions (leader, replicas, ISR, offsets) and configs")
    p.add_argument("name", nargs="+")
    _common(p)
    p = tsub.add_parser("delete", help="delete topics")
    p.add_argument("name", nargs="+")
    _common(p)
    p = tsub.add_parser("alter-config", help="set or delete topic configs (incrementally)")
    p.add_argument("name")
    p.add_argument("--set", type=_kv, action="append", default=[], metavar="KEY=VALUE")
    p.add_argument("--delete", action="append", default=[], metavar="KEY")
    _common(p)

    group = sub.add_parser("group", help="list, describe (lag), reset offsets of, delete groups")
    gsub = group.add_subparsers(dest="verb", required=True)
    _common(gsub.add_parser("list", help="list consumer groups"))
    p = gsub.add_parser("describe", help="state, members and lag per partition")
    p.add_argument("group", nargs="+")
    _common(p)
    p = gsub.add_parser("reset-offsets", help="move an inactive group's committed offsets")
    p.add_argument("group")
    p.add_argument("--topic", action="append", required=True, help="TOPIC (repeatable)")
    to = p.add_mutually_exclusive_group(required=True)
    to.add_argument("--to-earliest", action="store_true")
    to.add_argument("--to-latest", action="store_true")
    to.add_argument("--to-offset", type=int, metavar="N")
    to.add_argument("--to-timestamp", type=int, metavar="MS", help="ms since the epoch")
    p.add_argument("--dry-run", action="store_true", help="show the offsets, commit nothing")
    _common(p)
    p = gsub.add_parser("delete", help="delete inactive groups")
    p.add_argument("group", nargs="+")
    _common(p)

    p = sub.add_parser("produce", help="send standard input's lines as records")
    p.add_argument("topic")
    p.add_argument("-k", "--key-separator", metavar="SEP", help="a line is KEY SEP VALUE")
    p.add_argument("-H", "--header", type=_kv, action="append", default=[], metavar="KEY=VALUE")
    p.add_argument("-p", "--partition", type=int, default=None)
    p.add_argument("--acks", choices=["0", "1", "all"], default="all")
    _common(p)

    p = sub.add_parser("consume", help="print records")
    p.add_argument("topic")
    p.add_argument(
        "-o",
        "--offset",
        default=None,
        help="beginning, end, an offset N, or @MS (the first record at or after a timestamp); "
        "default: end, or the group's committed offsets with --group",
    )
    p.add_argument("-g", "--group", help="consume as this group (commits offsets)")
    p.add_argument("-p", "--partition", type=int, action="append", help="assign partition(s)")
    p.add_argument("-n", "--count", type=int, default=None, help="stop after this many records")
    p.add_argument(
        "-f",
        "--format",
        default=DEFAULT_FORMAT,
        help="kcat-style: %%t %%p %%o %%T %%k %%K %%s %%S %%h, \\n \\t (default '%%s\\n')",
    )
    p.add_argument(
        "--idle",
        type=float,
        default=None,
        metavar="SECONDS",
        help="stop when no record came for this long (default: wait on)",
    )
    _common(p)

    cluster = sub.add_parser("cluster", help="describe the cluster")
    csub = cluster.add_subparsers(dest="verb", required=True)
    _common(csub.add_parser("describe", help="cluster id, controller and brokers"))


def _options(args: argparse.Namespace) -> dict[str, object]:
    opts: dict[str, object] = {}
    if args.command_config:
        try:
            with open(args.command_config, encoding="utf-8") as f:
                opts = client_options(parse_properties(f.read()))
        except OSError as e:
            raise CommandError(f"--command-config: {e}") from None
        except ValueError as e:
            raise CommandError(f"--command-config: {e}") from None
    timeout_ms = max(1, int(args.timeout * 1000))
    opts.setdefault("bootstrap_servers", args.bootstrap)
    opts.update(
        request_timeout_ms=timeout_ms,
        client_id=opts.get("client_id", "msklite-cli"),
    )
    return opts


def _reachable(bootstrap: str, timeout: float) -> None:
    """kafka-python's clients wait forever for a first broker; a bootstrap list none of whose
    addresses accepts a connection within the timeout ends the command instead."""
    deadline = time.monotonic() + timeout
    for server in bootstrap.split(","):
        host, _, port = server.strip().rpartition(":")
        try:
            with socket.create_connection(
                (host.strip("[]"), int(port)), timeout=max(0.1, deadline - time.monotonic())
            ):
                return
        except (OSError, ValueError):
            continue
    raise CommandError(f"no broker reachable at {bootstrap} within {timeout:g} s")


def _admin(args: argparse.Namespace) -> Any:
    from kafka import KafkaAdminClient

    options = _options(args)
    _reachable(str(options["bootstrap_servers"]), args.timeout)
    return KafkaAdminClient(**options)


def run(args: argparse.Namespace, out: TextIO = sys.stdout, err: TextIO | None = None) -> int:
    from kafka.errors import KafkaError

    handler = _HANDLERS[(args.command, getattr(args, "verb", None))]
    try:
        handler(args, out)
    except CommandError as e:
        print(f"msklite: {e}", file=err or sys.stderr)
        return 1
    except KafkaError as e:
        print(f"msklite: {type(e).__name__}: {e}", file=err or sys.stderr)
        return 1
    except ValueError as e:  # kafka-python's checks of what it was asked
        print(f"msklite: {e}", file=err or sys.stderr)
        return 1
    except BrokenPipeError:  # `| head`: the reader has seen enough
        return 0
    return 0


def _emit(args: argparse.Namespace, out: TextIO, data: object, text: str) -> None:
    print(as_json(data) if args.json else text, file=out, flush=True)


def _check(errors: Sequence[tuple[str, int, str | None]]) -> None:
    from kafka.errors import for_code

    for name, code, message in errors:
        if code:
            err = for_code(code)
            raise CommandError(f"{name}: {err.__name__}{f': {message}' if message else ''}")


# ---- topics -----------------------------------------------------------------------------


def topic_create(args: argparse.Namespace, out: TextIO) -> None:
    from kafka.admin import NewTopic

    admin = _admin(args)
    try:
        result = admin.create_topics(
            [
                NewTopic(
                    args.name,
                    num_partitions=args.partitions,
                    replication_factor=args.replication_factor,
                    topic_configs=dict(args.config),
                )
            ],
            timeout_ms=int(args.timeout * 1000),
            raise_errors=False,
        )
    finally:
        admin.close()
    (t,) = result["topics"]
    if t["error_code"] == 36 and args.if_not_exists:  # TOPIC_ALREADY_EXISTS
        _emit(args, out, {"name": args.name, "created": False}, f"topic {args.name} exists")
        return
    _check([(t["name"], t["error_code"], t.get("error_message"))])
    row = {
        "name": t["name"],
        "partitions": t.get("num_partitions"),
        "replication_factor": t.get("replication_factor"),
        "topic_id": str(t.get("topic_id")),
    }
    _emit(
        args,
        out,
        {**row, "created": True},
        f"created topic {row['name']}: {row['partitions']} partition(s), "
        f"replication factor {row['replication_factor']}",
    )


def topic_list(args: argparse.Namespace, out: TextIO) -> None:
    admin = _admin(args)
    try:
        topics = admin.describe_topics()
    finally:
        admin.close()
    rows = [
        {
            "name": t["name"],
            "partitions": len(t["partitions"]),
            "replicas": max((len(p["replica_nodes"]) for p in t["partitions"]), default=0),
            "internal": t["is_internal"],
        }
        for t in sorted(topics, key=lambda t: t["name"])
        if args.internal or not t["is_internal"]
    ]
    _emit(args, out, rows, table(rows, ["name", "partitions", "replicas"]))


def _offsets(admin: Any, partitions: list[Any]) -> tuple[dict[Any, int], dict[Any, int]]:
    from kafka.admin import OffsetSpec

    if not partitions:
        return {}, {}
    start = admin.list_partition_offsets(dict.fromkeys(partitions, OffsetSpec.EARLIEST))
    end = admin.list_partition_offsets(dict.fromkeys(partitions, OffsetSpec.LATEST))
    return (
        {tp: o.offset for tp, o in start.items()},
        {tp: o.offset for tp, o in end.items()},
    )


def topic_describe(args: argparse.Namespace, out: TextIO) -> None:
    from kafka import TopicPartition
    from kafka.admin import ConfigResource

    admin = _admin(args)
    try:
        topics = admin.describe_topics(args.name)
        _check([(t["name"], t["error_code"], None) for t in topics])
        tps = [
            TopicPartition(t["name"], p["partition_index"]) for t in topics for p in t["partitions"]
        ]
        start, end = _offsets(admin, tps)
        configs = admin.describe_configs([ConfigResource("TOPIC", n) for n in args.name])
    finally:
        admin.close()
    described = []
    texts = []
    for t in topics:
        rows = [
            {
                "partition": p["partition_index"],
                "leader": p["leader_id"],
                "epoch": p["leader_epoch"],
                "replicas": p["replica_nodes"],
                "isr": p["isr_nodes"],
                "offline": p["offline_replicas"],
                "log_start": start.get(TopicPartition(t["name"], p["partition_index"])),
                "log_end": end.get(TopicPartition(t["name"], p["partition_index"])),
            }
            for p in sorted(t["partitions"], key=lambda p: p["partition_index"])
        ]
        modified = {k: v["value"] for k, v in configs.get("topic", {}).get(t["name"], {}).items()}
        described.append(
            {
                "name": t["name"],
                "topic_id": str(t["topic_id"]),
                "partitions": rows,
                "configs": modified,
            }
        )
        config_text = "\n".join(f"  {k}={v}" for k, v in sorted(modified.items()))
        texts.append(
            f"Topic {t['name']}  id {t['topic_id']}  {len(rows)} partition(s)\n"
            + table(rows, list(rows[0]) if rows else ["partition"])
            + (f"\nConfigs (set on the topic):\n{config_text}" if modified else "")
        )
    _emit(args, out, described, "\n\n".join(texts))


def topic_delete(args: argparse.Namespace, out: TextIO) -> None:
    admin = _admin(args)
    try:
        result = admin.delete_topics(
            args.name, timeout_ms=int(args.timeout * 1000), raise_errors=False
        )
    finally:
        admin.close()
    _check([(t["name"], t["error_code"], t.get("error_message")) for t in result["topics"]])
    _emit(args, out, {"deleted": args.name}, "\n".join(f"deleted topic {n}" for n in args.name))


def topic_alter_config(args: argparse.Namespace, out: TextIO) -> None:
    from kafka.admin import AlterConfigOp, ConfigResource

    if not args.set and not args.delete:
        raise CommandError("alter-config needs --set KEY=VALUE or --delete KEY")
    changes: dict[str, object] = {k: (AlterConfigOp.SET, v) for k, v in args.set}
    changes.update({k: (AlterConfigOp.DELETE, None) for k in args.delete})
    admin = _admin(args)
    try:
        result = admin.alter_configs([ConfigResource("TOPIC", args.name, changes)])
    finally:
        admin.close()
    for r in _response_dicts(result):
        _check([(r.get("resource_name", args.name), r["error_code"], r.get("error_message"))])
    _emit(
        args,
        out,
        {"name": args.name, "set": dict(args.set), "deleted": args.delete},
        f"altered topic {args.name}: "
        + ", ".join([f"{k}={v}" for k, v in args.set] + [f"{k} deleted" for k in args.delete]),
    )


def _response_dicts(result: object) -> Iterator[dict[str, Any]]:
    """The per-resource results of an AlterConfigs answer, whatever its wrapping."""
    if isinstance(result, dict):
        if "error_code" in result and "resource_name" in result:
            yield result
        for value in result.values():
            yield from _response_dicts(value)
    elif isinstance(result, (list, tuple)):
        for item in result:
            yield from _response_dicts(item)
    elif hasattr(result, "to_dict"):
        yield from _response_dicts(result.to_dict())


# ---- groups -----------------------------------------------------------------------------


def group_list(args: argparse.Namespace, out: TextIO) -> None:
    admin = _admin(args)
    try:
        groups = admin.list_groups()
    finally:
        admin.close()
    rows = [
        {
            "group": g.get("group_id"),
            "state": g.get("group_state") or None,
            "type": g.get("group_type") or g.get("protocol_type") or None,
        }
        for g in sorted(groups, key=lambda g: str(g.get("group_id")))
    ]
    _emit(args, out, rows, table(rows, ["group", "state", "type"]))


def group_describe(args: argparse.Namespace, out: TextIO) -> None:
    admin = _admin(args)
    try:
        described = admin.describe_groups(args.group)
        committed = admin.list_group_offsets(list(args.group))
        owners: dict[str, dict[Any, dict[str, Any]]] = {}
        for gid, g in described.items():
            _check([(gid, g.get("error_code", 0), None)])
            owners[gid] = {}
            for m in g.get("members", []):
                for tp in _assigned(m):
                    owners[gid][tp] = m
        tps = sorted(
            {tp for offsets in committed.values() for tp in offsets}
            | {tp for o in owners.values() for tp in o}
        )
        _, end = _offsets(admin, tps)
    finally:
        admin.close()
    result = []
    texts = []
    for gid in args.group:
        g = described[gid]
        offsets = committed.get(gid, {})
        rows = []
        for tp in sorted(set(offsets) | set(owners[gid])):
            current = offsets[tp].offset if tp in offsets and offsets[tp].offset >= 0 else None
            log_end = end.get(tp)
            m = owners[gid].get(tp, {})
            rows.append(
                {
                    "topic": tp.topic,
                    "partition": tp.partition,
                    "current_offset": current,
                    "log_end_offset": log_end,
                    "lag": None if current is None or log_end is None else log_end - current,
                    "member_id": m.get("member_id") or None,
                    "client_id": m.get("client_id") or None,
                    "host": m.get("client_host") or None,
                }
            )
        state = g.get("group_state") or g.get("state")
        members = len(g.get("members", []))
        result.append({"group": gid, "state": state, "members": members, "partitions": rows})
        texts.append(
            f"Group {gid}  state {state}  {members} member(s)"
            f"  protocol {g.get('protocol_type') or '-'}/{g.get('protocol_data') or '-'}\n"
            + table(
                rows,
                [
                    "topic",
                    "partition",
                    "current_offset",
                    "log_end_offset",
                    "lag",
                    "member_id",
                    "client_id",
                    "host",
                ],
            )
        )
    _emit(args, out, result, "\n\n".join(texts))


def _assigned(member: dict[str, Any]) -> Iterator[Any]:
    """The partitions a classic consumer member holds (kafka-python decodes the assignment)."""
    from kafka import TopicPartition

    assignment = member.get("member_assignment")
    if isinstance(assignment, dict):
        for a in assignment.get("assigned_partitions") or []:
            for p in a.get("partitions", []):
                yield TopicPartition(a["topic"], p)


def group_reset_offsets(args: argparse.Namespace, out: TextIO) -> None:
    from kafka import TopicPartition
    from kafka.admin import OffsetSpec, OffsetTimestamp

    spec: object
    if args.to_earliest:
        spec = OffsetSpec.EARLIEST
    elif args.to_latest:
        spec = OffsetSpec.LATEST
    elif args.to_timestamp is not None:
        spec = OffsetTimestamp(args.to_timestamp)
    else:
        spec = int(args.to_offset)
    outcome: dict[Any, dict[str, Any]]
    admin = _admin(args)
    try:
        topics = admin.describe_topics(args.topic)
        _check([(t["name"], t["error_code"], None) for t in topics])
        tps = [
            TopicPartition(t["name"], p["partition_index"]) for t in topics for p in t["partitions"]
        ]
        if args.dry_run:
            start, end = _offsets(admin, tps)
            planned = {tp: _planned(spec, start[tp], end[tp]) for tp in tps}
            outcome = {tp: {"offset": o, "error": None} for tp, o in planned.items()}
        else:
            outcome = admin.reset_group_offsets(args.group, dict.fromkeys(tps, spec))
    finally:
        admin.close()
    rows = []
    for tp, r in sorted(outcome.items()):
        err = r.get("error")
        name = None if err is None or getattr(err, "errno", 0) == 0 else err.__name__
        rows.append(
            {
                "topic": tp.topic,
                "partition": tp.partition,
                "new_offset": r.get("offset"),
                "error": name,
            }
        )
    _emit(args, out, rows, table(rows, ["topic", "partition", "new_offset", "error"]))
    failed = [r for r in rows if r["error"]]
    if failed:
        raise CommandError(f"group {args.group}: {failed[0]['error']} (the group must be inactive)")


def _planned(spec: object, start: int, end: int) -> int | str:
    from kafka.admin import OffsetSpec

    if spec == OffsetSpec.EARLIEST:
        return start
    if spec == OffsetSpec.LATEST:
        return end
    if isinstance(spec, int):
        return min(max(spec, start), end)
    return "(by timestamp)"


def group_delete(args: argparse.Namespace, out: TextIO) -> None:
    admin = _admin(args)
    try:
        result = admin.delete_groups(args.group)
    finally:
        admin.close()
    failed = [f"{gid}: {outcome}" for gid, outcome in result.items() if outcome != "OK"]
    if failed:
        raise CommandError("; ".join(failed))
    _emit(args, out, {"deleted": args.group}, "\n".join(f"deleted group {g}" for g in args.group))


# ---- records ----------------------------------------------------------------------------


def produce(args: argparse.Namespace, out: TextIO) -> None:
    from kafka import KafkaProducer
    from kafka.errors import KafkaTimeoutError

    acks: object = "all" if args.acks == "all" else int(args.acks)
    options = _options(args)
    _reachable(str(options["bootstrap_servers"]), args.timeout)
    producer = KafkaProducer(**options, acks=acks, max_block_ms=int(args.timeout * 1000))
    headers = [(k, v.encode()) for k, v in args.header]
    futures = []
    try:
        try:
            partitions = producer.partitions_for(args.topic)
        except KafkaTimeoutError:  # kafka-python's way of saying the topic is not there
            partitions = None
        if not partitions:
            raise CommandError(f"topic {args.topic} does not exist")
        for line in sys.stdin:
            line = line.rstrip("\n")
            key: bytes | None = None
            if args.key_separator is not None:
                k, sep, v = line.partition(args.key_separator)
                if sep:
                    key, line = k.encode(), v
            futures.append(
                producer.send(
                    args.topic, line.encode(), key=key, headers=headers, partition=args.partition
                )
            )
        producer.flush(timeout=args.timeout)
        metas = [f.get(timeout=args.timeout) for f in futures]
    finally:
        producer.close(timeout=args.timeout)
    _emit(
        args,
        out,
        [{"partition": m.partition, "offset": m.offset} for m in metas],
        f"produced {len(metas)} record(s) to {args.topic}",
    )


def consume(args: argparse.Namespace, out: TextIO) -> None:
    from kafka import KafkaConsumer, TopicPartition

    offset = args.offset or ("end" if not args.group else None)
    options = _options(args)
    _reachable(str(options["bootstrap_servers"]), args.timeout)
    consumer = KafkaConsumer(
        **options,
        group_id=args.group,
        enable_auto_commit=bool(args.group),
        auto_offset_reset="earliest" if offset == "beginning" else "latest",
    )
    try:
        partitions = consumer.partitions_for_topic(args.topic)
        if not partitions:
            raise CommandError(f"topic {args.topic} does not exist")
        if args.group and not args.partition:
            consumer.subscribe([args.topic])
            if offset is not None:
                _wait_assignment(consumer, args.timeout)
                _seek(consumer, sorted(consumer.assignment()), offset)
        else:
            tps = [TopicPartition(args.topic, p) for p in (args.partition or sorted(partitions))]
            consumer.assign(tps)
            _seek(consumer, tps, offset or "end")
        _print_records(args, consumer, out)
        if args.group:
            consumer.commit()
    finally:
        consumer.close()


def _wait_assignment(consumer: Any, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not consumer.assignment():
        if time.monotonic() > deadline:
            raise CommandError(f"no partitions assigned within {timeout:g} s")
        consumer.poll(timeout_ms=100, max_records=1, update_offsets=False)


def _seek(consumer: Any, tps: list[Any], offset: str) -> None:
    if offset == "beginning":
        consumer.seek_to_beginning(*tps)
    elif offset == "end":
        consumer.seek_to_end(*tps)
    elif offset.startswith("@"):
        found = consumer.offsets_for_times(dict.fromkeys(tps, int(offset[1:])))
        ends = consumer.end_offsets(tps)
        for tp in tps:
            consumer.seek(tp, found[tp].offset if found.get(tp) else ends[tp])
    else:
        try:
            n = int(offset)
        except ValueError:
            raise CommandError(f"--offset: beginning, end, N or @MS, got {offset!r}") from None
        for tp in tps:
            consumer.seek(tp, n)


def _print_records(args: argparse.Namespace, consumer: Any, out: TextIO) -> None:
    seen = 0
    last = time.monotonic()
    while args.count is None or seen < args.count:
        batch = consumer.poll(
            timeout_ms=200,
            max_records=None if args.count is None else args.count - seen,
        )
        records = [r for rs in batch.values() for r in rs]
        if not records:
            if args.idle is not None and time.monotonic() - last > args.idle:
                return
            continue
        last = time.monotonic()
        for r in records:
            headers = list(r.headers or [])
            if args.json:
                line = (
                    as_json(
                        {
                            "topic": r.topic,
                            "partition": r.partition,
                            "offset": r.offset,
                            "timestamp": r.timestamp,
                            "key": None
                            if r.key is None
                            else r.key.decode("utf-8", "backslashreplace"),
                            "value": None
                            if r.value is None
                            else r.value.decode("utf-8", "backslashreplace"),
                            "headers": {
                                k: None if v is None else v.decode("utf-8", "backslashreplace")
                                for k, v in headers
                            },
                        }
                    )
                    + "\n"
                )
            else:
                line = render(
                    args.format,
                    topic=r.topic,
                    partition=r.partition,
                    offset=r.offset,
                    timestamp=r.timestamp,
                    key=r.key,
                    value=r.value,
                    headers=headers,
                )
            out.write(line)
            seen += 1
        out.flush()


def cluster_describe(args: argparse.Namespace, out: TextIO) -> None:
    admin = _admin(args)
    try:
        info = admin.describe_cluster()
        topics = admin.describe_topics()
    finally:
        admin.close()
    leaders: dict[int, int] = {}
    partitions = 0
    for t in topics:
        for p in t["partitions"]:
            partitions += 1
            leaders[p["leader_id"]] = leaders.get(p["leader_id"], 0) + 1
    brokers = [
        {
            "id": b["broker_id"],
            "host": b["host"],
            "port": b["port"],
            "rack": b.get("rack"),
            "leaders": leaders.get(b["broker_id"], 0),
        }
        for b in sorted(info["brokers"], key=lambda b: b["broker_id"])
    ]
    data = {
        "cluster_id": info["cluster_id"],
        "controller": info["controller_id"],
        "brokers": brokers,
        "topics": len(topics),
        "partitions": partitions,
    }
    _emit(
        args,
        out,
        data,
        f"Cluster {info['cluster_id']}  controller {info['controller_id']}  "
        f"{len(topics)} topic(s), {partitions} partition(s)\n"
        + table(brokers, ["id", "host", "port", "rack", "leaders"]),
    )


_HANDLERS: dict[tuple[str, str | None], Callable[[argparse.Namespace, TextIO], None]] = {
    ("topic", "create"): topic_create,
    ("topic", "list"): topic_list,
    ("topic", "describe"): topic_describe,
    ("topic", "delete"): topic_delete,
    ("topic", "alter-config"): topic_alter_config,
    ("group", "list"): group_list,
    ("group", "describe"): group_describe,
    ("group", "reset-offsets"): group_reset_offsets,
    ("group", "delete"): group_delete,
    ("produce", None): produce,
    ("consume", None): consume,
    ("cluster", "describe"): cluster_describe,
}
