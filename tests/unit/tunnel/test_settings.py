"""The `tunnel:` section of laneway.yaml: secrets, TLS files, and errors that name no secret."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from proxy.config import LanewayConfig, load_config
from proxy.tunnel.settings import TunnelConfigError, settings_from_config

SECRET = "settings-test-secret-0123456789abcdef"


def config(tmp_path: Path, text: str) -> LanewayConfig:
    path = tmp_path / "laneway.yaml"
    path.write_text(text)
    return load_config(path)


def test_the_secret_comes_from_a_file_relative_to_the_config(tmp_path: Path) -> None:
    (tmp_path / "s.key").write_text(SECRET + "\n")
    cfg = config(
        tmp_path,
        "listen: {tunnel: 127.0.0.1:0}\n"
        "tunnel: {secret_file: s.key, protected_envs: [staging], on_conflict: replace}\n",
    )
    settings = settings_from_config(cfg)
    assert settings.secret == SECRET.encode()
    assert settings.protected_envs == {"staging"} and settings.on_conflict == "replace"
    assert settings.ssl_context is None
    assert settings.limits.initial_connection_window == 1 << 20


def test_unusable_secrets_are_config_errors_that_never_echo_the_secret(tmp_path: Path) -> None:
    with pytest.raises(TunnelConfigError, match="secret_file"):
        settings_from_config(config(tmp_path, "tunnel: {secret_file: missing.key}\n"))
    with pytest.raises(TunnelConfigError, match=r"need tunnel\.secret_file"):
        settings_from_config(config(tmp_path, "listen: {tunnel: 127.0.0.1:0}\n"))
    short = "too-short-secret"
    with pytest.raises(TunnelConfigError, match="32 bytes") as err:
        settings_from_config(config(tmp_path, f"tunnel: {{secret: {short}}}\n"))
    assert short not in str(err.value)
    cfg = config(tmp_path, f"tunnel: {{secret: {SECRET}}}\n")
    assert SECRET not in repr(cfg) and SECRET not in str(cfg.tunnel)


def test_tls_options_are_checked_at_load(tmp_path: Path) -> None:
    with pytest.raises(ValidationError, match="go together"):
        LanewayConfig.model_validate({"tunnel": {"tls_cert": "c.pem"}})
    with pytest.raises(ValidationError, match="client_ca needs"):
        LanewayConfig.model_validate({"tunnel": {"client_ca": "ca.pem"}})
    cfg = LanewayConfig.model_validate(
        {
            "tunnel": {"secret": SECRET, "tls_cert": "c.pem", "tls_key": "k.pem"},
            "base_dir": tmp_path,
        }
    )
    with pytest.raises(TunnelConfigError, match="TLS files"):
        settings_from_config(cfg)
