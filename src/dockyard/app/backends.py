"""Composition for the shared backends: PostgreSQL options, the blob store, the Redis cache.

Part of the composition root, like `app` and the other `app_*` modules.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from dockyard.config import Config, parse_duration, split_host_port
from dockyard.storage.base import BlobStore
from dockyard.storage.filesystem.driver import FilesystemBlobStore

if TYPE_CHECKING:
    from dockyard.cache.base import Cache
    from dockyard.cache.redis import RedisOptions
    from dockyard.metadata.engine import Engines
    from dockyard.metadata.postgres import PostgresOptions
    from dockyard.storage.s3.driver import S3Options

# The S3 and Redis drivers are imported only when configured: together they weigh tens of
# MiB in every worker process. The metadata engines are imported where they are built: the
# supervisor's debug listener needs only the blob store from here.


def postgres_options(config: Config) -> PostgresOptions:
    from dockyard.metadata.postgres import PostgresOptions

    database = config.database
    return PostgresOptions(
        pool_size=database.pool_size,
        max_overflow=database.max_overflow,
        pool_timeout=parse_duration(database.pool_timeout),
        pool_recycle=parse_duration(database.pool_recycle),
        connect_timeout=parse_duration(database.connect_timeout),
        statement_timeout=parse_duration(database.statement_timeout),
        sslmode=database.sslmode,
        sslrootcert=database.sslrootcert,
        sslcert=database.sslcert,
        sslkey=database.sslkey,
    )


def database_engines(config: Config) -> Engines:
    """The engines `database` describes (SQLite by default, else PostgreSQL with its pool)."""
    from dockyard.metadata.engine import create_engines

    return create_engines(
        config.database_url(), pool_size=config.database.pool_size, echo=config.database.echo,
        postgres=postgres_options(config),
    )


def sqlite_file(config: Config) -> Path | None:
    """The SQLite database file `database` describes; None for PostgreSQL or in-memory."""
    from sqlalchemy.engine import make_url

    parsed = make_url(config.database_url())
    if parsed.get_backend_name() != "sqlite" or parsed.database in (None, "", ":memory:"):
        return None
    return Path(parsed.database).resolve()


def s3_options(config: Config) -> S3Options | None:
    s3 = config.storage.s3
    if s3 is None:
        return None
    from dockyard.storage.s3.driver import S3Options

    extra = {"ACL": s3.objectacl} if s3.objectacl else {}
    return S3Options(
        bucket=s3.bucket,
        region=s3.region,
        endpoint_url=s3.endpoint_url,
        force_path_style=s3.forcepathstyle,
        access_key=s3.accesskey,
        secret_key=s3.secretkey,
        session_token=s3.sessiontoken,
        root=s3.rootdirectory,
        chunk_size=s3.chunksize,
        copy_chunk_size=s3.multipartcopychunksize,
        copy_threshold=s3.multipartcopythresholdsize,
        copy_concurrency=s3.multipartcopymaxconcurrency,
        storage_class=None if s3.storageclass.upper() == "NONE" else s3.storageclass,
        encrypt=s3.encrypt,
        kms_key_id=s3.keyid,
        verify_tls=not s3.skipverify,
        redirect=not config.storage.redirect.disable,
        extra_put_arguments=extra,
        user_agent=s3.useragent or None,
    )


def redis_options(config: Config) -> RedisOptions | None:
    redis = config.redis
    if redis is None:
        return None
    from dockyard.cache.redis import RedisOptions

    host, port = split_host_port(redis.addr)
    return RedisOptions(
        host=host, port=port, db=redis.db, username=redis.username, password=redis.password,
        tls=redis.tls.enabled, tls_ca_files=tuple(redis.tls.clientcas),
        tls_certificate=redis.tls.certificate, tls_key=redis.tls.key,
        tls_verify=not redis.tls.insecureskipverify,
        connect_timeout=parse_duration(redis.dialtimeout),
        timeout=max(parse_duration(redis.readtimeout), parse_duration(redis.writetimeout)),
        max_connections=redis.pool.maxactive,
    )


def build_cache(config: Config) -> Cache | None:
    """The shared cache when `redis` is configured; without it every lookup reads the DB."""
    options = redis_options(config)
    if options is None or config.redis is None:
        return None
    from dockyard.cache.redis import RedisCache
    from dockyard.cache.redis import connect as connect_redis

    return RedisCache(connect_redis(options), int(parse_duration(config.redis.cache.ttl)))


def build_blob_store(config: Config) -> BlobStore:
    options = s3_options(config)
    if options is not None:
        from dockyard.storage.s3.driver import S3BlobStore

        return S3BlobStore(options)
    return FilesystemBlobStore(Path(config.storage.filesystem.rootdirectory).resolve())


def describe(config: Config) -> list[str]:
    """What `dockyard serve` says once at start: where the data lives and what is in use.

    A line starting with "WARNING" names a setup that works on one node only though it looks
    made for several (S3 blobs with the metadata in a local SQLite file).
    """
    scheme = "https" if config.http.tls is not None else "http"
    lines = [f"serving {scheme}://{config.http.addr}/v2/"]
    s3 = config.storage.s3
    if s3 is not None:
        where = f" at {s3.endpoint_url}" if s3.endpoint_url else f" in {s3.region}"
        lines.append(f"blobs: S3 bucket {s3.bucket}{where}")
    else:
        root = Path(config.storage.filesystem.rootdirectory).resolve()
        lines.append(f"blobs: filesystem {root}")
    from sqlalchemy.engine import make_url

    url = make_url(config.database_url())
    database = sqlite_file(config)
    if url.get_backend_name() == "sqlite":
        lines.append(f"metadata: SQLite {database or 'in memory'}")
    else:
        lines.append(f"metadata: PostgreSQL {url.host or 'localhost'}:{url.port or 5432}/"
                     f"{url.database or ''}")
    lines.append(f"cache: Redis {config.redis.addr}" if config.redis is not None
                 else "cache: none (every lookup reads the database)")
    auth = config.auth
    if not auth.enabled:
        lines.append("auth: off (anyone who reaches the port may push and pull)")
    elif auth.token is not None:
        lines.append(f"auth: bearer tokens from {auth.token.realm}")
    elif auth.token_service_enabled:
        lines.append("auth: bearer tokens from the built-in token service (/token)")
    else:
        users = auth.htpasswd.path if auth.htpasswd is not None else "no"
        lines.append(f"auth: basic, users from {users}")
    unused = [key for key, value in (("http.secret", config.http.secret),
                                     ("storage.cache", config.storage.cache)) if value]
    if unused:
        lines.append(f"not used: {', '.join(unused)} (distribution keys for state that Dockyard "
                     "keeps in its database)")
    if s3 is not None and database is not None:
        lines.append(f"WARNING: storage.s3 is set but database.url is not: the metadata is in "
                     f"{database} on this machine only, so every node would be a registry of "
                     "its own; set database.url to a PostgreSQL database to run several")
    return lines
