"""`proxy` (distribution's pull-through cache) and `mirrors` (upstreams under a prefix): the
keys, their checks, REGISTRY_* overrides, the proxy as a catch-all upstream, and secrets that
never reach an error message."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from dockyard.config import Config, ConfigError, MirrorConfig, ProxyConfig, load_config
from dockyard.config.values import parse_size
from tests.authkit import Pki

SECRET = "hunter2-not-for-logs"


def load(tmp_path: Path, data: dict[str, Any], **environ: str) -> Config:
    path = tmp_path / "config.yml"
    path.write_text(yaml.safe_dump(data))
    return load_config(path, environ)


def load_error(tmp_path: Path, data: dict[str, Any], **environ: str) -> str:
    with pytest.raises(ConfigError) as info:
        load(tmp_path, data, **environ)
    return str(info.value)


def mirror(**keys: Any) -> dict[str, Any]:
    return {"prefix": "docker.io", "url": "https://registry-1.docker.io", **keys}


def mirror_error(tmp_path: Path, *entries: dict[str, Any], **environ: str) -> str:
    return load_error(tmp_path, {"mirrors": list(entries)}, **environ)


# --- proxy --------------------------------------------------------------------------------------


def test_no_upstreams_by_default() -> None:
    config = load_config(None, {})
    assert config.proxy is None
    assert config.mirrors == []
    assert config.upstreams() == []


def test_proxy_as_distribution_writes_it(tmp_path: Path) -> None:
    config = load(tmp_path, {"proxy": {"remoteurl": "https://registry-1.docker.io/",
                                       "username": "bob", "password": SECRET, "ttl": "72h"}})
    assert config.proxy == ProxyConfig(remoteurl="https://registry-1.docker.io",
                                       username="bob", password=SECRET, ttl="72h")


def test_proxy_defaults_and_anonymous_empty_credentials(tmp_path: Path) -> None:
    proxy = load(tmp_path, {"proxy": {"remoteurl": "http://upstream:5000",
                                      "username": "", "password": ""}}).proxy
    assert proxy is not None
    assert (proxy.ttl, proxy.username, proxy.password) == ("168h", None, None)


def test_proxy_needs_remoteurl(tmp_path: Path) -> None:
    assert load_error(tmp_path, {"proxy": {"ttl": "1h"}}) == "proxy.remoteurl: Field required"


def test_proxy_bad_ttl_and_password_without_username(tmp_path: Path) -> None:
    message = load_error(tmp_path, {"proxy": {"remoteurl": "https://u", "ttl": "7d"}})
    assert message.startswith("proxy.ttl: not a duration: '7d'")
    message = load_error(tmp_path, {"proxy": {"remoteurl": "https://u", "password": SECRET}})
    assert message == "proxy: password needs a username"


def test_proxy_from_the_environment() -> None:
    config = load_config(None, {
        "REGISTRY_PROXY_REMOTEURL": "https://registry-1.docker.io",
        "REGISTRY_PROXY_USERNAME": "bob",
        "REGISTRY_PROXY_PASSWORD": "a: b #*" + SECRET,
        "REGISTRY_PROXY_TTL": "0",
    })
    assert config.proxy == ProxyConfig(remoteurl="https://registry-1.docker.io", username="bob",
                                       password="a: b #*" + SECRET, ttl="0")


def test_proxy_is_the_catch_all_upstream_after_the_mirrors(tmp_path: Path) -> None:
    config = load(tmp_path, {
        "proxy": {"remoteurl": "https://proxy.example:8443/", "username": "bob",
                  "password": SECRET, "ttl": "48h"},
        "mirrors": [mirror()],
    })
    first, last = config.upstreams()
    assert first.prefix == "docker.io"
    assert last.catch_all and not first.catch_all
    assert (last.prefix, last.url, last.host) == ("", "https://proxy.example:8443",
                                                 "proxy.example:8443")
    assert (last.username, last.password_value()) == ("bob", SECRET)
    assert last.max_age_seconds == 48 * 3600
    assert last.tag_ttl_seconds == 300
    assert last.max_bytes is None


@pytest.mark.parametrize("ttl, seconds", [("0", None), ("0s", None), ("168h", 168 * 3600)])
def test_proxy_ttl_becomes_maxage(ttl: str, seconds: float | None) -> None:
    proxy = ProxyConfig(remoteurl="https://u", ttl=ttl)
    assert proxy.upstream().max_age_seconds == seconds
    assert ProxyConfig(remoteurl="https://u").upstream().max_age_seconds == 168 * 3600


# --- mirrors: keys and defaults -----------------------------------------------------------------


def test_mirror_defaults(tmp_path: Path) -> None:
    (entry,) = load(tmp_path, {"mirrors": [mirror(url="https://registry-1.docker.io/")]}).mirrors
    assert entry.url == "https://registry-1.docker.io"
    assert entry.host == "registry-1.docker.io"
    assert (entry.username, entry.password_value()) == (None, None)
    assert (entry.ca, entry.insecure) == (None, False)
    assert entry.tag_ttl_seconds == 300
    assert (entry.max_age_seconds, entry.max_bytes) == (None, None)
    assert (entry.timeout_seconds, entry.connect_timeout_seconds) == (30, 10)
    assert not entry.catch_all


def test_mirror_every_key(tmp_path: Path) -> None:
    ca = Pki(tmp_path / "pki").ca_path
    (entry,) = load(tmp_path, {"mirrors": [mirror(
        prefix="mirror/quay", url="http://[::1]:5000", username="u", password=SECRET,
        ca=str(ca), insecure=True, tagttl="0", maxage="720h", maxsize="10GiB",
        timeout="1m", connecttimeout="2s")]}).mirrors
    assert entry.prefix == "mirror/quay"
    assert entry.host == "[::1]:5000"
    assert entry.password_value() == SECRET
    assert (entry.ca, entry.insecure) == (str(ca), True)
    assert (entry.tag_ttl_seconds, entry.max_age_seconds) == (0, 720 * 3600)
    assert entry.max_bytes == 10 * 1024**3
    assert (entry.timeout_seconds, entry.connect_timeout_seconds) == (60, 2)


@pytest.mark.parametrize("prefix", ["docker.io", "ghcr.io", "mirror/quay", "a", "my-reg_1/x__y"])
def test_good_prefixes(tmp_path: Path, prefix: str) -> None:
    assert load(tmp_path, {"mirrors": [mirror(prefix=prefix)]}).mirrors[0].prefix == prefix


@pytest.mark.parametrize("prefix", [
    "Docker.io", "docker.io/", "/docker.io", "a//b", "-a", "a_", "quay.io:443", "a b",
])
def test_bad_prefixes(tmp_path: Path, prefix: str) -> None:
    message = mirror_error(tmp_path, mirror(prefix=prefix))
    assert message.startswith(f"mirrors[0].prefix: not a repository name prefix: {prefix!r}")


def test_empty_prefix_is_the_proxy_sections(tmp_path: Path) -> None:
    message = mirror_error(tmp_path, mirror(prefix=""))
    assert message.startswith("mirrors[0].prefix: must not be empty")
    assert "proxy section" in message


def test_prefix_and_url_are_required(tmp_path: Path) -> None:
    message = mirror_error(tmp_path, {"username": "u"})
    assert message.splitlines() == ["mirrors[0].prefix: Field required",
                                    "mirrors[0].url: Field required"]


def test_duplicate_prefix_names_both_entries(tmp_path: Path) -> None:
    message = mirror_error(tmp_path, mirror(), mirror(prefix="ghcr.io", url="https://ghcr.io"),
                           mirror(url="https://mirror.gcr.io"))
    assert message == "mirrors[2].prefix: duplicate prefix 'docker.io' (also mirrors[0].prefix)"


@pytest.mark.parametrize("url, problem", [
    ("ftp://registry", "not an http(s) URL: 'ftp://registry'"),
    ("registry.example:5000", "not an http(s) URL"),
    ("https://registry/v2/", "must be scheme://host[:port] only"),
    ("https://registry/?x=1", "must be scheme://host[:port] only"),
    ("https://registry:99999", "bad port in URL"),
])
@pytest.mark.parametrize("key, data", [
    ("proxy.remoteurl", lambda url: {"proxy": {"remoteurl": url}}),
    ("mirrors[0].url", lambda url: {"mirrors": [mirror(url=url)]}),
])
def test_bad_urls(tmp_path: Path, url: str, problem: str, key: str, data: Any) -> None:
    assert load_error(tmp_path, data(url)).startswith(f"{key}: {problem}")


@pytest.mark.parametrize("key, value, problem", [
    ("tagttl", "5 minutes", "not a duration: '5 minutes'"),
    ("maxage", "0", "must be longer than zero"),
    ("timeout", "-1s", "not a duration"),
    ("connecttimeout", "0s", "must be longer than zero"),
    ("maxsize", "10gb", "not a size: '10gb'"),
    ("maxsize", "0", "must be at least one byte"),
    ("maxsize", -5, "must be at least one byte"),
    ("maxsize", True, "not a size"),
    ("maxsize", 1.5, "not a size"),
    ("insecure", "maybe", "Input should be a valid boolean"),
])
def test_bad_values_are_named(tmp_path: Path, key: str, value: Any, problem: str) -> None:
    assert mirror_error(tmp_path, mirror(**{key: value})).startswith(f"mirrors[0].{key}: {problem}")


def test_unknown_key_in_an_entry(tmp_path: Path) -> None:
    assert mirror_error(tmp_path, mirror(skipverify=True)) == "mirrors[0].skipverify: unknown key"


@pytest.mark.parametrize("text, size", [
    (1, 1), (4096, 4096), ("4096", 4096), ("512B", 512), ("500MB", 500 * 1000**2),
    ("500 MB", 500 * 1000**2), ("1kB", 1000), ("1KB", 1000), ("1KiB", 1024),
    ("10GiB", 10 * 1024**3), ("1TB", 1000**4), ("1.5GB", 1_500_000_000), ("2PiB", 2 * 1024**5),
])
def test_parse_size(text: int | str, size: int) -> None:
    assert parse_size(text) == size


# --- mirrors: credentials and files -------------------------------------------------------------


def test_password_from_a_file_without_its_trailing_newline(tmp_path: Path) -> None:
    secret = tmp_path / "secret"
    secret.write_text(SECRET + "\n")
    (entry,) = load(tmp_path, {"mirrors": [mirror(username="u", passwordfile=str(secret))]}).mirrors
    assert entry.password_value() == SECRET
    secret.write_text("changed")
    assert entry.password_value() == SECRET, "read once, at load"


def test_password_from_the_environment(tmp_path: Path) -> None:
    entry = load(tmp_path, {"mirrors": [mirror(username="u", passwordenv="HUB_TOKEN")]},
                 HUB_TOKEN=SECRET).mirrors[0]
    assert (entry.passwordenv, entry.password_value()) == ("HUB_TOKEN", SECRET)


def test_passwordenv_reads_os_environ_by_default(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HUB_TOKEN", SECRET)
    path = tmp_path / "config.yml"
    path.write_text(yaml.safe_dump({"mirrors": [mirror(username="u", passwordenv="HUB_TOKEN")]}))
    assert load_config(path).mirrors[0].password_value() == SECRET


@pytest.mark.parametrize("environ, state", [({}, "is not set"), ({"HUB_TOKEN": ""}, "is empty")])
def test_passwordenv_must_be_set(tmp_path: Path, environ: dict[str, str], state: str) -> None:
    message = mirror_error(tmp_path, mirror(username="u", passwordenv="HUB_TOKEN"), **environ)
    assert message == f"mirrors[0].passwordenv: environment variable HUB_TOKEN {state}"


def test_passwordfile_must_be_readable(tmp_path: Path) -> None:
    missing = tmp_path / "missing"
    message = mirror_error(tmp_path, mirror(username="u", passwordfile=str(missing)))
    assert message == f"mirrors[0].passwordfile: cannot read {missing}: No such file or directory"
    empty = tmp_path / "empty"
    empty.write_text("\n")
    message = mirror_error(tmp_path, mirror(username="u", passwordfile=str(empty)))
    assert message == f"mirrors[0].passwordfile: {empty} is empty"
    binary = tmp_path / "binary"
    binary.write_bytes(b"\xff\xfe" + SECRET.encode())
    message = mirror_error(tmp_path, mirror(username="u", passwordfile=str(binary)))
    assert message == f"mirrors[0].passwordfile: {binary}: not UTF-8 text"


def test_unreadable_passwordfile_and_unusable_ca(tmp_path: Path) -> None:
    folder = tmp_path / "a-folder"  # unreadable as a file, for root too
    folder.mkdir()
    message = mirror_error(tmp_path, mirror(username="u", passwordfile=str(folder)))
    assert message == f"mirrors[0].passwordfile: cannot read {folder}: Is a directory"
    garbage = tmp_path / "ca.pem"
    garbage.write_text("not a certificate\n")
    message = mirror_error(tmp_path, mirror(ca=str(garbage)))
    assert message == f"mirrors[0].ca: {garbage} holds no PEM certificate"


def test_two_password_sources(tmp_path: Path) -> None:
    secret = tmp_path / "secret"
    secret.write_text(SECRET)
    message = mirror_error(tmp_path, mirror(username="u", password=SECRET,
                                            passwordfile=str(secret)))
    assert message == "mirrors[0]: set one of password, passwordfile, not several"
    message = mirror_error(tmp_path, mirror(username="u", passwordfile=str(secret),
                                            passwordenv="HUB_TOKEN"), HUB_TOKEN=SECRET)
    assert message == "mirrors[0]: set one of passwordfile, passwordenv, not several"


@pytest.mark.parametrize("source", ["password", "passwordenv"])
def test_a_password_needs_a_username(tmp_path: Path, source: str) -> None:
    message = mirror_error(tmp_path, mirror(**{source: "HUB_TOKEN"}), HUB_TOKEN=SECRET)
    assert message == f"mirrors[0]: {source} needs a username"


def test_username_alone_is_allowed(tmp_path: Path) -> None:
    (entry,) = load(tmp_path, {"mirrors": [mirror(username="u")]}).mirrors
    assert (entry.username, entry.password_value()) == ("u", None)


def test_ca_must_exist(tmp_path: Path) -> None:
    missing = tmp_path / "ca.pem"
    message = mirror_error(tmp_path, mirror(ca=str(missing)))
    assert message == f"mirrors[0].ca: no such file: {missing}"
    message = mirror_error(tmp_path, mirror(ca=str(tmp_path)))
    assert message == f"mirrors[0].ca: no such file: {tmp_path}"


# --- mirrors: environment -----------------------------------------------------------------------


@pytest.mark.parametrize("dump", [yaml.safe_dump, json.dumps])
def test_the_whole_list_from_the_environment(tmp_path: Path, dump: Any) -> None:
    file_entry = mirror(prefix="from-file")
    entries = [mirror(username="u", passwordenv="HUB_TOKEN", maxsize="1GB"),
               mirror(prefix="ghcr.io", url="https://ghcr.io", maxsize=1024)]
    config = load(tmp_path, {"mirrors": [file_entry]},
                  REGISTRY_MIRRORS=dump(entries), HUB_TOKEN=SECRET)
    assert [entry.prefix for entry in config.mirrors] == ["docker.io", "ghcr.io"]
    assert config.mirrors[0].password_value() == SECRET
    assert [entry.max_bytes for entry in config.mirrors] == [1000**3, 1024]


def test_a_bad_entry_from_the_environment_names_the_variable() -> None:
    message = load_error_env(REGISTRY_MIRRORS=json.dumps([mirror(prefix="Docker.io")]))
    assert message.startswith("mirrors[0].prefix: not a repository name prefix")
    assert message.endswith("(from REGISTRY_MIRRORS)")


def test_list_items_cannot_be_set_one_key_at_a_time() -> None:
    message = load_error_env(REGISTRY_MIRRORS_0_URL="https://ghcr.io")
    assert message == "REGISTRY_MIRRORS_0_URL: unknown key mirrors.0.url"


def load_error_env(**environ: str) -> str:
    with pytest.raises(ConfigError) as info:
        load_config(None, environ)
    return str(info.value)


# --- secrets stay out of messages and representations -------------------------------------------


def test_secrets_never_reach_error_messages(tmp_path: Path) -> None:
    secret_file = tmp_path / "secret"
    secret_file.write_text(SECRET)
    messages = [
        load_error(tmp_path, {"proxy": {"remoteurl": f"ftp://bob:{SECRET}@upstream"}}),
        load_error(tmp_path, {"proxy": {"remoteurl": f"https://bob:{SECRET}@upstream"}}),
        load_error(tmp_path, {"proxy": {"remoteurl": "https://u", "password": SECRET}}),
        mirror_error(tmp_path, mirror(url=f"https://:{SECRET}@registry")),
        mirror_error(tmp_path, mirror(password=SECRET, username="u", passwordenv="X"), X=SECRET),
        mirror_error(tmp_path, mirror(passwordfile=str(secret_file))),
        mirror_error(tmp_path, mirror(password=SECRET, username="u", tagttl="x")),
        load_error_env(REGISTRY_PROXY_PASSWORD=SECRET, REGISTRY_PROXY_TTL="x"),
        load_error_env(REGISTRY_MIRRORS=f"[{{prefix: a, url: 'https://u:{SECRET}@x'}}]"),
        load_error_env(REGISTRY_MIRRORS=f"[{{prefix: a, password: {SECRET}"),
    ]
    for message in messages:
        assert message
        assert SECRET not in message, message
    assert "***@" in messages[0]


def test_secrets_are_not_in_reprs(tmp_path: Path) -> None:
    config = load(tmp_path, {"proxy": {"remoteurl": "https://u", "username": "u",
                                       "password": SECRET},
                             "mirrors": [mirror(username="u", passwordenv="T")]}, T=SECRET)
    assert SECRET not in repr(config)
    assert SECRET not in repr(config.upstreams())
    assert SECRET not in str(MirrorConfig.model_fields)
