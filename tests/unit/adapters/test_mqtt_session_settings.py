"""Which MQTT client id survives a restart, and the session expiry the listener is given
(RECONCILER_IDENTITY, RECONCILER_MQTT_CLIENT_ID, RECONCILER_MQTT_SESSION_EXPIRY_SECONDS).
What the broker then keeps: tests/integration/adapters/test_mqtt_sessions.py."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from reconciler.adapters.mqtt.notify import NotifyListener
from reconciler.config.settings import Settings


def settings(**kw: object) -> Settings:
    return Settings(_env_file=None, **kw)  # type: ignore[arg-type]


def test_the_client_id_is_stable_only_when_the_identity_or_the_id_is_set(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("RECONCILER_IDENTITY", raising=False)
    monkeypatch.delenv("RECONCILER_MQTT_CLIENT_ID", raising=False)
    default = settings()
    assert default.mqtt_client.startswith("reconciler-") and not default.mqtt_client_stable
    pod = settings(identity="reconciler-0")
    assert pod.mqtt_client == "reconciler-reconciler-0" and pod.mqtt_client_stable
    assert settings(mqtt_client_id="iota-orchestrator-a").mqtt_client_stable
    monkeypatch.setenv("RECONCILER_IDENTITY", "reconciler-1")  # as the chart sets it
    assert settings().mqtt_client_stable


def test_the_session_expiry_is_bounded_and_a_few_minutes_by_default() -> None:
    assert settings().mqtt_session_expiry_seconds == 300
    assert settings(mqtt_session_expiry_seconds=0).mqtt_session_expiry_seconds == 0
    for wrong in (-1, 86401):
        with pytest.raises(ValidationError, match="mqtt_session_expiry_seconds"):
            settings(mqtt_session_expiry_seconds=wrong)
    with pytest.raises(ValueError, match="session_expiry"):
        NotifyListener("mqtt://127.0.0.1:1", lambda _e: None, client_id="x", session_expiry=-1)
