"""Where the other replicas reach this daemon's REST API (RECONCILER_API_ADVERTISE_URL, else
derived from the host, the bound port and TLS; none for a wildcard host)."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from reconciler.config.settings import Settings


def settings(**kw: object) -> Settings:
    return Settings(_env_file=None, **kw)  # type: ignore[arg-type]


def test_the_address_is_derived_from_the_host_and_the_port_actually_bound() -> None:
    assert settings(api_host="10.1.2.3", api_port=0).advertised_api_url(41234) == (
        "http://10.1.2.3:41234"
    )
    assert settings(api_host="fd00::1").advertised_api_url(8080) == "http://[fd00::1]:8080"


def test_tls_makes_it_https(tmp_path: Path) -> None:
    cert, key = tmp_path / "c.pem", tmp_path / "k.pem"
    s = settings(api_host="node-a.example", api_tls_cert_file=cert, api_tls_key_file=key)
    assert s.advertised_api_url(8443) == "https://node-a.example:8443"


@pytest.mark.parametrize("host", ["0.0.0.0", "::", "[::]", ""])
def test_a_wildcard_host_publishes_nothing_unless_the_setting_names_an_address(host: str) -> None:
    assert settings(api_host=host, api_token="t").advertised_api_url(8080) is None
    given = settings(api_host=host, api_token="t", api_advertise_url="http://10.1.2.3:8080/")
    assert given.advertised_api_url(8080) == "http://10.1.2.3:8080"


@pytest.mark.parametrize(
    "url", ["10.1.2.3:8080", "ftp://10.1.2.3", "http://10.1.2.3:8080/api", "http://u:p@h:1"]
)
def test_an_advertised_url_that_is_not_a_bare_http_origin_is_refused(url: str) -> None:
    with pytest.raises(ValidationError, match="api_advertise_url"):
        settings(api_advertise_url=url)
