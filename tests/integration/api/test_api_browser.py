"""The REST API as the old admin UI calls it: from a page of its own origin, with
`credentials: 'include'`, through an authenticating proxy (reconciler/api/access.py).

An in-process daemon on the rig's ZooKeeper, PostgreSQL and apiserver. Requests are made the
way a browser makes them (Origin, preflight headers); "from the proxy" means a connection from
127.0.0.2, the only trusted proxy address here (the daemon listens on 127.0.0.1, and the whole
127/8 is loopback, so the client binds its end to 127.0.0.2).
"""

from __future__ import annotations

import http.server
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.support.daemon import Running, running, settings_for
from tests.support.fleet import eventually, seed, write_policy

TOKEN = "s3cret-token"
UI = "http://admin-ui.test:3000"  # the old admin UI's origin, allowed
EVIL = "http://evil.test"  # any other page
ORCHESTRATE = "/v1/api/orchestrations/Thing/orchestrate"
PREFLIGHT = {
    "Access-Control-Request-Method": "POST",
    "Access-Control-Request-Headers": "authorization,content-type",
}


def make_settings(zk_hosts: str, pg_url: str, kube: Any, namespace: str, tmp: Path, **kw: Any):
    seed(pg_url, things=12, rules=3)
    policy = write_policy(
        tmp / "policy.yaml",
        namespace,
        Thing={"initInstances": 3, "maxInstances": 10, "resourcePerInstance": 30},
        Rule={"initInstances": 3, "maxInstances": 5, "resourcePerInstance": 100},
    )
    return settings_for(zk_hosts, pg_url, kube, policy, token=TOKEN, **kw)


def ready(d: Running) -> Running:
    with d.client() as c:
        eventually(lambda: c.get("/readyz").status_code == 200, timeout=30)
        eventually(lambda: len(c.get("/v1/api/orchestrations/Thing").json()["instances"]) == 3)
    return d


@pytest.fixture
def daemon(
    zk_hosts: str, pg_url: str, kube: Any, kube_namespace: str, tmp_path: Path
) -> Iterator[Running]:
    settings = make_settings(
        zk_hosts,
        pg_url,
        kube,
        kube_namespace,
        tmp_path,
        api_cors_origins=f"{UI}/",  # as an operator may paste it: the slash is dropped
        api_trusted_header="X-Forwarded-User",
        api_trusted_proxies="127.0.0.2",
    )
    with running(settings) as d:
        yield ready(d)


def via_proxy(d: Running) -> httpx.Client:
    """A client whose connections come from 127.0.0.2: the trusted proxy."""
    transport = httpx.HTTPTransport(local_address="127.0.0.2")
    return httpx.Client(base_url=d.url, timeout=90, transport=transport)


def orchestrations(d: Running) -> float:
    with d.client() as c:
        for line in c.get("/metrics").text.splitlines():
            if line.startswith('reconciler_reconciles_total{trigger="orchestrate"}'):
                return float(line.split()[-1])
    return 0.0


def test_the_allowed_origin_gets_its_preflight_and_credentialed_posts_answered(
    daemon: Running,
) -> None:
    with daemon.client() as c:
        pre = c.options(ORCHESTRATE, headers={"Origin": UI, **PREFLIGHT})
        assert pre.status_code == 200, pre.text
        assert pre.headers["access-control-allow-origin"] == UI
        assert pre.headers["access-control-allow-credentials"] == "true"
        assert "POST" in pre.headers["access-control-allow-methods"]
        allowed = pre.headers["access-control-allow-headers"].lower()
        assert "authorization" in allowed and "content-type" in allowed
        assert "origin" in pre.headers["vary"].lower()  # caches keep origins apart

        # The POST that follows, with the operator's bearer token.
        r = c.post(
            ORCHESTRATE,
            headers={"Origin": UI, "Authorization": f"Bearer {TOKEN}"},
            json={},
        )
        assert r.status_code == 200, r.text
        assert r.headers["access-control-allow-origin"] == UI
        assert r.headers["access-control-allow-credentials"] == "true"
        assert len(r.json()["instances"]) == 3
        got = c.get("/v1/api/orchestrations/Thing", headers={"Origin": UI})
        assert got.headers["access-control-allow-origin"] == UI

    # Signed in at the proxy instead: no token, the proxy names the user.
    before = orchestrations(daemon)
    with via_proxy(daemon) as p:
        r = p.post(ORCHESTRATE, headers={"Origin": UI, "X-Forwarded-User": "alice"}, json={})
        assert r.status_code == 200, r.text
        assert r.headers["access-control-allow-origin"] == UI
    assert orchestrations(daemon) == before + 1


def test_another_origin_gets_no_cors_answer_and_cannot_ride_on_the_proxy_session(
    daemon: Running,
) -> None:
    with daemon.client() as c:
        pre = c.options(ORCHESTRATE, headers={"Origin": EVIL, **PREFLIGHT})
        assert pre.status_code >= 400
        assert "access-control-allow-origin" not in pre.headers
        # A GET is answered (it changes nothing) but the browser may not read it.
        got = c.get("/v1/api/orchestrations/Thing", headers={"Origin": EVIL})
        assert got.status_code == 200
        assert "access-control-allow-origin" not in got.headers

    # A "simple" cross-site POST needs no preflight and the browser sends the proxy's cookie
    # with it, so the proxy vouches for the user: the daemon refuses it by its Origin.
    before = orchestrations(daemon)
    with via_proxy(daemon) as p:
        simple = {"Origin": EVIL, "X-Forwarded-User": "alice", "Content-Type": "text/plain"}
        r = p.post(ORCHESTRATE, headers=simple, content=b"")
        assert r.status_code == 403, r.text
        assert r.json() == {"error": f"cross-origin request from {EVIL} refused"}
        # The fleet page's own POST (same host) and a script without Origin still work.
        own = p.post(
            ORCHESTRATE,
            headers={"Origin": daemon.url, "X-Forwarded-User": "alice"},
        )
        assert own.status_code == 200, own.text
        assert p.post(ORCHESTRATE, headers={"X-Forwarded-User": "alice"}).status_code == 200
    assert orchestrations(daemon) == before + 2


