"""LogManager: one broker's log directory, in Kafka's layout.

    <root>/meta.properties                      cluster.id, node.id
    <root>/recovery-point-offset-checkpoint     where recovery starts after an unclean stop
    <root>/log-start-offset-checkpoint          log starts inside a first segment (DeleteRecords)
    <root>/.kafka_cleanshutdown                 present only after a clean stop
    <root>/<topic>-<partition>/                 a PartitionLog, plus partition.metadata (topic id)

Owns opening (with recovery), creating and deleting partition logs, the checkpoints, and the
deferred unlink of deleted segment files. Not thread-safe.

A write or read that fails with an OSError (ENOSPC, EIO, …) takes the directory offline
(Kafka's LogDirFailureChannel): `fail` logs the cause once, lets go of every log without
writing anything more, and the replication layer stops serving its replicas until `reopen`
finds the directory usable again. A stop while offline is unclean: the next start recovers.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import uuid

from msklite.clock import Clock
from msklite.config import TopicConfig
from msklite.log.partition_log import PartitionLog
from msklite.log.segment import LogSegment
from msklite.protocol.primitives import kafka_uuid_str
from msklite.topic_partition import TopicPartition

log = logging.getLogger(__name__)

RECOVERY_CHECKPOINT = "recovery-point-offset-checkpoint"
HIGH_WATERMARK_CHECKPOINT = "replication-offset-checkpoint"
LOG_START_CHECKPOINT = "log-start-offset-checkpoint"
CLEAN_SHUTDOWN = ".kafka_cleanshutdown"
# A write this large must succeed before an offline directory is used again: about one batch.
_PROBE_BYTES = 65536


def read_checkpoint(path: str) -> dict[TopicPartition, int]:
    """Kafka's offset checkpoint file: version line, count line, `topic partition offset`."""
    try:
        with open(path) as f:
            lines = f.read().splitlines()
    except FileNotFoundError:
        return {}
    out: dict[TopicPartition, int] = {}
    try:
        if lines[0] != "0":
            return {}
        for line in lines[2 : 2 + int(lines[1])]:
            topic, partition, offset = line.split(" ")
            out[TopicPartition(topic, int(partition))] = int(offset)
    except (IndexError, ValueError):
        log.warning("ignoring malformed checkpoint %s", path)
        return {}
    return out


def write_checkpoint(path: str, offsets: dict[TopicPartition, int]) -> None:
    lines = ["0", str(len(offsets))]
    lines += [f"{t} {p} {o}" for (t, p), o in sorted(offsets.items())]
    _write_atomically(path, "\n".join(lines) + "\n")


def _write_atomically(path: str, text: str) -> None:
    tmp = path + ".tmp"
    try:
        with open(tmp, "w") as f:
            f.write(text)
        os.replace(tmp, path)
    except OSError:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


