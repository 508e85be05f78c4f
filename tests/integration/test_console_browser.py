"""The web console in a real headless browser (Debian's chromium, driven by Playwright): each
page after a known load shows the cluster's numbers, and "Stop broker 2" (confirmed) stops it
and moves its leaderships. A screenshot of each page goes to screenshots/ (git-ignored).

Chromium comes from `scripts/install-chromium` (run by the README's test command and
.ci/run); Playwright cannot download its own browser here, so it launches /usr/bin/chromium.
Without it these tests skip, saying why.
"""

from __future__ import annotations

import gc
import os
import shutil
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import pytest
from confluent_kafka import Consumer, Producer, TopicPartition

from msklite import Cluster
from msklite.metrics.meters import sampler_for
from msklite.web.service import Service
from tests.integration.helpers import wait_until

T = TypeVar("T")
CHROMIUM = "/usr/bin/chromium"
SCREENSHOTS = Path(__file__).resolve().parents[2] / "screenshots"
TOPIC = "orders"
PER_PARTITION = {0: 10, 1: 20, 2: 30}
COMMITTED = {0: 10, 1: 5, 2: 0}
VALUE = b"o" * 200

sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed")
expect = sync_api.expect
if not (os.access(CHROMIUM, os.X_OK) or shutil.which("chromium")):
    pytest.skip(
        f"no chromium at {CHROMIUM}: scripts/install-chromium could not install it "
        "(it needs root and Debian's apt)",
        allow_module_level=True,
    )


@pytest.fixture(scope="module")
def service() -> Iterator[Service]:
    with Service(Cluster(brokers=3), aws_port=0) as svc:
        cluster = svc.cluster
        _on_loop(
            svc,
            lambda: cluster.create_topic(TOPIC, len(PER_PARTITION), 3, {"retention.ms": 3_600_000}),
        )
        p = Producer({"bootstrap.servers": cluster.bootstrap_servers, "linger.ms": 0})
        for partition, n in PER_PARTITION.items():
            for _ in range(n):
                p.produce(TOPIC, VALUE, partition=partition)
        assert p.flush(30) == 0
        c = Consumer(
            {
                "bootstrap.servers": cluster.bootstrap_servers,
                "group.id": "billing",
                "enable.auto.commit": False,
            }
        )
        c.commit(
            offsets=[TopicPartition(TOPIC, p, o) for p, o in COMMITTED.items()],
            asynchronous=False,
        )
        c.close()
        # a sample of the rates and the lag now (the sampler otherwise takes one every 5 s)
        _tick(svc)
        yield svc


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    with sync_api.sync_playwright() as p:
        b = p.chromium.launch(executable_path=shutil.which("chromium") or CHROMIUM)
        yield b
        b.close()
    # Playwright's greenlets, collected now: a greenlet the collector finds later is killed by
    # a switch into it, and inside a compile() that breaks CPython 3.11's AST recursion check
    # ("AST constructor recursion depth mismatch" in a later module's import)
    gc.collect()


@pytest.fixture
def page(browser: Any, service: Service) -> Iterator[Any]:
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    pg = context.new_page()
    errors: list[str] = []
    pg.on("pageerror", lambda e: errors.append(str(e)))
    pg.goto(f"{service.url}/console/?interval=300")
    pg.wait_for_selector("body[data-updated]")
    yield pg
    context.close()
    assert errors == []  # no JavaScript error on the page


def _on_loop(service: Service, fn: Callable[[], T]) -> T:
    """`fn()` on the service's event loop (the cluster's synchronous API would otherwise run
    it on this thread: the cluster runs on the service's loop, not a loop of its own)."""
    return service.call(fn)


def _tick(service: Service) -> None:
    """A sample of the rates and the lag now (the sampler otherwise takes one every 5 s)."""
    _on_loop(service, sampler_for(service.cluster).tick)


def _leader(service: Service, topic: str, partition: int) -> int:
    return _on_loop(service, lambda: service.cluster.partition(topic, partition).leader)


