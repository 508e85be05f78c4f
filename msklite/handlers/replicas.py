"""ElectLeaders (key 43) v0-2, AlterPartitionReassignments (key 45) v0-1,
ListPartitionReassignments (key 46) v0, DescribeLogDirs (key 35) v1-4.

Behavior:
- ElectLeaders: PREFERRED (0) moves leadership to the first replica when it is alive and in
  sync (PREFERRED_LEADER_NOT_AVAILABLE otherwise); UNCLEAN (1) elects any live replica of a
  leaderless partition (ELIGIBLE_LEADERS_NOT_AVAILABLE when none is). Partitions that already
  have the wanted leader: ELECTION_NOT_NEEDED. A null partition list means all partitions.
- AlterPartitionReassignments (KIP-455): new replicas join as followers and catch up; when all
  of them are in the ISR the removed replicas go (their logs are deleted) and a leader outside
  the target hands over. A null replica list cancels (NO_REASSIGNMENT_IN_PROGRESS if none).
  v1: allow_replication_factor_change=false refuses a changed replica count
  (INVALID_REPLICATION_FACTOR).
- ListPartitionReassignments: ongoing moves with adding/removing replicas; null topics = all.
- DescribeLogDirs: this broker's one log directory with the size of each replica and its lag
  behind the high watermark; total/usable bytes of its file system (v4+). An offline
  directory (a write or read in it failed) is reported with KAFKA_STORAGE_ERROR, no
  replicas and total/usable bytes -1, as Kafka reports it.
"""

from __future__ import annotations

import os
from typing import Any

from msklite.errors import ErrorCode
from msklite.handlers.context import BrokerContext
from msklite.handlers.registry import handles, spec_request
from msklite.protocol import messages
from msklite.protocol.api_keys import ApiKey
from msklite.protocol.header import RequestHeader
from msklite.protocol.primitives import Buffer, Reader

PREFERRED, UNCLEAN = 0, 1


@handles(ApiKey.ELECT_LEADERS, versions=(0, 2), flexible_from=2)
def elect_leaders(ctx: BrokerContext, header: RequestHeader, r: Reader) -> list[Buffer]:
    v, req, resp = spec_request(ApiKey.ELECT_LEADERS, header, r)
    controller = ctx.controller
    unclean = v >= 1 and req.election_type == UNCLEAN
    if req.topic_partitions is None:
        wanted = [(t.name, list(range(len(t.partitions)))) for t in controller.topics.values()]
    else:
        wanted = [(tp.topic, list(tp.partitions)) for tp in req.topic_partitions]
    result_cls = resp.ReplicaElectionResult
    results = []
    for topic, partitions in wanted:
        outcomes = []
        for index in partitions:
            code = controller.elect_leaders(topic, index, unclean)
            outcomes.append(
                result_cls.PartitionResult(
                    partition_id=index,
                    error_code=code,
                    error_message=None if code == ErrorCode.NONE else code.name,
                )
            )
        results.append(result_cls(topic=topic, partition_result=outcomes))
    body = resp(version=v, throttle_time_ms=0, error_code=0, replica_election_results=results)
    return [messages.encode(body, v)]