class LogManager:
    def __init__(self, root: str, node_id: int, cluster_id: str, clock: Clock) -> None:
        self.root = os.path.abspath(root)
        self.clock = clock
        self.node_id = node_id
        self.cluster_id = cluster_id
        self.logs: dict[TopicPartition, PartitionLog] = {}
        self._pending_unlink: list[tuple[int, LogSegment]] = []
        self._recovery_points: dict[TopicPartition, int] = {}
        self.high_watermarks: dict[TopicPartition, int] = {}
        self._log_starts: dict[TopicPartition, int] = {}  # checkpointed, until opened
        self.offline: OSError | None = None  # why the directory is offline, if it is
        try:
            self._start()
        except OSError as e:
            self.fail(e)

    def _start(self) -> None:
        os.makedirs(self.root, exist_ok=True)
        self._write_meta()
        clean = os.path.exists(os.path.join(self.root, CLEAN_SHUTDOWN))
        # After a clean stop everything was flushed: recovery can start at the log end.
        self._recovery_points = (
            read_checkpoint(os.path.join(self.root, RECOVERY_CHECKPOINT)) if clean else {}
        )
        if clean:
            os.unlink(os.path.join(self.root, CLEAN_SHUTDOWN))
        self.high_watermarks = read_checkpoint(os.path.join(self.root, HIGH_WATERMARK_CHECKPOINT))
        self._log_starts = read_checkpoint(os.path.join(self.root, LOG_START_CHECKPOINT))

    def _write_meta(self) -> None:
        path = os.path.join(self.root, "meta.properties")
        text = f"version=1\ncluster.id={self.cluster_id}\nnode.id={self.node_id}\n"
        try:
            with open(path) as f:
                if f.read() == text:
                    return  # rewriting it would risk an empty file on a full disk
        except FileNotFoundError:
            pass
        _write_atomically(path, text)

    # ---- failure and recovery of the directory ----

    def fail(self, cause: OSError) -> bool:
        """Take the directory offline (True if it was online): every log is let go without
        another write; their files stay for recovery."""
        if self.offline is not None:
            return False
        self.offline = cause
        log.error("log directory %s is offline: %s", self.root, cause)
        for plog in self.logs.values():
            plog.release()
        self.logs.clear()
        self._pending_unlink.clear()
        return True

    def reopen(self) -> None:
        """Bring an offline directory back: it must take a probe write first; its logs are
        then opened again (with recovery: the stop was unclean). Raises OSError if not."""
        probe = os.path.join(self.root, ".msklite-probe")
        _write_atomically(probe, "x" * _PROBE_BYTES)
        os.unlink(probe)
        self.offline = None
        try:
            self._start()
        except OSError as e:
            self.offline = e
            raise
        log.warning("log directory %s is back online", self.root)

    def dir_for(self, tp: TopicPartition) -> str:
        return os.path.join(self.root, str(tp))

    def on_disk(self) -> set[TopicPartition]:
        out = set()
        for name in os.listdir(self.root):
            if os.path.isdir(os.path.join(self.root, name)) and "-" in name:
                topic, _, part = name.rpartition("-")
                if part.isdigit():
                    out.add(TopicPartition(topic, int(part)))
        return out

    def open_log(
        self, tp: TopicPartition, topic_id: uuid.UUID, config: TopicConfig
    ) -> PartitionLog:
        existing = self.logs.get(tp)
        if existing is not None:
            return existing
        directory = self.dir_for(tp)

        def create_directory() -> None:
            os.makedirs(directory, exist_ok=True)
            meta = os.path.join(directory, "partition.metadata")
            if not os.path.exists(meta):
                with open(meta, "w") as f:
                    f.write(f"version: 0\ntopic_id: {kafka_uuid_str(topic_id)}\n")

        recovery_point = self._recovery_points.get(tp)
        plog = PartitionLog(
            directory,
            config,
            self.clock,
            recovery_point,
            create_directory,
            self._log_starts.pop(tp, 0),
        )
        if plog.on_disk:
            create_directory()  # a directory from a version that wrote no partition.metadata
        self.logs[tp] = plog
        return plog

    def delete_log(self, tp: TopicPartition) -> None:
        plog = self.logs.pop(tp, None)
        self._log_starts.pop(tp, None)
        if plog is not None:
            plog.delete()
        # Open views of the deleted files stay valid: their mmaps pin the unlinked inodes.
        shutil.rmtree(self.dir_for(tp), ignore_errors=True)

    def enforce_retention(self, max_offsets: dict[TopicPartition, int]) -> int:
        """One retention pass over every log; returns the number of segments removed.
        Files renamed `*.deleted` are unlinked `file.delete.delay.ms` later."""
        now = self.clock.now_ms()
        removed = 0
        for tp, plog in self.logs.items():
            for seg in plog.enforce_retention(max_offsets.get(tp, plog.log_end_offset)):
                self._pending_unlink.append((now + plog.config.file_delete_delay_ms, seg))
                removed += 1
        due = [s for t, s in self._pending_unlink if t <= now]
        self._pending_unlink = [(t, s) for t, s in self._pending_unlink if t > now]
        for seg in due:
            txns = seg.path[: -len(".log")] + ".txnindex"
            for path in (seg.path, seg.offset_index.path, seg.time_index.path, txns):
                try:
                    os.unlink(path + ".deleted")
                except FileNotFoundError:
                    pass
        return removed

    def checkpoint_log_starts(self) -> None:
        """Write `log-start-offset-checkpoint`: the logs whose start lies inside their first
        segment (with the ones not opened yet). Kafka writes it every
        log.flush.start.offset.checkpoint.interval.ms; msklite whenever a start moves that
        way, so a DeleteRecords survives even a crash."""
        starts = dict(self._log_starts)
        starts.update(
            (tp, plog.log_start_offset)
            for tp, plog in self.logs.items()
            if plog.start_inside_segment
        )
        write_checkpoint(os.path.join(self.root, LOG_START_CHECKPOINT), starts)

    def defer_unlink(self, segments: list[LogSegment], delay_ms: int) -> None:
        """Unlink segments renamed `*.deleted` (by the cleaner) `delay_ms` from now."""
        due = self.clock.now_ms() + delay_ms
        self._pending_unlink.extend((due, seg) for seg in segments)

    def shutdown(self, high_watermarks: dict[TopicPartition, int]) -> None:
        """Flush, checkpoint and close everything, then mark the stop clean — unless the
        directory is (or goes) offline: then the next start recovers."""
        if self.offline is not None:
            return
        try:
            for plog in self.logs.values():
                plog.flush()
                plog.close()
            write_checkpoint(
                os.path.join(self.root, RECOVERY_CHECKPOINT),
                {tp: plog.log_end_offset for tp, plog in self.logs.items()},
            )
            write_checkpoint(os.path.join(self.root, HIGH_WATERMARK_CHECKPOINT), high_watermarks)
            self.checkpoint_log_starts()
            self.logs.clear()
            with open(os.path.join(self.root, CLEAN_SHUTDOWN), "w"):
                pass
        except OSError as e:
            self.fail(e)
