"""What checking produced records costs: `validate_produced_batch` beside the CRC-32C check alone.

In process, one thread, no broker: each produced batch of 1 KiB records at the two typical
producer batch sizes (16 KiB, the Java producer's `batch.size`; ≈ 1 MiB, librdkafka's
`batch.size` and the default `max.message.bytes`), uncompressed and with each codec. The values
are hex text (compressible about 2:1, like much real traffic). Each figure is the best of three
rounds of repeated calls, so it is the cost on a quiet core: other processes on these 2 cores
make single rounds noisy (the JSON keeps every round).

Reported per batch: µs to validate (header, CRC, decompression, the walk over every record),
the same as GiB/s of record bytes (uncompressed), and the overhead against what the produce
path did before it looked inside a batch: the header and CRC-32C check alone.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from functools import partial
from typing import Any

from benchmarks.report import GIB, Section
from msklite.protocol.records import (
    CODECS,
    CRC_START,
    HEADER_SIZE,
    crc32c,
    encode_batch,
    validate_produced_batch,
)

BATCHES = {"16 KiB": 16, "1 MiB": 1000}  # 1 KiB records per batch
RECORD_BYTES = 1024
ROUNDS = 3


def _values(n: int) -> list[tuple[bytes | None, bytes | None]]:
    rng = random.Random(5)
    return [(None, rng.randbytes(RECORD_BYTES // 2).hex().encode()) for _ in range(n)]


def _best_of(fn: Callable[[], object], min_seconds: float) -> list[float]:
    """Seconds per call of `fn`, one figure per round; each round repeats it ≥ `min_seconds`."""
    fn()  # first call: imports, scratch buffer
    rounds = []
    for _ in range(ROUNDS):
        calls = 0
        t0 = time.perf_counter()
        while True:
            fn()
            calls += 1
            elapsed = time.perf_counter() - t0
            if elapsed >= min_seconds:
                break
        rounds.append(elapsed / calls)
    return rounds


def run(quick: bool = False) -> Section:
    section = Section("validation")
    min_seconds = 0.03 if quick else 0.15
    cases: list[dict[str, Any]] = []
    for label, count in BATCHES.items():
        records = _values(count)
        plain = len(encode_batch(records)) - HEADER_SIZE
        for codec, name in CODECS.items():
            batch = memoryview(encode_batch(records, codec=codec))
            validate = _best_of(partial(validate_produced_batch, batch, 1 << 30), min_seconds)
            crc = _best_of(partial(crc32c, batch[CRC_START:]), min_seconds)
            v, c = min(validate), min(crc)
            case = {
                "batch": label,
                "codec": name,
                "records": count,
                "record_bytes": plain,
                "batch_bytes": len(batch),
                "validate_s": validate,
                "crc_only_s": crc,
                "validate_us": v * 1e6,
                "gib_per_s": plain / v / GIB,
                "ns_per_record": v / count * 1e9,
                "overhead_vs_crc": v / c,
            }
            cases.append(case)
            section.row(
                f"validate {label} {name}",
                f"{v * 1e6:,.0f} µs",
                f"{plain / v / GIB:.2f} GiB/s, {v / count * 1e9:,.0f} ns/record; "
                f"CRC alone {c * 1e6:,.1f} µs ({v / c:,.0f}x)",
            )
    section.data["cases"] = cases
    section.data["note"] = "best of 3 rounds per figure; 2 shared cores: noisy"
    return section
