"""Where the controller keeps cluster metadata: a snapshot, `cluster-metadata.json`, and the
changes made since, one JSON line each in `cluster-metadata.log` — KRaft's metadata log and
its snapshots in miniature.

A change costs what it changed (an ISR change writes one partition's line, not the cluster):
rewriting the whole state on every change took 0.2 s of the event loop at 40,000 partitions
and grows with the cluster. The log is folded into a new snapshot once it outgrows the
snapshot (so snapshots cost O(1) per byte of change, amortized), and whenever a change could
not be written (the next one must carry it). Lines are "set this" records, applied in order: a
crash between a new snapshot and the log's truncation replays lines the snapshot already holds,
to the same result. A torn last line (a crash mid-append) is dropped at load.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
from typing import Any

log = logging.getLogger(__name__)

State = dict[str, Any]  # the snapshot's JSON: cluster_id, globals, topics (a list)
# A change: any of the globals, "acls" and "scram" (all of them, when they changed), "topics" {name:
# topic or None when deleted}, "partitions" [[topic name, topic id, partition]].
Change = dict[str, Any]

_MIN_COMPACT = 1 << 20


def write_all(fd: int, data: bytes) -> None:
    """Every metadata write goes through here (tests make it fail as a full disk would)."""
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


class MetadataLog:
    def __init__(self, snapshot_path: str) -> None:
        self.snapshot_path = snapshot_path
        self.log_path = os.path.splitext(snapshot_path)[0] + ".log"
        self._snapshot_bytes = 0
        self._log_bytes = 0

    def load(self) -> State | None:
        """The saved state, the log's changes applied; None when nothing was saved yet."""
        if not os.path.exists(self.snapshot_path):
            return None
        with open(self.snapshot_path, "rb") as f:
            raw = f.read()
        self._snapshot_bytes = len(raw)
        state: State = json.loads(raw)
        topics = {t["name"]: t for t in state["topics"]}
        good = 0
        with contextlib.suppress(FileNotFoundError), open(self.log_path, "rb") as f:
            for line in f:
                try:
                    change: Change = json.loads(line)
                except ValueError:
                    log.warning("dropping a torn last change of %s", self.log_path)
                    break
                _apply(state, topics, change)
                good += len(line)
        state["topics"] = list(topics.values())
        with contextlib.suppress(FileNotFoundError):
            if os.path.getsize(self.log_path) != good:
                os.truncate(self.log_path, good)
        self._log_bytes = good
        return state

    @property
    def wants_snapshot(self) -> bool:
        return self._snapshot_bytes == 0 or self._log_bytes > max(
            self._snapshot_bytes, _MIN_COMPACT
        )

    def write_snapshot(self, state: State) -> None:
        """Replace the snapshot atomically, then empty the log it now holds."""
        data = json.dumps(state).encode()  # the C encoder: json.dump is ≈4x slower
        tmp = self.snapshot_path + ".tmp"
        try:
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
            try:
                write_all(fd, data)
            finally:
                os.close(fd)
            os.replace(tmp, self.snapshot_path)
        except OSError:
            with contextlib.suppress(OSError):
                os.unlink(tmp)  # a partial file would hold on to the space that ran out
            raise
        self._snapshot_bytes = len(data)
        with contextlib.suppress(FileNotFoundError):
            os.truncate(self.log_path, 0)
        self._log_bytes = 0

    def append(self, change: Change) -> None:
        """Add one change; on failure the log is as before (no partial line stays)."""
        data = json.dumps(change).encode() + b"\n"
        fd = os.open(self.log_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        try:
            write_all(fd, data)
        except OSError:
            with contextlib.suppress(OSError):
                os.ftruncate(fd, self._log_bytes)
            raise
        finally:
            os.close(fd)
        self._log_bytes += len(data)


def _apply(state: State, topics: dict[str, Any], change: Change) -> None:
    for key in (
        "producer_id_block_end",
        "placements",
        "brokers",
        "broker_configs",
        "group_configs",
        "acls",
        "scram",
        "client_quotas",
    ):
        if key in change:
            state[key] = change[key]
    for name, topic in change.get("topics", {}).items():
        if topic is None:
            topics.pop(name, None)
        else:
            topics[name] = topic
    for name, topic_id, partition in change.get("partitions", []):
        topic = topics.get(name)
        if topic is None or topic["topic_id"] != topic_id:
            continue  # a line the snapshot already holds, for a topic since deleted
        parts = topic["partitions"]
        index = partition["partition"]
        if index < len(parts):
            parts[index] = partition
        else:
            parts.append(partition)