def test_the_user_header_counts_only_on_a_connection_from_a_trusted_proxy(
    daemon: Running,
) -> None:
    spoofed = {"X-Forwarded-User": "mallory", "X-Forwarded-For": "127.0.0.2"}
    with daemon.client() as c:  # from 127.0.0.1: not the proxy
        r = c.post(ORCHESTRATE, headers={"X-Forwarded-User": "mallory"})
        assert r.status_code == 401
        assert r.json()["error"] == (
            "a bearer token is required (or X-Forwarded-User from a trusted proxy)"
        )
        assert c.post(ORCHESTRATE, headers=spoofed).status_code == 401
    with via_proxy(daemon) as p:
        assert p.post(ORCHESTRATE, headers={"X-Forwarded-User": ""}).status_code == 401
        assert p.post(ORCHESTRATE).status_code == 401  # the proxy without a user: nobody
        assert p.post(ORCHESTRATE, headers={"X-Forwarded-User": "alice"}).status_code == 200


def test_without_origins_no_cors_headers_are_sent_as_before(
    zk_hosts: str, pg_url: str, kube: Any, kube_namespace: str, tmp_path: Path
) -> None:
    settings = make_settings(zk_hosts, pg_url, kube, kube_namespace, tmp_path)
    with running(settings) as d:
        ready(d)
        with d.client() as c:
            pre = c.options(ORCHESTRATE, headers={"Origin": UI, **PREFLIGHT})
            assert pre.status_code == 405
            assert "access-control-allow-origin" not in pre.headers
            r = c.post(ORCHESTRATE, headers={"Origin": UI, "Authorization": f"Bearer {TOKEN}"})
            assert r.status_code == 200
            assert "access-control-allow-origin" not in r.headers
            # No trusted header configured: the header is nobody's word.
            assert c.post(ORCHESTRATE, headers={"X-Forwarded-User": "alice"}).status_code == 401


# --- a real browser: Debian's headless Chromium, as in test_fleet_page.py ------------------


class StaticPage:
    """A page on its own origin (http://127.0.0.1:<port>), standing in for the old admin UI."""

    def __init__(self) -> None:
        body = b"<!doctype html><title>admin ui</title><p>admin ui</p>"

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                self.send_response(200)
                self.send_header("Content-Type", "text/html")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *_args: Any) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.origin = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


FETCH = """
const [url, token, done] = arguments;
fetch(url, {method: 'POST', credentials: 'include', body: '{}',
            headers: {'Authorization': 'Bearer ' + token, 'Content-Type': 'application/json'}})
  .then(r => r.json().then(j => done(`status ${r.status}, ${j.instances.length} instances`)))
  .catch(e => done('blocked: ' + e));
"""


@pytest.fixture
def chromium(tmp_path: Path) -> Iterator[Any]:
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    from rig import provision
    from tests.support.browser import CHROMIUM_FLAGS

    provision.ensure("browser")
    options = webdriver.ChromeOptions()
    options.binary_location = "/usr/bin/chromium"
    for flag in CHROMIUM_FLAGS:
        options.add_argument(flag)
    options.add_argument(f"--user-data-dir={tmp_path / 'chromium-profile'}")
    service = Service("/usr/bin/chromedriver", log_output=str(tmp_path / "chromedriver.log"))
    driver = webdriver.Chrome(options=options, service=service)
    driver.set_page_load_timeout(30)
    driver.set_script_timeout(30)
    try:
        yield driver
    finally:
        driver.quit()


def test_in_chromium_the_allowed_origins_page_orchestrates_and_another_origins_is_blocked(
    zk_hosts: str,
    pg_url: str,
    kube: Any,
    kube_namespace: str,
    tmp_path: Path,
    chromium: Any,
) -> None:
    ui, other = StaticPage(), StaticPage()
    try:
        settings = make_settings(
            zk_hosts, pg_url, kube, kube_namespace, tmp_path, api_cors_origins=ui.origin
        )
        with running(settings) as d:
            ready(d)
            before = orchestrations(d)
            # The page of the UI's origin: Chromium sends the preflight (Authorization is
            # not a simple header), then the credentialed POST, and lets the page read it.
            chromium.get(ui.origin)
            answer = chromium.execute_async_script(FETCH, d.url + ORCHESTRATE, TOKEN)
            assert answer == "status 200, 3 instances"
            assert orchestrations(d) == before + 1
            # Any other origin: the preflight gets no Access-Control-Allow-Origin, so Chromium
            # never sends the POST at all.
            chromium.get(other.origin)
            answer = chromium.execute_async_script(FETCH, d.url + ORCHESTRATE, TOKEN)
            assert answer.startswith("blocked: TypeError"), answer
            assert orchestrations(d) == before + 1
    finally:
        ui.close()
        other.close()
