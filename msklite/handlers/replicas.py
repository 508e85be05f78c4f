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
- Authorization, as Kafka's: ElectLeaders and AlterPartitionReassignments need ALTER on the
  cluster, ListPartitionReassignments and DescribeLogDirs DESCRIBE on it
  (CLUSTER_AUTHORIZATION_FAILED: the top-level error; every partition's too for
  ElectLeaders; DescribeLogDirs then lists no directory).
- DescribeLogDirs: this broker's one log directory with the size of each replica and its lag
  behind the high watermark; total/usable bytes of its file system (v4+). An offline
  directory (a write or read in it failed) is reported with KAFKA_STORAGE_ERROR, no
  replicas and total/usable bytes -1, as Kafka reports it.
"""

from __future__ import annotations

import os

from msklite.errors import ErrorCode
from msklite.handlers.authorization import ALTER, DESCRIBE, allowed
from msklite.handlers.context import BrokerContext
from msklite.handlers.registry import handles, spec_request, spec_response
from msklite.protocol import schemas
from msklite.protocol.api_keys import ApiKey
from msklite.protocol.header import RequestHeader
from msklite.protocol.primitives import Buffer, Reader

PREFERRED, UNCLEAN = 0, 1

Elected = schemas.ElectLeadersResponse.ReplicaElectionResult
Reassigned = schemas.AlterPartitionReassignmentsResponse.ReassignableTopicResponse
Ongoing = schemas.ListPartitionReassignmentsResponse.OngoingTopicReassignment
LogDir = schemas.DescribeLogDirsResponse.DescribeLogDirsResult


@handles(ApiKey.ELECT_LEADERS, versions=(0, 2), flexible_from=2)
def elect_leaders(ctx: BrokerContext, header: RequestHeader, r: Reader) -> list[Buffer]:
    req = spec_request(schemas.ElectLeadersRequest, header, r)
    controller = ctx.controller
    unclean = header.api_version >= 1 and req.election_type == UNCLEAN
    if req.topic_partitions is None:
        wanted = [(t.name, list(range(len(t.partitions)))) for t in controller.topics.values()]
    else:
        wanted = [(tp.topic, list(tp.partitions)) for tp in req.topic_partitions]
    may_alter = allowed(ctx, header, ALTER)
    results = []
    for topic, partitions in wanted:
        outcomes = []
        for index in partitions:
            code = (
                controller.elect_leaders(topic, index, unclean)
                if may_alter
                else ErrorCode.CLUSTER_AUTHORIZATION_FAILED
            )
            outcomes.append(
                Elected.PartitionResult(
                    partition_id=index,
                    error_code=code,
                    error_message=None if code == ErrorCode.NONE else code.name,
                )
            )
        results.append(Elected(topic=topic, partition_result=outcomes))
    body = schemas.ElectLeadersResponse(
        throttle_time_ms=0,
        error_code=0 if may_alter else ErrorCode.CLUSTER_AUTHORIZATION_FAILED,
        replica_election_results=results,
    )
    return spec_response(header, body)


@handles(ApiKey.ALTER_PARTITION_REASSIGNMENTS, versions=(0, 1), flexible_from=0)
def alter_reassignments(ctx: BrokerContext, header: RequestHeader, r: Reader) -> list[Buffer]:
    req = spec_request(schemas.AlterPartitionReassignmentsRequest, header, r)
    controller = ctx.controller
    allow_rf_change = header.api_version < 1 or req.allow_replication_factor_change
    if not allowed(ctx, header, ALTER):
        body = schemas.AlterPartitionReassignmentsResponse(
            throttle_time_ms=0,
            allow_replication_factor_change=allow_rf_change,
            error_code=ErrorCode.CLUSTER_AUTHORIZATION_FAILED,
            error_message=None,
            responses=[],
        )
        return spec_response(header, body)
    responses = []
    for t in req.topics:
        parts: list[Reassigned.ReassignablePartitionResponse] = []
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
                        Reassigned.ReassignablePartitionResponse(
                            partition_index=p.partition_index,
                            error_code=ErrorCode.INVALID_REPLICATION_FACTOR,
                            error_message="The replication factor would change",
                        )
                    )
                    continue
            code = controller.reassign(t.name, p.partition_index, target)
            parts.append(
                Reassigned.ReassignablePartitionResponse(
                    partition_index=p.partition_index,
                    error_code=code,
                    error_message=None if code == ErrorCode.NONE else code.name,
                )
            )
        responses.append(Reassigned(name=t.name, partitions=parts))
    body = schemas.AlterPartitionReassignmentsResponse(
        throttle_time_ms=0,
        allow_replication_factor_change=allow_rf_change,
        error_code=0,
        error_message=None,
        responses=responses,
    )
    return spec_response(header, body)


@handles(ApiKey.LIST_PARTITION_REASSIGNMENTS, versions=(0, 0), flexible_from=0)
def list_reassignments(ctx: BrokerContext, header: RequestHeader, r: Reader) -> list[Buffer]:
    req = spec_request(schemas.ListPartitionReassignmentsRequest, header, r)
    if not allowed(ctx, header, DESCRIBE):
        body = schemas.ListPartitionReassignmentsResponse(
            throttle_time_ms=0,
            error_code=ErrorCode.CLUSTER_AUTHORIZATION_FAILED,
            error_message=None,
            topics=[],
        )
        return spec_response(header, body)
    wanted = None if req.topics is None else {t.name: set(t.partition_indexes) for t in req.topics}
    by_topic: dict[str, list[Ongoing.OngoingPartitionReassignment]] = {}
    for name, p in ctx.controller.reassignments():
        if wanted is not None and p.partition not in wanted.get(name, ()):
            continue
        by_topic.setdefault(name, []).append(
            Ongoing.OngoingPartitionReassignment(
                partition_index=p.partition,
                replicas=list(p.replicas),
                adding_replicas=list(p.adding_replicas),
                removing_replicas=list(p.removing_replicas),
            )
        )
    body = schemas.ListPartitionReassignmentsResponse(
        throttle_time_ms=0,
        error_code=0,
        error_message=None,
        topics=[Ongoing(name=n, partitions=ps) for n, ps in by_topic.items()],
    )
    return spec_response(header, body)


@handles(ApiKey.DESCRIBE_LOG_DIRS, versions=(1, 4), flexible_from=2)
def describe_log_dirs(ctx: BrokerContext, header: RequestHeader, r: Reader) -> list[Buffer]:
    req = spec_request(schemas.DescribeLogDirsRequest, header, r)
    if not allowed(ctx, header, DESCRIBE):
        body = schemas.DescribeLogDirsResponse(
            throttle_time_ms=0, error_code=ErrorCode.CLUSTER_AUTHORIZATION_FAILED, results=[]
        )
        return spec_response(header, body)
    wanted = None if req.topics is None else {t.topic: set(t.partitions) for t in req.topics}
    by_topic: dict[str, list[LogDir.DescribeLogDirsTopic.DescribeLogDirsPartition]] = {}
    root = ctx.replicas.logs.root
    if ctx.replicas.offline:
        result = LogDir(
            error_code=ErrorCode.KAFKA_STORAGE_ERROR,
            log_dir=root,
            topics=[],
            total_bytes=-1,
            usable_bytes=-1,
        )
        body = schemas.DescribeLogDirsResponse(throttle_time_ms=0, error_code=0, results=[result])
        return spec_response(header, body)
    for (name, index), part in sorted(ctx.replicas.partitions.items()):
        if wanted is not None and index not in wanted.get(name, ()):
            continue
        by_topic.setdefault(name, []).append(
            LogDir.DescribeLogDirsTopic.DescribeLogDirsPartition(
                partition_index=index,
                partition_size=part.log.size_in_bytes(),
                offset_lag=max(part.high_watermark - part.log.log_end_offset, 0),
                is_future_key=False,
            )
        )
    fs = os.statvfs(root)
    result = LogDir(
        error_code=0,
        log_dir=root,
        topics=[LogDir.DescribeLogDirsTopic(name=n, partitions=ps) for n, ps in by_topic.items()],
        total_bytes=fs.f_blocks * fs.f_frsize,
        usable_bytes=fs.f_bavail * fs.f_frsize,
    )
    body = schemas.DescribeLogDirsResponse(throttle_time_ms=0, error_code=0, results=[result])
    return spec_response(header, body)