def _shot(page: Any, name: str) -> None:
    SCREENSHOTS.mkdir(exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / f"console-{name}.png"), full_page=True)


def _cells(page: Any, selector: str) -> list[str]:
    return [t.strip() for t in page.locator(selector).all_inner_texts()]


def _leaders(service: Service) -> dict[int, int]:
    """Partitions each running broker leads, every topic included (as the page counts)."""

    def count() -> dict[int, int]:
        cluster = service.cluster
        out = dict.fromkeys(cluster.brokers, 0)
        for name, n in cluster.topics(internal=True).items():
            for p in range(n):
                leader = cluster.partition(name, p).leader
                if leader in out:
                    out[leader] += 1
        return out

    return _on_loop(service, count)


def test_topics_page_shows_the_partitions(page: Any, service: Service) -> None:
    cluster = service.cluster
    page.goto(page.url.split("#")[0] + "#topics")
    topic = page.locator(f'details[data-topic="{TOPIC}"]')
    topic.locator("summary").click()
    rows = topic.locator("tbody tr")
    assert rows.count() == len(PER_PARTITION)
    views = _on_loop(service, lambda: [cluster.partition(TOPIC, p) for p in PER_PARTITION])
    for p, n in PER_PARTITION.items():
        row = topic.locator(f'tr[data-partition="{p}"]')
        view = views[p]
        assert row.locator(".leader").inner_text() == str(view.leader)
        assert row.locator(".log-end").inner_text() == str(n)
        assert row.locator(".hw").inner_text() == str(n)
        assert row.locator(".log-start").inner_text() == "0"
        assert row.locator(".isr").inner_text() == ", ".join(map(str, view.isr))
        assert int(row.locator(".size").get_attribute("data-bytes")) > n * len(VALUE)
    assert topic.locator(".messages").inner_text() == str(sum(PER_PARTITION.values()))
    assert "retention.ms=3600000" in topic.locator(".configs").inner_text()
    # internal topics only when asked for
    assert page.locator('details[data-topic="__consumer_offsets"]').count() == 0
    page.check("#show-internal")
    assert page.locator('details[data-topic="__consumer_offsets"]').count() == 1
    page.uncheck("#show-internal")
    _shot(page, "topics")


def test_groups_page_shows_the_lag_and_its_chart(page: Any, service: Service) -> None:
    page.goto(page.url.split("#")[0] + "#groups")
    group = page.locator('div[data-group="billing"]')
    group.wait_for()
    assert group.locator(".state").inner_text() == "Empty"
    for p, committed in COMMITTED.items():
        row = group.locator(f'tr[data-topic="{TOPIC}"][data-partition="{p}"]')
        assert row.locator(".committed").inner_text() == str(committed)
        assert row.locator(".end").inner_text() == str(PER_PARTITION[p])
        assert row.locator(".lag").inner_text() == str(PER_PARTITION[p] - committed)
    total = sum(PER_PARTITION[p] - c for p, c in COMMITTED.items())
    assert group.locator(".total-lag").inner_text() == str(total)
    # more records, another sample: the chart draws a line per partition over the samples
    cluster = service.cluster
    producer = Producer({"bootstrap.servers": cluster.bootstrap_servers, "linger.ms": 0})
    for _ in range(10):
        producer.produce(TOPIC, VALUE, partition=2)
    assert producer.flush(30) == 0
    _tick(service)
    expect(group.locator(".total-lag")).to_have_text(str(total + 10))
    expect(group.locator(".chart svg polyline")).to_have_count(len(PER_PARTITION))
    legend = group.locator(".legend").inner_text()
    assert all(f"{TOPIC}-{p}" in legend for p in PER_PARTITION)
    # a live member: its group is Stable, and the page shows it with its assignment
    member = Consumer(
        {
            "bootstrap.servers": cluster.bootstrap_servers,
            "group.id": "live",
            "client.id": "shipper",
        }
    )
    try:
        member.subscribe([TOPIC])
        deadline = time.monotonic() + 30
        while not member.assignment():
            assert time.monotonic() < deadline, "no assignment"
            member.poll(0.1)
        live = page.locator('div[data-group="live"]')
        expect(live.locator(".state")).to_have_text("Stable")
        row = live.locator("table.members tbody tr")
        expect(row).to_have_count(1)
        expect(row).to_contain_text("shipper")
        expect(row).to_contain_text(", ".join(f"{TOPIC}-{p}" for p in PER_PARTITION))
        _shot(page, "groups")
    finally:
        member.close()


