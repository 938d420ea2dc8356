"""The fleet page at `/`, in a real headless Chromium (Debian's, driven by selenium through
chromedriver), against an in-process daemon on the rig's ZooKeeper, PostgreSQL, apiserver
(kwok pods) and Kafka (worker heartbeats).

A screenshot of the page after the orchestration is saved as a test artefact:
`test-artifacts/fleet-page.png` (gitignored; RECONCILER_TEST_ARTIFACTS moves it).
"""

from __future__ import annotations

import os
import re
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from reconciler.adapters.sql.inventory import insert_ids
from rig import provision
from tests.support.browser import CHROMIUM_FLAGS
from tests.support.daemon import Running, running, settings_for
from tests.support.fleet import (
    REPO,
    HeartbeatSender,
    eventually,
    read_layout,
    seed,
    write_policy,
)

TOKEN = "page-s3cret"
ARTIFACTS = Path(os.environ.get("RECONCILER_TEST_ARTIFACTS") or REPO / "test-artifacts")


@pytest.fixture(scope="module")
def chromium(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """Debian's chromium + chromedriver (installed by the rig if missing), one per module."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    provision.ensure("browser")
    options = webdriver.ChromeOptions()
    options.binary_location = "/usr/bin/chromium"
    for flag in CHROMIUM_FLAGS:
        options.add_argument(flag)
    options.add_argument(f"--user-data-dir={tmp_path_factory.mktemp('chromium-profile')}")
    log = tmp_path_factory.mktemp("chromedriver") / "chromedriver.log"
    driver = webdriver.Chrome(
        options=options, service=Service("/usr/bin/chromedriver", log_output=str(log))
    )
    driver.set_page_load_timeout(30)
    try:
        yield driver
    finally:
        driver.quit()


@pytest.fixture
def fleet(
    zk_hosts: str, pg_url: str, kube: Any, kube_namespace: str, kafka: Any, tmp_path: Path
) -> Iterator[tuple[Running, list[str]]]:
    things, _ = seed(pg_url, things=24, rules=7)
    policy = write_policy(
        tmp_path / "policy.yaml",
        kube_namespace,
        Thing={"initInstances": 3, "maxInstances": 10, "heartbeat": {"enabled": True}},
        Rule={"initInstances": 3, "maxInstances": 5},
    )
    settings = settings_for(zk_hosts, pg_url, kube, policy, kafka=kafka.bootstrap, token=TOKEN)
    workers = HeartbeatSender(kafka.bootstrap, {0, 1, 2})
    try:
        with running(settings) as d:
            yield d, things
    finally:
        workers.close()


def orchestrate_passes(http: httpx.Client) -> float:
    """reconciler_reconciles_total{trigger="orchestrate"}: POSTs that reached the loop."""
    text = http.get("/metrics").text
    found = re.search(r'^reconciler_reconciles_total\{trigger="orchestrate"\} (\S+)', text, re.M)
    return float(found.group(1)) if found else 0.0


def rows(driver: Any, kind: str) -> dict[str, list[str]]:
    """The kind's instance table as shown: instance id -> its cells' text."""
    from selenium.webdriver.common.by import By

    table = driver.find_element(By.ID, f"kind-{kind}")
    return {
        tr.get_attribute("data-instance"): [td.text for td in tr.find_elements(By.TAG_NAME, "td")]
        for tr in table.find_elements(By.CSS_SELECTOR, "tbody tr[data-instance]")
    }


def settled(driver: Any, url: str) -> dict[str, list[str]] | None:
    """Reload until every Thing pod is Running and every worker has been heard."""
    driver.get(url)
    shown = rows(driver, "Thing")
    if len(shown) != 3:
        return None
    for cells in shown.values():
        if cells[5] != "Running" or not re.fullmatch(r"\d+(\.\d)? s", cells[3]):
            return None
    return shown


def test_the_fleet_page_shows_each_kind_finds_a_resource_and_orchestrates_with_the_token(
    chromium: Any,
    fleet: tuple[Running, list[str]],
    pg_url: str,
    kazoo_client: Any,
    tmp_path: Path,
) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select

    d, _ = fleet
    driver = chromium
    http = httpx.Client(base_url=d.url, timeout=30)

    # 1. Per kind: instances with used/count, _reload.times, heartbeat age and pod phase,
    #    as ZooKeeper and the apiserver have them.
    shown = eventually(lambda: settled(driver, d.url + "/"), timeout=60, what="pods Running")
    layout = read_layout(kazoo_client, "Thing")
    for iid, cells in shown.items():
        node = layout[int(iid)]
        assert cells[:3] == [
            iid,
            f"{node['node']['used']} / {node['node']['count']}",
            str(node["times"]),
        ]
        assert cells[4] == f"iota-dac-{iid}"
    assert sorted(rows(driver, "Rule")) == ["0", "1", "2"]
    assert driver.title == "reconciler: fleet"
    facts = driver.find_element(By.ID, "kind-Thing").find_element(By.CLASS_NAME, "facts").text
    assert "rows 24" in facts and "instances 3" in facts

    # 2. Where does resource X run: the box asks the REST API and marks the row.
    orch = http.get("/v1/api/orchestrations/Thing").json()
    thing = orch["instances"][1]["resources"][0]
    Select(driver.find_element(By.ID, "lookup-kind")).select_by_value("Thing")
    driver.find_element(By.ID, "lookup-id").send_keys(thing)
    driver.find_element(By.ID, "lookup-go").click()
    result = driver.find_element(By.ID, "lookup-result")
    eventually(lambda: "runs in" in result.text, timeout=10)
    assert result.text == f"Thing {thing} runs in instance 1 (pod iota-dac-1)"
    assert "found" in driver.find_element(By.ID, "inst-Thing-1").get_attribute("class")
    assert not driver.find_elements(By.CSS_SELECTOR, "tr.found:not(#inst-Thing-1)")

    # An id that is no Thing (and is markup) is answered as text, never as HTML.
    hostile = '<img src=x onerror="document.title=1">'
    box = driver.find_element(By.ID, "lookup-id")
    box.clear()
    box.send_keys(hostile)
    driver.find_element(By.ID, "lookup-go").click()
    eventually(lambda: result.text.startswith("404"), timeout=10)
    assert result.text == f"404: Thing {hostile!r} is not assigned to any instance"
    assert not driver.find_elements(By.TAG_NAME, "img")
    assert not driver.find_elements(By.CSS_SELECTOR, "tr.found")

    # 3. Orchestrate without the token: refused by the daemon, said on the page.
    before = orchestrate_passes(http)
    button = driver.find_element(By.CSS_SELECTOR, 'button.orchestrate[data-kind="Thing"]')
    out = driver.find_element(By.ID, "orchestrate-result-Thing")
    button.click()
    eventually(lambda: out.text.startswith("401"), timeout=10)
    assert out.text == "401: a bearer token is required (type the operator token above)"
    assert orchestrate_passes(http) == before

    # New rows the daemon has not seen (no MQTT here, the tick is a minute away): the
    # orchestration reads them, so the page can only show them if the POST ran a pass.
    insert_ids(pg_url, "Thing", [str(uuid.uuid4()) for _ in range(6)])
    driver.find_element(By.ID, "token").send_keys(TOKEN)
    button.click()
    eventually(lambda: "rebalanced" in out.text, timeout=30)
    assert out.text == "Thing rebalanced: 3 instances, 30 ids, 0 unassigned"
    assert "ok" in out.get_attribute("class")
    assert orchestrate_passes(http) == before + 1
    layout = read_layout(kazoo_client, "Thing")
    assert sum(len(i["ids"]) for i in layout.values()) == 30
    assert {i["node"]["used"] for i in layout.values()} == {10}
    # The page shows the new layout in place (capacity 30 // 3 + 1, one more reload each).
    shown = rows(driver, "Thing")
    assert {iid: cells[1:3] for iid, cells in shown.items()} == {
        iid: [f"{i['node']['used']} / {i['node']['count']}", str(i["times"])]
        for iid, i in ((str(n), i) for n, i in layout.items())
    }
    assert [cells[1] for cells in shown.values()] == ["10 / 11"] * 3
    assert {cells[2] for cells in shown.values()} == {"1"}
    kind_facts = driver.find_element(By.ID, "kind-Thing")
    assert kind_facts.find_element(By.CSS_SELECTOR, '[data-fact="rows"]').text == "30"
    assert kind_facts.find_element(By.CSS_SELECTOR, '[data-fact="capacity"]').text == "11"
    used = [cells[1] for cells in shown.values()]

    # The token stays in this tab (sessionStorage), not in a cookie or on the server.
    stored = driver.execute_script("return sessionStorage.getItem('reconciler.apiToken')")
    assert stored == TOKEN
    assert driver.get_cookies() == []

    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    height = driver.execute_script("return document.documentElement.scrollHeight")
    driver.set_window_size(1280, max(1000, int(height) + 40))
    for target in (ARTIFACTS / "fleet-page.png", tmp_path / "fleet-page.png"):
        assert driver.save_screenshot(str(target)), target
        assert target.stat().st_size > 10_000
    print(f"\nscreenshot: {ARTIFACTS / 'fleet-page.png'}")

    # After a reload the token is still there; the page shows what the pass left.
    driver.get(d.url + "/")
    assert driver.find_element(By.ID, "token").get_attribute("value") == TOKEN
    assert [c[1] for c in rows(driver, "Thing").values()] == used

    # Instances that come or go while the page is open: it says so within its refresh.
    stale = driver.find_element(By.CSS_SELECTOR, "#kind-Thing .stale")
    assert not stale.is_displayed()
    r = http.post(
        "/v1/api/orchestrations/Thing/orchestrate",
        json={"resourcePerInstance": 5},
        headers={"Authorization": f"Bearer {TOKEN}"},
    )
    assert r.status_code == 200 and len(r.json()["instances"]) == 7
    eventually(stale.is_displayed, timeout=15, what="the stale notice")
    assert stale.text.startswith("instances changed since this page was rendered")
    stale.find_element(By.TAG_NAME, "a").click()
    eventually(lambda: len(rows(driver, "Thing")) == 7, timeout=10)
    http.close()


def test_the_page_and_its_assets_are_served_with_a_strict_content_security_policy(
    fleet: tuple[Running, list[str]],
) -> None:
    d, _ = fleet
    with httpx.Client(base_url=d.url, timeout=30) as http:
        page = http.get("/")
        assert page.status_code == 200
        assert page.headers["content-type"].startswith("text/html")
        csp = page.headers["content-security-policy"]
        assert "script-src 'self'" in csp and "unsafe-inline" not in csp
        assert page.headers["x-content-type-options"] == "nosniff"
        assert '<script src="/ui/fleet.js" defer></script>' in page.text
        assert "<script>" not in page.text and " on" + "click=" not in page.text
        js = http.get("/ui/fleet.js")
        assert js.headers["content-type"].startswith("text/javascript")
        assert "innerHTML" not in js.text
        assert http.get("/ui/fleet.css").headers["content-type"].startswith("text/css")
        assert "/" not in http.get("/openapi.json").json()["paths"]  # not part of the API
