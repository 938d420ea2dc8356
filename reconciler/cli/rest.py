"""The CLI's client of the running daemon's REST API: where it is, and each expected failure
as one line naming the fix (`Failure`, `Unreachable` of `preflight.py`)."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from dataclasses import dataclass
from typing import Any

import click

from reconciler.cli.preflight import Failure, Unreachable, load_settings

url_option = click.option(
    "--url", default=None, help="The daemon's REST address (default from settings)."
)
token_option = click.option(
    "--token", default=None, help="Bearer token for the daemon (default: RECONCILER_API_TOKEN)."
)


@dataclass(frozen=True)
class DaemonAddress:
    url: str
    token: str | None

    @classmethod
    def resolve(cls, url: str | None, token: str | None) -> DaemonAddress:
        """`--url` and `--token` as given, the settings for what is not."""
        if url is None or token is None:
            s = load_settings()
            url = url or f"http://{s.api_host}:{s.api_port}"
            token = token or (s.api_token.get_secret_value() if s.api_token else None)
        return cls(url, token)


def post_kind(
    daemon: DaemonAddress, kind: str, action: str, body: dict[str, Any] | None = None
) -> dict[str, Any]:
    """POST /v1/api/orchestrations/<kind>/<action> (with a JSON `body`), every expected
    failure as one line."""
    url, token = daemon.url, daemon.token
    request = urllib.request.Request(
        f"{url.rstrip('/')}/v1/api/orchestrations/{kind}/{action}",
        method="POST",
        data=json.dumps(body).encode() if body is not None else b"",
    )
    if body is not None:
        request.add_header("Content-Type", "application/json")
    if token:
        request.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(request, timeout=10) as resp:
            return dict(json.load(resp))
    except urllib.error.HTTPError as e:
        try:
            why = json.load(e).get("error", e.reason)
        except ValueError:
            why = e.reason
        raise Failure(f"the daemon at {url} refused {action} (HTTP {e.code}): {why}") from None
    except (urllib.error.URLError, OSError) as e:
        raise Unreachable(
            f"cannot reach the daemon at {url} ({getattr(e, 'reason', e)}): point --url at it"
        ) from None


def get_status(daemon: DaemonAddress) -> dict[str, Any]:
    """GET /v1/status, every expected failure as one line naming the fix."""
    url, token = daemon.url, daemon.token
    request = urllib.request.Request(f"{url.rstrip('/')}/v1/status")
    if token:
        request.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(request, timeout=5) as resp:
            data = json.load(resp)
    except urllib.error.HTTPError as e:
        if e.code in (401, 403):
            given = "a token that" if token else "no token, and it"
            raise Failure(
                f"the daemon at {url} refused the request (HTTP {e.code}): we sent {given} "
                "does not match: pass the daemon's RECONCILER_API_TOKEN with --token or in "
                "the environment"
            ) from None
        raise Failure(
            f"the daemon at {url} answered HTTP {e.code} {e.reason}: see its log"
        ) from None
    except (urllib.error.URLError, OSError) as e:
        reason = getattr(e, "reason", e)
        raise Unreachable(
            f"cannot reach the daemon at {url} ({reason}): is `reconciler run` running there? "
            "Point --url (or RECONCILER_API_HOST/RECONCILER_API_PORT) at it"
        ) from None
    except ValueError:
        raise Failure(f"{url}/v1/status did not answer JSON: is --url a reconciler?") from None
    if not isinstance(data, dict) or "kinds" not in data:
        raise Failure(f"{url}/v1/status is not a reconciler's status: check --url")
    return data
