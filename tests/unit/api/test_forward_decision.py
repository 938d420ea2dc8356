"""Which requests a standby forwards to the leader, which it refuses, which it serves
(reconciler.api.forward.decide); and the credentials it forwards (reconciler.api.auth)."""

from __future__ import annotations

import ipaddress

import pytest
from starlette.requests import Request

from reconciler.api.access import BrowserAccess
from reconciler.api.auth import FORWARDED_BY, FORWARDED_USER, Authorizer
from reconciler.api.forward import Forward, Refuse, decide
from reconciler.runtime.control import Standby

ORCHESTRATE = "/v1/api/orchestrations/Thing/orchestrate"
STANDBY = Standby("b", "a", "http://10.0.0.1:8080")


def test_a_write_on_a_standby_goes_to_the_leaders_address() -> None:
    for path in (ORCHESTRATE, "/v1/api/orchestrations/Thing/stop"):
        assert decide("POST", path, None, STANDBY) == Forward("http://10.0.0.1:8080", "a")


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/v1/api/orchestrations/Thing"),
        ("GET", "/v1/status"),
        ("HEAD", "/v1/api/orchestrations/Thing"),
        ("OPTIONS", ORCHESTRATE),  # a browser's preflight is CORS's to answer
        ("POST", "/v1/other"),
    ],
)
def test_reads_and_other_paths_are_served_here(method: str, path: str) -> None:
    assert decide(method, path, None, STANDBY) is None


def test_the_leader_and_a_daemon_without_election_serve_writes_themselves() -> None:
    assert decide("POST", ORCHESTRATE, None, None) is None
    assert decide("POST", ORCHESTRATE, "b", None) is None  # forwarded to us: we apply it


def test_a_forwarded_request_is_never_forwarded_again() -> None:
    refusal = decide("POST", ORCHESTRATE, "c", STANDBY)
    assert isinstance(refusal, Refuse) and refusal.reason == "loop"
    assert "already forwarded" in refusal.error and refusal.leader == "a"


def test_no_leader_known_is_refused_naming_why() -> None:
    refusal = decide("POST", ORCHESTRATE, None, Standby("b", None, None))
    assert isinstance(refusal, Refuse) and refusal.reason == "no_leader"
    assert "no leader is elected" in refusal.error and refusal.leader is None


def test_a_daemon_that_just_lost_leadership_never_forwards_to_itself() -> None:
    refusal = decide("POST", ORCHESTRATE, None, Standby("b", "b", "http://10.0.0.2:8080"))
    assert isinstance(refusal, Refuse) and refusal.reason == "no_leader"


def test_a_leader_without_an_address_is_refused_naming_the_setting() -> None:
    refusal = decide("POST", ORCHESTRATE, None, Standby("b", "a", None))
    assert isinstance(refusal, Refuse) and refusal.reason == "no_address"
    assert "RECONCILER_API_ADVERTISE_URL" in refusal.error and "standby" in refusal.error


def request(headers: dict[str, str], peer: str = "10.9.9.9") -> Request:
    raw = [(k.lower().encode(), v.encode()) for k, v in headers.items()]
    scope = {"type": "http", "method": "POST", "path": ORCHESTRATE, "headers": raw}
    return Request({**scope, "client": (peer, 40000)})


PROXIED = BrowserAccess((), "X-Forwarded-User", (ipaddress.ip_network("10.0.0.5/32"),))


def test_the_callers_bearer_token_is_forwarded_as_it_came() -> None:
    auth = Authorizer("tok", PROXIED)
    sent = request({"Authorization": "Bearer tok", FORWARDED_USER: "mallory"})
    assert auth.credentials_to_forward(sent) == {"Authorization": "Bearer tok"}


def test_a_proxy_user_is_forwarded_with_the_daemons_token_and_named() -> None:
    auth = Authorizer("tok", PROXIED)
    via_proxy = request({"X-Forwarded-User": "alice"}, peer="10.0.0.5")
    assert auth.credentials_to_forward(via_proxy) == {
        "Authorization": "Bearer tok",
        FORWARDED_USER: "alice",
    }
    # Without a token to vouch with, the standby cannot forward it.
    assert Authorizer(None, PROXIED).credentials_to_forward(via_proxy) is None


def test_the_leader_believes_a_forwarded_user_only_with_the_token_and_the_marker() -> None:
    auth = Authorizer("tok", PROXIED)
    forwarded = {"Authorization": "Bearer tok", FORWARDED_BY: "b", FORWARDED_USER: "alice"}
    assert auth.authorise(request(forwarded)) == "alice"
    no_marker = {"Authorization": "Bearer tok", FORWARDED_USER: "alice"}
    assert auth.authorise(request(no_marker)) == "token"
    forged = {FORWARDED_BY: "b", FORWARDED_USER: "alice"}  # no token: not authorised at all
    with pytest.raises(Exception, match="bearer token is required"):
        auth.authorise(request(forged))
    wrong = {"Authorization": "Bearer nope", FORWARDED_BY: "b", FORWARDED_USER: "alice"}
    with pytest.raises(Exception, match="bearer token is required"):
        auth.authorise(request(wrong))
