"""The targets, checked against the figures of one run: value, target, verdict.

A verdict is PASS or MISS when the run measured the figure at the size the target names, and
n/a when it did not (benchmark not selected, every run of it failed, or --quick measured a
smaller size). Ratios are of medians within this run, so that machine load cancels out.
Producer ratios are judged on the warm figures (`warm.py`), or on the cold ones when the run
was made with `--no-warm`: the note says which.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from benchmarks.report import Section


@dataclass(frozen=True)
class Verdict:
    target: str
    value: str
    goal: str
    verdict: str  # PASS, MISS or n/a
    note: str = ""

    def as_dict(self) -> dict[str, str]:
        return self.__dict__.copy()


def _ratio_goal(
    data: dict[str, Any], *, kind: str, mine: str, acks: str | None, minimum: float
) -> tuple[str, str, str]:
    """(value, verdict, note): the worst ratio mine/mock over the loads of `kind`."""
    peer = "mock"
    rows = data.get("median_msg_per_s", {}).get(kind, {})
    ratios = {
        load: row.get(f"ratio {mine}/{peer}")
        for load, row in rows.items()
        if acks is None or load.endswith(f"acks={acks}")
    }
    have = {k: v for k, v in ratios.items() if v is not None}
    if not have:
        return "-", "n/a", "not measured"
    worst = min(have, key=lambda k: have[k])
    ordered = sorted(have.values())
    median = ordered[len(ordered) // 2]
    verdict = "PASS" if have[worst] >= minimum and len(have) == len(ratios) else "MISS"
    note = f"worst of {len(have)} loads ({worst}); median {median:.2f}"
    if kind == "produce":
        note += "; warm" if data.get("warm", True) else "; cold (--no-warm)"
    if len(have) < len(ratios):
        note += f"; {len(ratios) - len(have)} loads without a figure"
    return f"{have[worst]:.2f}", verdict, note


def evaluate(sections: Sequence[Section], quick: bool) -> list[Verdict]:
    by_name = {s.name: s.data for s in sections}
    out: list[Verdict] = []

    def add(
        target: str, goal: str, fn: Callable[[dict[str, Any]], tuple[str, str, str]], section: str
    ) -> None:
        data = by_name.get(section)
        if not data:
            out.append(Verdict(target, "-", goal, "n/a", f"{section} not run"))
            return
        try:
            value, verdict, note = fn(data)
        except (KeyError, TypeError, ValueError, ZeroDivisionError) as e:
            value, verdict, note = "-", "n/a", f"no figure ({e!r})"
        out.append(Verdict(target, value, goal, verdict, note))

    # (kind, who, RF 3 minimum): read-back runs on the acks=1 topics, so no acks filter
    for kind, who, rf3_minimum in (("produce", "producer", 0.8), ("consume", "consumer", 0.7)):
        rf3_acks = "all" if kind == "produce" else None
        add(
            f"{who} msklite/mock, RF 1",
            "≥ 0.90",
            functools.partial(_ratio_goal, kind=kind, mine="msklite", acks=None, minimum=0.9),
            "throughput",
        )
        add(
            f"{who} msklite RF 3/mock" + (", acks=all" if rf3_acks else ""),
            f"≥ {rf3_minimum:.2f}",
            functools.partial(
                _ratio_goal, kind=kind, mine="msklite RF3", acks=rf3_acks, minimum=rf3_minimum
            ),
            "throughput",
        )

    def ingest_fig(d: dict[str, Any], label: str, key: str) -> float:
        value = d["median"][label]["produce 1 MiB"][key]
        if value is None:
            raise ValueError(f"{label}: no {key}")
        return float(value)

    def ingest_gib(d: dict[str, Any]) -> tuple[str, str, str]:
        mib = ingest_fig(d, "msklite", "mib_per_s")
        return f"{mib / 1024:.2f} GiB/s", "PASS" if mib >= 1024 else "MISS", "1 MiB batches, RF 1"

    def ingest_vs_tansu(d: dict[str, Any]) -> tuple[str, str, str]:
        mine, theirs = ingest_fig(d, "msklite", "mib_per_s"), ingest_fig(d, "tansu", "mib_per_s")
        note = f"{mine:,.0f} vs {theirs:,.0f} MiB/s, 1 MiB batches"
        return f"{mine / theirs:.2f}", "PASS" if mine >= theirs else "MISS", note

    def cpu_vs_tansu(d: dict[str, Any]) -> tuple[str, str, str]:
        mine = ingest_fig(d, "msklite RF3 acks=all", "broker_cpu_s_per_gib")
        theirs = ingest_fig(d, "tansu", "broker_cpu_s_per_gib")
        return (
            f"{mine:.2f} s",
            "PASS" if mine <= theirs else "MISS",
            f"Tansu RF 1: {theirs:.2f} s; raw ingest of 1 MiB batches",
        )

    add("broker-bound ingest, msklite RF 1", "≥ 1 GiB/s", ingest_gib, "ingest")
    add("broker-bound ingest msklite/Tansu", "≥ 1.00", ingest_vs_tansu, "ingest")
    add("broker CPU-s per GiB, msklite RF 3", "≤ Tansu RF 1", cpu_vs_tansu, "ingest")

    def latency_p99(d: dict[str, Any], load: str) -> tuple[str, str, str]:
        med = d["median"][load]["msklite RF3"]
        p99 = med["p99_ms"]
        if p99 is None:
            raise ValueError("no latency runs")
        linger = d["loads"][load]["linger_ms"]
        note = f"p50 {med['p50_ms']:.2f} ms, p99.9 {med['p999_ms']:.2f} ms; linger.ms={linger}"
        return f"{p99:.2f} ms", "PASS" if p99 <= 5.0 else "MISS", note

    for load in ("5,000/s", "50,000/s"):
        add(
            f"latency p99 at {load} of 1 KiB, acks=all, RF 3",
            "≤ 5 ms",
            functools.partial(latency_p99, load=load),
            "latency",
        )

    def cold(d: dict[str, Any]) -> tuple[str, str, str]:
        s = d["first_metadata_s"]["median"]
        if s is None:
            raise ValueError("no cold-start runs")
        return f"{s * 1000:.0f} ms", "PASS" if s <= 0.150 else "MISS", "spawn -> Metadata"

    def idle(d: dict[str, Any]) -> tuple[str, str, str]:
        kib = d["idle_rss_kib"]["median"]
        if kib is None:
            raise ValueError("no cold-start runs")
        mb = kib * 1024 / 1e6
        return f"{mb:.1f} MB", "PASS" if mb <= 60 else "MISS", f"{kib / 1024:.1f} MiB, 3 brokers"

    add("cold start", "≤ 150 ms", cold, "coldstart")
    add("idle RSS", "≤ 60 MB", idle, "coldstart")

    def metadata(d: dict[str, Any]) -> tuple[str, str, str]:
        md = d["msklite"]["metadata"]
        n = md["partitions_listed"]
        # the first answer after the topics were created is the one that encodes them all
        ms = md["first_s"] * 1000
        note = f"first answer after creation; then {md['median_s'] * 1000:.2f} ms (cached)"
        if n >= 10_000:
            return f"{ms:.1f} ms", "PASS" if ms <= 20 else "MISS", f"{n:,} partitions, {note}"
        why = d["msklite"]["create"]["stopped"] or "fewer partitions asked for"
        verdict = "n/a" if quick and not d["msklite"]["create"]["stopped"] else "MISS"
        return f"{ms:.2f} ms", verdict, f"only {n:,} partitions: {why}"

    add("Metadata, 10,000 partitions", "≤ 20 ms", metadata, "scale")

    add(
        "transactional producer msklite/mock, RF 3",
        "≥ 0.80",
        functools.partial(_ratio_goal, kind="produce", mine="msklite", acks=None, minimum=0.8),
        "transactions",
    )

    def read_committed(d: dict[str, Any]) -> tuple[str, str, str]:
        rows = d["median_msg_per_s"]["consume"]
        ratios = {k: r["ratio committed/uncommitted"] for k, r in rows.items()}
        have = {k: v for k, v in ratios.items() if v is not None}
        if not have:
            raise ValueError("no consume runs")
        worst = min(have, key=lambda k: have[k])
        verdict = "PASS" if have[worst] >= 0.9 and len(have) == len(ratios) else "MISS"
        return f"{have[worst]:.2f}", verdict, f"worst of {len(have)} loads ({worst})"

    add("read_committed/read_uncommitted, msklite", "≥ 0.90", read_committed, "transactions")
    return out


def section(verdicts: Sequence[Verdict]) -> Section:
    s = Section("targets")
    for v in verdicts:
        s.row(v.target, v.value, f"target {v.goal:<12} {v.verdict:<4}  {v.note}".rstrip())
    s.data = {"verdicts": [v.as_dict() for v in verdicts]}
    return s