@handles(ApiKey.ALTER_PARTITION_REASSIGNMENTS, versions=(0, 1), flexible_from=0)
def alter_reassignments(ctx: BrokerContext, header: RequestHeader, r: Reader) -> list[Buffer]:
    v, req, resp = spec_request(ApiKey.ALTER_PARTITION_REASSIGNMENTS, header, r)
    controller = ctx.controller
    allow_rf_change = v < 1 or req.allow_replication_factor_change
    topic_cls = resp.ReassignableTopicResponse
    responses = []
    for t in req.topics:
        parts = []
        for p in t.partitions:
            target = None if p.replicas is None else list(p.replicas)
            topic = controller.topics.get(t.name)
            if (
                target is not None
                and not allow_rf_change
                and topic is not None
                and 0 <= p.partition_index < len(topic.partitions)
            ):
                state = topic.partitions[p.partition_index]
                current = len(state.replicas) - len(state.adding_replicas)
                if len(target) != current:
                    parts.append(
                        topic_cls.ReassignablePartitionResponse(
                            partition_index=p.partition_index,
                            error_code=ErrorCode.INVALID_REPLICATION_FACTOR,
                            error_message="The replication factor would change",
                        )
                    )
                    continue
            code = controller.reassign(t.name, p.partition_index, target)
            parts.append(
                topic_cls.ReassignablePartitionResponse(
                    partition_index=p.partition_index,
                    error_code=code,
                    error_message=None if code == ErrorCode.NONE else code.name,
                )
            )
        responses.append(topic_cls(name=t.name, partitions=parts))
    body = resp(
        version=v,
        throttle_time_ms=0,
        allow_replication_factor_change=allow_rf_change,
        error_code=0,
        error_message=None,
        responses=responses,
    )
    return [messages.encode(body, v)]


@handles(ApiKey.LIST_PARTITION_REASSIGNMENTS, versions=(0, 0), flexible_from=0)
def list_reassignments(ctx: BrokerContext, header: RequestHeader, r: Reader) -> list[Buffer]:
    v, req, resp = spec_request(ApiKey.LIST_PARTITION_REASSIGNMENTS, header, r)
    wanted = None if req.topics is None else {t.name: set(t.partition_indexes) for t in req.topics}
    topic_cls = resp.OngoingTopicReassignment
    by_topic: dict[str, list[Any]] = {}
    for name, p in ctx.controller.reassignments():
        if wanted is not None and p.partition not in wanted.get(name, ()):
            continue
        by_topic.setdefault(name, []).append(
            topic_cls.OngoingPartitionReassignment(
                partition_index=p.partition,
                replicas=list(p.replicas),
                adding_replicas=list(p.adding_replicas),
                removing_replicas=list(p.removing_replicas),
            )
        )
    body = resp(
        version=v,
        throttle_time_ms=0,
        error_code=0,
        error_message=None,
        topics=[topic_cls(name=n, partitions=ps) for n, ps in by_topic.items()],
    )
    return [messages.encode(body, v)]


@handles(ApiKey.DESCRIBE_LOG_DIRS, versions=(1, 4), flexible_from=2)
def describe_log_dirs(ctx: BrokerContext, header: RequestHeader, r: Reader) -> list[Buffer]:
    v, req, resp = spec_request(ApiKey.DESCRIBE_LOG_DIRS, header, r)
    wanted = None if req.topics is None else {t.topic: set(t.partitions) for t in req.topics}
    result_cls = resp.DescribeLogDirsResult
    topic_cls = result_cls.DescribeLogDirsTopic
    by_topic: dict[str, list[Any]] = {}
    root = ctx.replicas.logs.root
    if ctx.replicas.offline:
        result = result_cls(
            error_code=ErrorCode.KAFKA_STORAGE_ERROR,
            log_dir=root,
            topics=[],
            total_bytes=-1,
            usable_bytes=-1,
        )
        body = resp(version=v, throttle_time_ms=0, error_code=0, results=[result])
        return [messages.encode(body, v)]
    for (name, index), part in sorted(ctx.replicas.partitions.items()):
        if wanted is not None and index not in wanted.get(name, ()):
            continue
        by_topic.setdefault(name, []).append(
            topic_cls.DescribeLogDirsPartition(
                partition_index=index,
                partition_size=part.log.size_in_bytes(),
                offset_lag=max(part.high_watermark - part.log.log_end_offset, 0),
                is_future_key=False,
            )
        )
    fs = os.statvfs(root)
    result = result_cls(
        error_code=0,
        log_dir=root,
        topics=[topic_cls(name=n, partitions=ps) for n, ps in by_topic.items()],
        total_bytes=fs.f_blocks * fs.f_frsize,
        usable_bytes=fs.f_bavail * fs.f_frsize,
    )
    body = resp(version=v, throttle_time_ms=0, error_code=0, results=[result])
    return [messages.encode(body, v)]
