"""How the daemon reaches the Kubernetes apiserver. One part of
`reconciler.config.settings.Settings`."""

from __future__ import annotations

from pathlib import Path

from pydantic import AliasChoices, Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict


class KubeSettings(BaseSettings):
    model_config = SettingsConfigDict(use_attribute_docstrings=True, populate_by_name=True)

    kube_in_cluster: bool = Field(
        False, validation_alias=AliasChoices("RECONCILER_KUBE_IN_CLUSTER", "RECONCILER_RUN_IN_POD")
    )
    """Reach the apiserver with the pod's service account (the old `runInPod`). Else URL +
    token, else a kubeconfig file."""
    kube_url: str | None = None
    """The apiserver's URL, used with the bearer token below."""
    kube_token: SecretStr | None = Field(
        None, validation_alias=AliasChoices("RECONCILER_KUBE_TOKEN", "IOTA_AUTH_TOKEN")
    )
    """Bearer token for the apiserver URL. Secret."""
    kube_ca_file: str | None = None
    """CA bundle that signed the apiserver URL's certificate."""
    kube_verify_ssl: bool = True
    """Verify the apiserver URL's TLS certificate."""
    kubeconfig: str | None = Field(
        None, validation_alias=AliasChoices("RECONCILER_KUBECONFIG", "KUBECONFIG")
    )
    """kubeconfig file, used when neither of the above is set; default `~/.kube/config`."""

    kube_token_file: Path | None = None
    """File holding `RECONCILER_KUBE_TOKEN`."""
