"""The benchmark harness works: the smallest load of `python -m benchmarks --quick` (raw
Produce and Fetch of 16 KiB batches into one msklite process, a fraction of a second each)
runs end to end, with the machine preparation (warm-up) and without it (`--no-warm`), and
writes its JSON. Figures are not checked: timings are not test results."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from benchmarks import procs, warm
from benchmarks.__main__ import main


@pytest.mark.parametrize("warm_flag", [[], ["--no-warm"]], ids=["warm", "cold"])
def test_quick_suite_smallest_load(tmp_path: Path, warm_flag: list[str]) -> None:
    out = tmp_path / "bench.json"
    argv = ["--quick", "--only", "ingest", "--compare", "none", "--no-rf3", *warm_flag]
    # 0.05 s windows: a 70 MiB warm-up, and a cold run needs no pause
    argv += ["--batch-sizes", "16KiB", "--seconds", "0.05", "--output", str(out)]
    assert main(argv) == 0
    doc = json.loads(out.read_text())
    assert doc["machine"]["cpu_count"] >= 1
    assert doc["settings"]["warm"] is not warm_flag
    ingest = doc["results"]["ingest"]
    assert ingest["errors"] == []
    runs = ingest["runs"]["msklite"]
    produce = runs["produce 16 KiB"][0]
    assert produce["requests"] > 0
    assert runs["fetch 16 KiB"][0]["bytes"] > 0
    preparation = produce["preparation"]
    assert preparation["warm"] is not warm_flag
    if not warm_flag:
        assert preparation["mib"] == warm.mib_for_window(0.05) == 70
    verdicts = doc["results"]["targets"]["verdicts"]
    assert {v["verdict"] for v in verdicts} <= {"PASS", "MISS", "n/a"}


def test_warm_up_sizes_and_deletes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TMPDIR", str(tmp_path))
    monkeypatch.setattr("tempfile.tempdir", None)  # re-read TMPDIR
    assert warm.mib_for_load(300_000 * 1024, 2) == 733  # 1 KiB x 300k at RF 1, plus the client
    assert warm.mib_for_load(0, 4) == warm.MIN_MIB
    assert warm.mib_for_load(1 << 40, 4) == warm.MAX_MIB
    assert warm.mib_for_window(1.5) == 2112  # all a broker writes in an ingest window
    assert warm.mib_for_window(0.01) == warm.MIN_MIB
    done = warm.warm_up(2)
    assert done["mib"] == 2
    assert done["seconds"] > 0
    assert list(tmp_path.iterdir()) == []  # nothing left behind


def test_peers_dir_is_found_beside_the_repository_or_named(tmp_path: Path) -> None:
    assert procs.default_peers_dir().parts[-2:] == ("shared", "peers")
    try:
        assert procs.set_peers_dir(tmp_path) == tmp_path.resolve()
        with pytest.raises(procs.BenchError, match="--peers-dir"):
            procs.mock_command(3, [])
    finally:
        procs.set_peers_dir(None)


def test_throughput_reports_a_cold_row_beside_the_warm_one() -> None:
    from benchmarks import throughput

    load = throughput.Load(100, 1, "1")
    section = throughput.run(
        1000,
        1000,
        1,
        readback_s=0.05,
        timeout=60,
        loads=(load,),
        with_rf3=False,
        peers=(),
        cold_loads=(load.name,),
    )
    assert section.errors == []
    [warm_run] = section.data["produce"]["msklite"][load.name]
    [cold_run] = section.data["produce_cold"]["msklite"][load.name]
    assert warm_run["preparation"] == warm_run["preparation"] | {"warm": True, "mib": 64}
    assert cold_run["preparation"] == {"warm": False, "settle_s": 0.0}  # small: no pause
    assert section.data["consume"]["msklite"][load.name]  # read back after the warm run only
    rows = [figure for figure, _, _ in section.rows]
    assert f"produce {load.name}" in rows and f"produce {load.name} cold" in rows


def test_latency_consumer_runs_in_its_own_process() -> None:
    """The latency load's consumer is a process of its own (not a thread sharing the sender's
    GIL) and still receives every record, with its send stamps comparable to the sender's."""
    from benchmarks import latency

    setup = latency.SETUPS[0]
    section = latency.run(
        1,
        0.2,
        loads=(latency.Load(2_000, 0, peers=False),),
        warmup_s=0.1,
        setups=(setup,),
        warm=False,
    )
    assert section.errors == []
    (result,) = section.data["runs"]["2,000/s"][setup[0]]
    assert result["received"] == result["sent"] == 600
    assert 0 < result["p50_ms"] <= result["max_ms"] < 10_000
    assert result["consumer_pid"] != os.getpid()
    assert result["broker_cpu_s"] > 0
    assert result["load_average_1m"] >= 0
