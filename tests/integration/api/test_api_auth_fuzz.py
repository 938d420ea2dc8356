"""No auth bypass: property-based requests against a running daemon's REST API (rig servers).

Every operation that can change something (each POST in /openapi.json) is sent random paths,
bodies, content types and Authorization headers that are not the token: every answer must be
401 (or 403), never a 2xx and never a 5xx, and nothing in ZooKeeper may change. The token
still works afterwards. (Schema-driven fuzzing for server errors, with the token, is
test_api.py's schemathesis run.)"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.support.daemon import running, settings_for
from tests.support.fleet import eventually, read_layout, seed, write_policy

TOKEN = "fuzz-token-0123456789"

headers_not_the_token = st.one_of(
    st.just({}),
    st.builds(
        lambda t: {"Authorization": f"Bearer {t}".strip()},
        st.text("abcdef0123456789-", max_size=30),
    ),
    st.builds(
        lambda t: {"Authorization": t.strip() or "x"},  # h11 refuses padded values
        st.text(st.characters(min_codepoint=32, max_codepoint=126), max_size=40),
    ),
    st.just({"Authorization": f"Basic {TOKEN}"}),
    st.just({"Authorization": f"Bearer {TOKEN[:-1]}"}),
    st.just({"Authorization": f"Bearer {TOKEN}x"}),
    st.just({"X-Forwarded-User": "admin"}),  # no trusted proxy is configured: ignored
)
bodies = st.one_of(
    st.binary(max_size=2000),
    st.builds(lambda d: str(d).encode(), st.dictionaries(st.text(max_size=10), st.integers())),
    st.just(b'{"instances": 0}'),
    st.just(b'{"maxInstances": 1, "resourcePerInstance": 1}'),
)


def test_no_request_without_the_token_changes_anything(
    tmp_path: Path, zk_hosts: str, pg_url: str, kube: Any, kube_namespace: str, kazoo_client: Any
) -> None:
    seed(pg_url, things=100, rules=5)
    policy = write_policy(tmp_path / "policy.yaml", kube_namespace)
    with running(settings_for(zk_hosts, pg_url, kube, policy, token=TOKEN)) as d:
        client = httpx.Client(base_url=d.url, timeout=10)
        eventually(lambda: client.get("/readyz").status_code == 200, timeout=60)
        eventually(
            lambda: sum(len(i["ids"]) for i in read_layout(kazoo_client, "Thing").values()) == 100,
            timeout=60,
        )
        layout = {k: read_layout(kazoo_client, k) for k in ("Thing", "Rule")}
        spec = client.get("/openapi.json").json()
        posts = sorted(p for p, ops in spec["paths"].items() if "post" in ops)
        assert len(posts) >= 4, posts  # orchestrate, restart, confirm, scale, stop, start ...
        seen: dict[int, int] = {}

        @settings(max_examples=300, deadline=None, derandomize=True)
        @given(
            path=st.sampled_from(posts),
            resource=st.sampled_from(["Thing", "Rule", "nope", "..", "Thing%2F..", "x" * 300]),
            headers=headers_not_the_token,
            content_type=st.sampled_from(["application/json", "text/plain", "multipart/form-data"]),
            body=bodies,
        )
        def refused(
            path: str, resource: str, headers: dict[str, str], content_type: str, body: bytes
        ) -> None:
            url = path.replace("{resource}", resource)
            r = client.post(url, content=body, headers={**headers, "Content-Type": content_type})
            seen[r.status_code] = seen.get(r.status_code, 0) + 1
            assert r.status_code in (401, 403), (url, headers, r.status_code, r.text)

        refused()
        print(f"answers without the token: {seen}")
        assert {k: read_layout(kazoo_client, k) for k in ("Thing", "Rule")} == layout
        ok = client.post(
            "/v1/api/orchestrations/Thing/orchestrate", headers={"Authorization": f"Bearer {TOKEN}"}
        )
        assert ok.status_code == 200, ok.text
        client.close()
