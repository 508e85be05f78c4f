"""The benchmark harness works: the smallest load of `python -m benchmarks --quick` (raw
Produce and Fetch of 16 KiB batches into one msklite process, a fraction of a second each)
runs end to end and writes its JSON. Figures are not checked: timings are not test results."""

from __future__ import annotations

import json
from pathlib import Path

from benchmarks.__main__ import main


def test_quick_suite_smallest_load(tmp_path: Path) -> None:
    out = tmp_path / "bench.json"
    argv = ["--quick", "--only", "ingest", "--compare", "none", "--no-rf3"]
    argv += ["--batch-sizes", "16KiB", "--seconds", "0.2", "--output", str(out)]
    assert main(argv) == 0
    doc = json.loads(out.read_text())
    assert doc["machine"]["cpu_count"] >= 1
    ingest = doc["results"]["ingest"]
    assert ingest["errors"] == []
    runs = ingest["runs"]["msklite"]
    assert runs["produce 16 KiB"][0]["requests"] > 0
    assert runs["fetch 16 KiB"][0]["bytes"] > 0
    verdicts = doc["results"]["targets (issue 5)"]["verdicts"]
    assert {v["verdict"] for v in verdicts} <= {"PASS", "MISS", "n/a"}
