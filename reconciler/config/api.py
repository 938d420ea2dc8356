"""The REST API's address, limits, TLS and who may call it (SECURITY.md). One part of
`reconciler.config.settings.Settings`."""

from __future__ import annotations

import ipaddress
import re
from pathlib import Path

from pydantic import Field, SecretStr, ValidationInfo, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

# Hosts that bind every address: none of them is one another machine could connect to.
WILDCARD_HOSTS = frozenset({"", "0.0.0.0", "::", "*"})


class ApiSettings(BaseSettings):
    model_config = SettingsConfigDict(use_attribute_docstrings=True, populate_by_name=True)

    api_host: str = "127.0.0.1"
    """Address of the REST API, `/metrics` and the health probes."""
    api_port: int = Field(8080, ge=0, le=65535)
    """Port of the REST API, `/metrics` and the health probes; 0: any free port."""
    api_token: SecretStr | None = None
    """When set, POST endpoints require `Authorization: Bearer <token>`. Secret. Required when
    `RECONCILER_API_HOST` is not a loopback address (unless a trusted proxy header is set);
    an empty token is refused, never taken as "off"."""
    api_max_body_bytes: int = Field(64 * 1024, gt=0)
    """A request body larger than this is refused with 413 before it is read."""
    api_max_concurrent: int = Field(16, gt=0)
    """Requests served at once; one more gets 503 + Retry-After at once. `/healthz`, `/readyz`
    and `/metrics` are never counted or refused."""
    api_tls_cert_file: Path | None = None
    """PEM certificate (chain) for HTTPS on the REST API; with `RECONCILER_API_TLS_KEY_FILE`."""
    api_tls_key_file: Path | None = None
    """PEM private key of that certificate."""
    # Browsers and authenticating proxies in front of the REST API.
    api_cors_origins: str = Field("", validate_default=True)
    """Web origins (exact `scheme://host[:port]`, comma-separated) whose pages may call the REST
    API with credentials, as the old admin UI does (`credentials: 'include'`): CORS preflights
    are answered for them, with `Access-Control-Allow-Credentials: true`. `*` is refused. Empty:
    no CORS headers, same-origin calls only."""
    api_trusted_header: str | None = Field(None, pattern=r"^[A-Za-z0-9][A-Za-z0-9-]*$")
    """Header an authenticating reverse proxy sets to the signed-in user (`X-Forwarded-User`,
    oauth2-proxy's `X-Auth-Request-User`): a POST that carries it from one of
    `RECONCILER_API_TRUSTED_PROXIES` is authorised without the bearer token. When set, POST
    needs the header or the token even if `RECONCILER_API_TOKEN` is unset."""
    api_trusted_proxies: str = Field("", validate_default=True)
    """Addresses or networks of those proxies, comma-separated (`10.0.0.5,10.1.0.0/16`): the
    header is believed only on a connection from one of them (its TCP peer; `X-Forwarded-For`
    is never read), and ignored from anyone else. Required with the header."""
    api_token_file: Path | None = None
    """File holding `RECONCILER_API_TOKEN`."""
    api_advertise_url: str | None = Field(None, pattern=r"^https?://[^/?#@\s]+/?$")
    """The URL the other replicas reach this daemon's REST API at (`http://10.1.2.3:8080`; the
    Helm chart sets `http://$(POD_IP):8080`): published with its candidacy in the election, so
    a standby forwards a write (POST) to the leader instead of refusing it
    (docs/high-availability.md "How writes reach the leader"). Default: from
    `RECONCILER_API_HOST`, the port the API is bound to and TLS, unless the host is a wildcard
    (`0.0.0.0`, `::`): then no address is published and a standby answers a write with 503
    naming this setting. Must be this daemon's own address, never the Service's."""

    @field_validator("api_token")
    @classmethod
    def _token_not_empty(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None and not value.get_secret_value().strip():
            raise ValueError("is empty: set a token, or unset the variable (open only on loopback)")
        return value

    @field_validator("api_cors_origins")
    @classmethod
    def _exact_origins(cls, value: str) -> str:
        origins = []
        for item in (part.strip() for part in value.split(",")):
            if not item:
                continue
            if item == "*" or item == "null":
                raise ValueError(f"{item!r} is not allowed with credentials: list each origin")
            origin = item.rstrip("/").lower()
            if not re.fullmatch(r"https?://(\[[0-9a-f:.]+\]|[a-z0-9.-]+)(:[0-9]{1,5})?", origin):
                raise ValueError(f"{item!r} is not an origin like https://admin.example.com:8443")
            origins.append(origin)
        return ",".join(origins)

    @field_validator("api_trusted_proxies")
    @classmethod
    def _proxy_networks(cls, value: str, info: ValidationInfo) -> str:
        networks = [part.strip() for part in value.split(",") if part.strip()]
        for item in networks:
            try:
                ipaddress.ip_network(item, strict=False)
            except ValueError:
                raise ValueError(f"{item!r} is not an IP address or network") from None
        if info.data.get("api_trusted_header") and not networks:
            raise ValueError("RECONCILER_API_TRUSTED_HEADER needs the proxies that may set it")
        return ",".join(networks)

    def advertised_api_url(self, bound_port: int) -> str | None:
        """Where the other replicas reach this REST API (`api_advertise_url`, else derived
        from the host, `bound_port` and TLS); None when the host is a wildcard and nothing
        is set: an address other machines could use is not known."""
        if self.api_advertise_url:
            return self.api_advertise_url.rstrip("/")
        host = self.api_host.strip().strip("[]")
        if host in WILDCARD_HOSTS:
            return None
        scheme = "https" if self.api_tls_cert_file else "http"
        return f"{scheme}://{f'[{host}]' if ':' in host else host}:{bound_port}"

    @property
    def cors_origins(self) -> list[str]:
        return [o for o in self.api_cors_origins.split(",") if o]

    @property
    def trusted_proxies(self) -> list[ipaddress.IPv4Network | ipaddress.IPv6Network]:
        items = (p for p in self.api_trusted_proxies.split(",") if p)
        return [ipaddress.ip_network(p, strict=False) for p in items]

    @model_validator(mode="after")
    def _tls_pair(self) -> ApiSettings:
        if (self.api_tls_cert_file is None) != (self.api_tls_key_file is None):
            raise ValueError(
                "RECONCILER_API_TLS_CERT_FILE and RECONCILER_API_TLS_KEY_FILE go together"
            )
        return self
