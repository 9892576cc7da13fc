"""The scale-out configuration: storage.s3, database pool/TLS options and redis."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from dockyard.app.backends import describe, redis_options, s3_options
from dockyard.config import ConfigError, load_config
from dockyard.metadata.postgres import PostgresOptions, tls_argument

S3 = {"bucket": "registry", "accesskey": "a", "secretkey": "b"}


def _load(tmp_path: Path, document: dict[str, Any], environ: dict[str, str] | None = None
          ) -> Any:
    path = tmp_path / "config.yml"
    path.write_text(yaml.safe_dump(document))
    return load_config(path, environ or {})


def _problems(tmp_path: Path, document: dict[str, Any]) -> str:
    with pytest.raises(ConfigError) as raised:
        _load(tmp_path, document)
    return str(raised.value)


def test_s3_in_distributions_layout(tmp_path: Path) -> None:
    config = _load(tmp_path, {"storage": {"s3": {
        **S3, "regionendpoint": "minio:9000", "secure": False, "forcepathstyle": True,
        "rootdirectory": "/reg", "storageclass": "NONE", "encrypt": True, "keyid": "k",
        "skipverify": True}, "redirect": {"disable": True}}})
    options = s3_options(config)
    assert options is not None
    assert options.endpoint_url == "http://minio:9000" and options.force_path_style
    assert options.storage_class is None and not options.verify_tls and not options.redirect
    assert options.encrypt and options.kms_key_id == "k" and options.root == "/reg"


def test_exactly_one_storage_driver(tmp_path: Path) -> None:
    both = {"storage": {"s3": S3, "filesystem": {"rootdirectory": str(tmp_path)}}}
    assert "one storage driver" in _problems(tmp_path, both)
    assert s3_options(_load(tmp_path, {})) is None  # filesystem stays the default


def test_s3_values_are_checked(tmp_path: Path) -> None:
    assert "storage.s3.chunksize" in _problems(
        tmp_path, {"storage": {"s3": {**S3, "chunksize": 1024}}})
    assert "accesskey and secretkey go together" in _problems(
        tmp_path, {"storage": {"s3": {"bucket": "b", "accesskey": "a"}}})
    assert "storage.s3.bucket" in _problems(tmp_path, {"storage": {"s3": {}}})


def test_environment_reaches_the_new_sections(tmp_path: Path) -> None:
    config = _load(tmp_path, {}, {
        "REGISTRY_STORAGE_S3_BUCKET": "envbucket",
        "REGISTRY_STORAGE_S3_CHUNKSIZE": "6291456",
        "REGISTRY_REDIS_ADDR": "redis:6380",
        "REGISTRY_REDIS_PASSWORD": "p: w",
        "REGISTRY_DATABASE_POOL_TIMEOUT": "3s",
        "REGISTRY_DATABASE_SSLMODE": "require",
    })
    assert config.storage.s3 is not None and config.storage.s3.bucket == "envbucket"
    assert config.storage.s3.chunksize == 6291456
    redis = redis_options(config)
    assert redis is not None and (redis.host, redis.port, redis.password) == ("redis", 6380,
                                                                              "p: w")
    assert config.database.pool_timeout == "3s" and config.database.sslmode == "require"


def test_database_tls_modes() -> None:
    assert tls_argument(PostgresOptions()) is None
    assert tls_argument(PostgresOptions(sslmode="disable")) is False
    relaxed = tls_argument(PostgresOptions(sslmode="require"))
    strict = tls_argument(PostgresOptions(sslmode="verify-full"))
    assert not isinstance(relaxed, bool) and relaxed is not None and not relaxed.check_hostname
    assert not isinstance(strict, bool) and strict is not None and strict.check_hostname


def test_bad_database_and_redis_values(tmp_path: Path) -> None:
    text = _problems(tmp_path, {"database": {"sslmode": "sometimes", "pool_timeout": "soon"},
                                "redis": {"addr": "no-port"}})
    assert "database.sslmode" in text and "database.pool_timeout" in text
    assert "redis.addr" in text


def test_serve_says_where_the_data_lives(tmp_path: Path) -> None:
    lines = describe(_load(tmp_path, {"http": {"addr": "127.0.0.1:5001"},
                                      "storage": {"filesystem": {"rootdirectory": "data"}}}))
    root = (Path.cwd() / "data").resolve()
    assert lines == [
        "serving http://127.0.0.1:5001/v2/",
        f"blobs: filesystem {root}",
        f"metadata: SQLite {root / 'dockyard.db'}",
        "cache: none (every lookup reads the database)",
        "auth: off (anyone who reaches the port may push and pull)",
    ]


def test_s3_with_a_local_database_is_called_out(tmp_path: Path) -> None:
    s3 = {"bucket": "images", "region": "eu-west-1", "accesskey": "a", "secretkey": "b"}
    lines = describe(_load(tmp_path, {"storage": {"s3": s3}}))
    assert "blobs: S3 bucket images in eu-west-1" in lines
    assert lines[-1].startswith("WARNING: storage.s3 is set but database.url is not")
    with_database = describe(_load(tmp_path, {"storage": {"s3": s3},
                                              "database": {"url": "postgresql://db/reg"}}))
    assert "metadata: PostgreSQL db:5432/reg" in with_database
    assert not any(line.startswith("WARNING") for line in with_database)


def test_distribution_keys_dockyard_does_not_need_are_named(tmp_path: Path) -> None:
    lines = describe(_load(tmp_path, {"http": {"secret": "s"},
                                      "storage": {"cache": {"blobdescriptor": "inmemory"}}}))
    assert ("not used: http.secret, storage.cache (distribution keys for state that Dockyard "
            "keeps in its database)") in lines
