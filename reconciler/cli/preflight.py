"""What the CLI checks before it touches anything, and how it says what went wrong.

Every expected failure is one line on stderr that names the fix, and a non-zero exit:
2 for something to fix in the settings or the policy, 3 for a server that cannot be reached.
`run` binds its REST port here, before it connects to ZooKeeper, MQTT or Kafka, so a busy
port stops it before any side effect.
"""

from __future__ import annotations

import errno
import ipaddress
import socket
import ssl
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click
from pydantic import ValidationError

from reconciler.config.settings import Settings
from reconciler.config.variables import env_names
from reconciler.domain.redaction import mask_userinfo

if TYPE_CHECKING:
    from fastapi import FastAPI


class Failure(click.ClickException):
    """A failure the operator can fix: one line, exit status 2."""

    exit_code = 2

    def show(self, file: Any = None) -> None:
        click.echo(f"reconciler: {self.message}", err=True)


class Unreachable(Failure):
    """A server (or the daemon) did not answer: exit status 3."""

    exit_code = 3


# ------------------------------------------------------------------------------ settings


def load_settings(**overrides: Any) -> Settings:
    """Settings from the environment and .env, with the command line's options on top."""
    given = {k: v for k, v in overrides.items() if v is not None}
    try:
        return Settings(**given)
    except ValidationError as e:
        raise Failure(describe(e, given)) from None


def describe(error: ValidationError, options: dict[str, Any] | None = None) -> str:
    """'RECONCILER_API_PORT='abc': Input should be a valid integer; ...' in one line, naming
    each variable (or option) as the operator set it; never a secret's value."""
    parts = []
    for err in error.errors():
        field = str(err["loc"][0]) if err["loc"] else ""
        if not field:  # a check across settings: its message names them; the input is all
            parts.append(err["msg"].removeprefix("Value error, "))  # of them, secrets too
            continue
        name = f"--{field.replace('_', '-')}" if options and field in options else _variable(field)
        value = (
            ""
            if _secret(field) or err["type"] == "missing"
            else f"={mask_userinfo(repr(err.get('input')))}"
        )
        parts.append(f"{name}{value}: {err['msg']}")
    return (
        "invalid settings: "
        + "; ".join(parts)
        + " (fix it in the environment or .env; the README's Configuration lists them)"
    )


def _variable(field: str) -> str:
    if field in Settings.model_fields:
        return env_names(field)[0]
    return field  # pydantic names an alias it read, e.g. IOTA_MQTT_BROKERS


def _secret(field: str) -> bool:
    info = Settings.model_fields.get(field)
    return info is not None and "SecretStr" in str(info.annotation)


# ------------------------------------------------------------------------------ policy


def check_policy(path: Path) -> None:
    """The policy and the templates it names load; else one line with the first problem."""
    from reconciler.policy.loader import load_policy_and_templates
    from reconciler.policy.problems import PolicyError
    from reconciler.policy.templates import TemplateError

    if not path.is_file():
        relative = "" if path.is_absolute() else f" (relative to {Path.cwd()})"
        raise Failure(
            f"no policy file at {path}{relative}: point --policy or "
            "RECONCILER_POLICY_PATH at your policy.yaml"
        )
    try:
        load_policy_and_templates(path)
    except PolicyError as e:
        first = e.problems[0]
        more = f" (and {len(e.problems) - 1} more)" if len(e.problems) > 1 else ""
        where = f"{first.where}: " if first.where else ""
        at = f"{path}:{first.line}" if first.line else str(path)
        raise Failure(
            f"{at}: {where}{first.message}{more}: fix the policy "
            f"(`reconciler validate {path}` lists every problem) or point --policy / "
            "RECONCILER_POLICY_PATH at another file"
        ) from None
    except TemplateError as e:
        raise Failure(f"{path}: {e}: fix the template the policy names") from None


# ------------------------------------------------------------------------------ Kubernetes


