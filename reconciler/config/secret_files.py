"""Secrets read from files: `RECONCILER_<NAME>_FILE` for every secret setting.

Kubernetes mounts a Secret as files and systemd hands credentials over as files
(`LoadCredential=`, under `$CREDENTIALS_DIRECTORY`): pointing a `_FILE` setting at one keeps
the secret out of the environment, where `ps e`, `/proc/<pid>/environ` and crash reports
can read it. The file is read once, when the settings load; one trailing newline (what
`echo` and most editors add) is stripped. A missing or unreadable file, or a secret given
both ways, is a settings error naming the variable, never the secret.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import SecretStr

# secret field -> the field naming the file it may be read from instead
SECRET_FILES: dict[str, str] = {
    "database_url": "database_url_file",
    "kube_token": "kube_token_file",
    "api_token": "api_token_file",
    "mqtt_password": "mqtt_password_file",
    "kafka_sasl_password": "kafka_sasl_password_file",
    "zk_password": "zk_password_file",
}


def variable(field: str) -> str:
    return f"RECONCILER_{field.upper()}"


def read_secret(path: Path, field: str) -> SecretStr:
    """The secret in `path`, one trailing newline stripped; ValueError naming the setting."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        why = e.strerror if isinstance(e, OSError) and e.strerror else type(e).__name__
        raise ValueError(f"{variable(field)}={str(path)!r}: cannot read the file: {why}") from None
    if text.endswith("\n"):
        text = text[:-2] if text.endswith("\r\n") else text[:-1]
    if not text:
        raise ValueError(f"{variable(field)}={str(path)!r}: the file is empty")
    return SecretStr(text)
