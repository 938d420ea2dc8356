"""Secret settings: SecretStr everywhere, never printed (repr, the logged settings, settings
errors), and each one readable from a `RECONCILER_<NAME>_FILE` (no server needed)."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import SecretStr, ValidationError

from reconciler.cli.preflight import describe
from reconciler.config.secret_files import SECRET_FILES
from reconciler.config.settings import Settings

PW = "Kn0wn-pa55word"
SECRETS = {
    "database_url": f"postgresql+psycopg://iota:{PW}@db/iota",
    "kube_token": PW,
    "api_token": PW,
    "mqtt_password": PW,
    "kafka_sasl_password": PW,
    "zk_password": PW,
}
# Settings a secret needs beside it (a ZooKeeper password belongs to a user name).
COMPANIONS: dict[str, dict[str, str]] = {"zk_password": {"zk_username": "reconciler"}}


def settings(**kw: object) -> Settings:
    return Settings(_env_file=None, **kw)  # type: ignore[arg-type]


def test_every_secret_setting_is_a_secretstr_with_a_file_twin() -> None:
    secret = {n for n, f in Settings.model_fields.items() if "SecretStr" in str(f.annotation)}
    assert secret == set(SECRETS) == set(SECRET_FILES)
    for field in SECRET_FILES.values():
        assert field in Settings.model_fields


def test_no_secret_shows_in_repr_or_the_logged_settings() -> None:
    s = settings(**SECRETS, zk_username="reconciler", mqtt_brokers=f"mqtt://iota:{PW}@a, mqtts://b")
    assert PW not in repr(s) + str(s)
    shown = s.redacted()
    assert PW not in repr(shown)
    assert shown["database_url"] == "postgresql+psycopg://iota:***@db/iota"
    assert shown["mqtt_brokers"] == "mqtt://iota:***@a, mqtts://b"


@pytest.mark.parametrize("field", sorted(SECRET_FILES))
def test_each_secret_can_come_from_a_file_trailing_newline_stripped(
    field: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / field
    path.write_text(SECRETS[field] + "\n")
    monkeypatch.setenv(f"RECONCILER_{field.upper()}_FILE", str(path))
    for companion, value in COMPANIONS.get(field, {}).items():
        monkeypatch.setenv(f"RECONCILER_{companion.upper()}", value)
    value = getattr(Settings(_env_file=None), field)  # type: ignore[call-arg]
    assert isinstance(value, SecretStr)
    assert value.get_secret_value() == SECRETS[field]


def test_a_secret_file_keeps_inner_whitespace_and_strips_one_crlf(tmp_path: Path) -> None:
    path = tmp_path / "token"
    path.write_bytes(b" a b\r\n")
    assert settings(api_token_file=path).api_token == SecretStr(" a b")


def test_a_missing_secret_file_is_an_error_naming_the_setting(tmp_path: Path) -> None:
    with pytest.raises(ValidationError) as e:
        settings(mqtt_password_file=tmp_path / "nope")
    text = describe(e.value)
    assert "RECONCILER_MQTT_PASSWORD_FILE" in text
    assert "No such file" in text


def test_an_empty_secret_file_is_an_error(tmp_path: Path) -> None:
    (tmp_path / "empty").write_text("\n")
    with pytest.raises(ValidationError, match=r"RECONCILER_API_TOKEN_FILE.*empty"):
        settings(api_token_file=tmp_path / "empty")


def test_a_secret_given_both_ways_is_an_error_that_does_not_print_it(tmp_path: Path) -> None:
    path = tmp_path / "pw"
    path.write_text("from-file")
    with pytest.raises(ValidationError) as e:
        settings(kafka_sasl_password=PW, kafka_sasl_password_file=path)
    text = describe(e.value)
    assert "RECONCILER_KAFKA_SASL_PASSWORD and RECONCILER_KAFKA_SASL_PASSWORD_FILE" in text
    assert PW not in text and "from-file" not in text


def test_a_settings_error_masks_a_password_in_a_broker_url() -> None:
    with pytest.raises(ValidationError) as e:
        settings(mqtt_brokers=f"mqtt://iota:{PW}@a", mqtt_max_ids=0)
    assert PW not in describe(e.value)