def check_kube_credentials(settings: Settings) -> None:
    """Some way to reach the apiserver is configured (nothing is contacted yet)."""
    from reconciler.adapters.kube.client import KubeConfigError
    from reconciler.wiring import api_client_for

    try:
        client = api_client_for(settings)
    except KubeConfigError as e:
        raise Failure(str(e)) from None
    client.close()


# ------------------------------------------------------------------------------ REST port


def bind_api(host: str, port: int) -> socket.socket:
    """The REST API's listening socket, bound now: a busy port fails here, before `run`
    connects to anything. Port 0 takes a free one."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except socket.gaierror as e:
        raise Failure(
            f"cannot serve the REST API on {host}:{port}: unknown host ({e.strerror}): "
            "fix --api-host or RECONCILER_API_HOST"
        ) from None
    family, kind, proto, _, address = infos[0]
    sock = socket.socket(family, kind, proto)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as uvicorn does
    try:
        sock.bind(address)
        sock.listen(2048)
    except OSError as e:
        sock.close()
        raise Failure(f"cannot serve the REST API on {host}:{port}: {_bind_fix(e)}") from None
    sock.set_inheritable(True)
    return sock


def _bind_fix(e: OSError) -> str:
    if e.errno == errno.EADDRINUSE:
        return (
            "the port is in use (another reconciler?): stop what holds it, or choose "
            "another port with --api-port or RECONCILER_API_PORT"
        )
    if e.errno == errno.EACCES:
        return (
            "permission denied (ports below 1024 need privileges): choose a port above "
            "1023 with --api-port or RECONCILER_API_PORT"
        )
    if e.errno == errno.EADDRNOTAVAIL:
        return "no such address on this machine: fix --api-host or RECONCILER_API_HOST"
    return f"{e.strerror}: check --api-host/--api-port (RECONCILER_API_HOST/PORT)"


def check_api_exposure(settings: Settings) -> None:
    """A REST API that listens beyond loopback must not be open: anyone who reaches it could
    rebalance, scale and stop kinds. Refused before anything starts."""
    if settings.api_token is not None or settings.api_trusted_header:
        return
    if _loopback_only(settings.api_host):
        return
    raise Failure(
        f"the REST API would listen on {settings.api_host} (beyond loopback) with no token: "
        "set RECONCILER_API_TOKEN (or RECONCILER_API_TOKEN_FILE), or listen on 127.0.0.1 "
        "with --api-host"
    )


def _loopback_only(host: str) -> bool:
    """True if every address `host` stands for is a loopback one ("" and 0.0.0.0 are not)."""
    if not host:
        return False
    try:
        infos = socket.getaddrinfo(host, None, type=socket.SOCK_STREAM)
    except socket.gaierror:
        return False  # bind_api says what is wrong with it
    addresses = {info[4][0] for info in infos}
    return all(ipaddress.ip_address(a.split("%")[0]).is_loopback for a in addresses)


def check_api_tls(settings: Settings) -> tuple[str, str] | None:
    """(certificate, key) file names for HTTPS on the REST API, loaded once here so a wrong
    path or a key that does not match fails now, in one line; None without TLS."""
    cert, key = settings.api_tls_cert_file, settings.api_tls_key_file
    if cert is None or key is None:
        return None
    try:
        ssl.create_default_context(ssl.Purpose.CLIENT_AUTH).load_cert_chain(cert, key)
    except (OSError, ssl.SSLError) as e:
        raise Failure(
            f"cannot use {cert} / {key} for HTTPS on the REST API: {e}: fix "
            "RECONCILER_API_TLS_CERT_FILE / RECONCILER_API_TLS_KEY_FILE"
        ) from None
    return str(cert), str(key)


def prebound_server(app: FastAPI, sock: socket.socket, tls: tuple[str, str] | None = None) -> Any:
    """The REST API (reconciler.api.server.ApiServer) serving on an already bound socket; HTTPS
    with `tls` = (certificate file, key file)."""
    from reconciler.api.server import ApiServer

    host, port = sock.getsockname()[:2]
    server = ApiServer(app, host, port, tls=tls)
    server.thread = threading.Thread(
        target=server.server.run, kwargs={"sockets": [sock]}, name="api", daemon=True
    )
    return server
