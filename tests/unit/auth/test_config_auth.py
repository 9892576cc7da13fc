"""The auth and http.tls configuration: distribution's keys, env overrides, consistency."""

from __future__ import annotations

from pathlib import Path

import pytest

from dockyard.app.auth import build_auth
from dockyard.auth.access import repository_scope
from dockyard.cli import main
from dockyard.config import Config, ConfigError, load_config


def test_auth_is_off_by_default() -> None:
    config = load_config(None, {})
    assert not config.auth.enabled
    assert build_auth(config) is None
    assert config.http.tls is None


def test_env_overrides_reach_auth_but_registry_auth_file_stays_foreign(tmp_path: Path) -> None:
    config = load_config(None, {
        "REGISTRY_AUTH_HTPASSWD_PATH": str(tmp_path / "htpasswd"),
        "REGISTRY_AUTH_HTPASSWD_REALM": "Registry Realm",
        "REGISTRY_AUTH_TOKENSERVICE_EXPIRATION": "2m",
        "REGISTRY_AUTH_FILE": "/run/containers/0/auth.json",
        "REGISTRY_HTTP_TLS_CERTIFICATE": "/etc/cert.pem",
        "REGISTRY_HTTP_TLS_KEY": "/etc/key.pem",
    })
    assert config.auth.htpasswd is not None
    assert config.auth.htpasswd.realm == "Registry Realm"
    assert config.auth.token_service_enabled
    assert config.auth.tokenservice.expiration_seconds == 120
    assert config.http.tls is not None and config.http.tls.minimumtls == "tls1.2"
    assert config == load_config(None, {
        "REGISTRY_AUTH_HTPASSWD_PATH": str(tmp_path / "htpasswd"),
        "REGISTRY_AUTH_HTPASSWD_REALM": "Registry Realm",
        "REGISTRY_AUTH_TOKENSERVICE_EXPIRATION": "2m",
        "REGISTRY_HTTP_TLS_CERTIFICATE": "/etc/cert.pem",
        "REGISTRY_HTTP_TLS_KEY": "/etc/key.pem",
    })


def _error(tmp_path: Path, text: str) -> str:
    path = tmp_path / "config.yml"
    path.write_text(text)
    with pytest.raises(ConfigError) as caught:
        load_config(path, {})
    return str(caught.value)


def test_inconsistent_auth_sections_are_refused(tmp_path: Path) -> None:
    assert "rootcertbundle or jwks" in _error(tmp_path, "auth:\n  token: {realm: x}\n")
    assert "realm, service and issuer" in _error(
        tmp_path, "auth:\n  token: {jwks: /k.json}\n")
    assert "needs auth.htpasswd" in _error(
        tmp_path, "auth:\n  tokenservice: {enabled: true}\n")
    assert "auth.htpasswd.path" in _error(tmp_path, "auth:\n  htpasswd: {realm: x}\n")
    assert "auth.token.signingalgorithms[0]" in _error(
        tmp_path, "auth:\n  htpasswd: {path: /p}\n  token: {signingalgorithms: [HS256]}\n")
    assert "auth.access.rules[0].actions[0]" in _error(
        tmp_path, "auth:\n  htpasswd: {path: /p}\n  access:\n    rules:\n"
                  "      - {repositories: ['**'], actions: [write]}\n")
    assert "http.tls.minimumtls" in _error(
        tmp_path, "http:\n  tls: {certificate: c, key: k, minimumtls: tls1.0}\n")


def test_external_token_service_needs_no_users(tmp_path: Path) -> None:
    jwks = tmp_path / "jwks.json"
    jwks.write_text('{"keys": []}')
    config = Config.model_validate({"auth": {"token": {
        "realm": "https://auth.example.com/token", "service": "registry.example.com",
        "issuer": "auth.example.com", "jwks": str(jwks)}}})
    state = build_auth(config)
    assert state is not None and state.token_service is None
    assert state.authorizer.mode == "bearer"
    assert state.authorizer.challenge(None, "unused") == (
        'Bearer realm="https://auth.example.com/token",service="registry.example.com"')


def test_key_rotate_command(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = tmp_path / "config.yml"
    config.write_text(f"storage: {{filesystem: {{rootdirectory: {tmp_path / 'data'}}}}}\n"
                      f"auth: {{htpasswd: {{path: {tmp_path / 'htpasswd'}}}}}\n")
    command = ["key", "--config", str(config), "rotate"]
    assert main(command) == 0
    first = capsys.readouterr().out
    assert main([*command, "--retire-after", "0"]) == 0
    second = capsys.readouterr().out
    assert first.startswith("signing with key ")
    assert "retired key" in second
    keys = sorted((tmp_path / "data" / "auth" / "keys").glob("*.pem"))
    assert len(keys) == 1 and second.split()[3] in keys[0].name


def test_builtin_service_follows_auth_token_names(tmp_path: Path) -> None:
    """auth.token's service and issuer name the built-in service too: its tokens verify."""
    config = Config.model_validate({
        "storage": {"filesystem": {"rootdirectory": str(tmp_path / "data")}},
        "auth": {"htpasswd": {"path": str(tmp_path / "htpasswd")},
                 "token": {"service": "registry.example.com", "issuer": "example-issuer"}}})
    state = build_auth(config)
    assert state is not None and state.token_service is not None
    token = state.token_service.access_token("alice", [repository_scope("a/b", "pull")])
    decision = state.authorizer.authorize(f"Bearer {token}", "ip",
                                          repository_scope("a/b", "pull"), "unused")
    assert decision.allowed
    assert state.authorizer.challenge(None, "https://r/token") == (
        'Bearer realm="https://r/token",service="registry.example.com"')


TLS_WITH_CLIENTCAS = "http:\n  tls: {certificate: /c.pem, key: /k.pem, clientcas: [/ca.pem]}\n"


def test_client_certificate_logins_reach_the_auth_state(tmp_path: Path) -> None:
    path = tmp_path / "config.yml"
    path.write_text(TLS_WITH_CLIENTCAS + f"auth:\n  htpasswd: {{path: {tmp_path / 'users'}}}\n"
                    "  clientcertificate: {enabled: true, field: san-uri}\n")
    (tmp_path / "users").write_text("")
    state = build_auth(load_config(path, {}))
    assert state is not None and state.certificate_field == "san-uri"
    path.write_text(path.read_text().replace("enabled: true", "enabled: false"))
    state = build_auth(load_config(path, {}))
    assert state is not None and state.certificate_field is None


def test_client_certificate_logins_need_verified_certificates_and_auth(tmp_path: Path) -> None:
    users = f"  htpasswd: {{path: {tmp_path / 'users'}}}\n"
    enabled = "  clientcertificate: {enabled: true}\n"
    assert "needs http.tls.clientcas" in _error(tmp_path, "auth:\n" + users + enabled)
    assert "needs auth.htpasswd or auth.token" in _error(
        tmp_path, TLS_WITH_CLIENTCAS + "auth:\n" + enabled)
    external = "  token: {jwks: /k.json, realm: r, service: s, issuer: i}\n"
    assert "built-in token service" in _error(
        tmp_path, TLS_WITH_CLIENTCAS + "auth:\n" + external + enabled)
    assert "auth.clientcertificate.field" in _error(
        tmp_path, TLS_WITH_CLIENTCAS + "auth:\n" + users
        + "  clientcertificate: {enabled: true, field: serial}\n")
