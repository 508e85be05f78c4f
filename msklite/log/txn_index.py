"""The aborted-transaction index of a segment: `<base offset>.txnindex`, in Kafka's format
(TransactionIndex): 34-byte entries, int16 version 0, int64 producer id, int64 first offset,
int64 last offset (the ABORT marker), int64 last stable offset. An entry lives in the segment
holding its marker. The index is derived data: recovery rebuilds it from the log's markers."""

from __future__ import annotations

import os
import struct
from collections.abc import Iterable

from msklite.log.producer_state import AbortedTxn

_ENTRY = struct.Struct(">hqqqq")
VERSION = 0


def path_for(segment_log_path: str) -> str:
    return segment_log_path[: -len(".log")] + ".txnindex"


def _encode(entries: Iterable[AbortedTxn]) -> bytes:
    return b"".join(_ENTRY.pack(VERSION, *e) for e in entries)


def append(path: str, entry: AbortedTxn) -> None:
    with open(path, "ab") as f:
        f.write(_encode([entry]))


def rewrite(path: str, entries: list[AbortedTxn]) -> None:
    """The file holds exactly `entries`; no file when there are none (as Kafka leaves it)."""
    if entries:
        with open(path, "wb") as f:
            f.write(_encode(entries))
    elif os.path.exists(path):
        os.unlink(path)


def read(path: str) -> list[AbortedTxn]:
    try:
        with open(path, "rb") as f:
            data = f.read()
    except FileNotFoundError:
        return []
    out = []
    for pos in range(0, len(data) - _ENTRY.size + 1, _ENTRY.size):
        version, pid, first, last, lso = _ENTRY.unpack_from(data, pos)
        if version == VERSION:
            out.append(AbortedTxn(pid, first, last, lso))
    return out