def test_transactions_page_shows_them_once_they_exist(page: Any, service: Service) -> None:
    page.goto(page.url.split("#")[0] + "#transactions")
    assert page.locator("#page-transactions").inner_text().strip() == "No transactional ids."
    cluster = service.cluster
    _on_loop(service, lambda: cluster.create_topic("invoices", 1, 3))
    p = Producer({"bootstrap.servers": cluster.bootstrap_servers, "transactional.id": "invoicer"})
    p.init_transactions(30)
    p.begin_transaction()
    p.produce("invoices", b"x")
    p.flush(30)
    row = page.locator('tr[data-transactional-id="invoicer"]')
    expect(row.locator(".state")).to_have_text("Ongoing")  # without a reload
    expect(row).to_contain_text("invoices-0")
    p.commit_transaction(30)
    expect(row.locator(".state")).to_have_text("CompleteCommit")
    _shot(page, "transactions")


def test_brokers_page_then_stop_broker_2_moves_leadership(page: Any, service: Service) -> None:
    cluster = service.cluster
    led_by_2 = [p for p in PER_PARTITION if _leader(service, TOPIC, p) == 2]
    assert led_by_2  # RF 3 over 3 brokers: broker 2 leads one of the three partitions
    expected = _leaders(service)
    for node_id in (1, 2, 3):
        row = page.locator(f'tr[data-broker="{node_id}"]')
        assert row.locator(".status").inner_text() == "up"
        assert row.locator(".leaders").inner_text() == str(expected[node_id])
        assert row.locator(".under-replicated").inner_text() == "0"
    # the leaders took the records in (their one-minute rates, sampled in the fixture)
    for p in PER_PARTITION:
        leader = _leader(service, TOPIC, p)
        cell = page.locator(f'tr[data-broker="{leader}"] .bytes-in')
        assert cell.inner_text() != "0 B/s"
    # brokers grouped by AZ, one per AZ
    assert page.locator("div[data-az]").count() == 3
    _shot(page, "brokers")

    page.get_by_role("button", name="Stop broker 2").click()
    dialog = page.locator("dialog#confirm")
    assert dialog.is_visible()
    assert "Stop broker 2?" in dialog.inner_text()
    page.get_by_role("button", name="Confirm").click()
    row = page.locator('tr[data-broker="2"]')
    expect(row.locator(".status")).to_have_text("down")
    assert 2 not in cluster.brokers
    assert row.get_by_role("button", name="Start broker 2").is_visible()
    # its leaderships moved to the others; the page shows the new leaders
    after = _leaders(service)
    assert sum(after.values()) == sum(expected.values())
    for node_id in (1, 3):  # the page refreshes by itself
        expect(page.locator(f'tr[data-broker="{node_id}"] .leaders')).to_have_text(
            str(after[node_id])
        )
    page.goto(page.url.split("#")[0] + "#topics")
    page.locator(f'details[data-topic="{TOPIC}"] summary').click()
    for p in led_by_2:
        leader = page.locator(f'details[data-topic="{TOPIC}"] tr[data-partition="{p}"] .leader')
        assert leader.inner_text() not in ("2", "none")
        assert leader.inner_text() == str(_leader(service, TOPIC, p))
    page.goto(page.url.split("#")[0] + "#brokers")
    _shot(page, "brokers-after-stop")
    # and back: the start button, confirmed
    row.get_by_role("button", name="Start broker 2").click()
    page.get_by_role("button", name="Confirm").click()
    wait_until(lambda: 2 in cluster.brokers, "broker 2 to start")
