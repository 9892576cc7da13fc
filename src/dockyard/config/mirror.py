"""The `proxy` section (distribution's) and the `mirrors` list (Dockyard's): upstream registries
whose images are pulled through and cached.

`proxy` mirrors one upstream for every repository, as distribution's pull-through cache does;
each `mirrors` entry mirrors one upstream under a repository-name prefix. The composition root
sees both the same way, as `MirrorConfig`s (`Config.upstreams`), with the password already
resolved from whichever source was configured, so a missing secret stops the start instead of
the first pull.
"""

from __future__ import annotations

import os
import ssl
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import urlsplit

from pydantic import (
    AfterValidator,
    Field,
    PrivateAttr,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic_core import InitErrorDetails, PydanticCustomError, ValidationError

from dockyard.config.section import Section
from dockyard.config.values import (
    BaseURL,
    ByteSize,
    Duration,
    PositiveDuration,
    parse_duration,
    parse_size,
)
from dockyard.oci.reference import is_valid_name

ENVIRON = "environ"
"""Validation context key: the environment `passwordenv` is read from (default os.environ)."""

CATCH_ALL = "catch_all"
"""Validation context key: allow the empty prefix, which only the `proxy` section stands for."""

PROXY_TTL = "168h"
"""distribution's default for `proxy.ttl`."""


def _key_error(key: str, value: str, message: str) -> ValidationError:
    """A problem reported at `key` inside the model being validated, found after its fields.

    Raised from a model validator, pydantic prefixes the location with the model's own, so the
    loader names e.g. `mirrors[1].passwordfile` rather than only `mirrors[1]`. The message must
    never contain a secret: only paths and variable names go in it.
    """
    error = PydanticCustomError("mirror_config", "{reason}", {"reason": message})
    return ValidationError.from_exception_data(
        "MirrorConfig", [InitErrorDetails(type=error, loc=(key,), input=value)])


def _environ(info: ValidationInfo) -> Mapping[str, str]:
    context = info.context if isinstance(info.context, dict) else {}
    environ = context.get(ENVIRON)
    return environ if isinstance(environ, Mapping) else os.environ


def _read_password_file(path: str) -> str:
    try:
        text = Path(path).read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise _key_error("passwordfile", path, f"{path}: not UTF-8 text") from None
    except OSError as exc:
        raise _key_error("passwordfile", path,
                         f"cannot read {path}: {exc.strerror or type(exc).__name__}") from None
    password = text.rstrip("\r\n")
    if not password:
        raise _key_error("passwordfile", path, f"{path} is empty")
    return password


class MirrorConfig(Section):
    """One upstream registry, mirrored under `<prefix>/`: local `<prefix>/<path>` is the
    upstream's `<path>`."""

    prefix: str
    url: BaseURL
    """scheme://host[:port] of the upstream, without a trailing slash once loaded."""
    username: str | None = Field(default=None, min_length=1)
    password: str | None = Field(default=None, min_length=1, repr=False)
    passwordfile: str | None = Field(default=None, min_length=1)
    """Read once, at load; a trailing newline is not part of the password."""
    passwordenv: str | None = Field(default=None, min_length=1)
    """The name of a variable holding the password; it must be set when the file is loaded."""
    ca: str | None = Field(default=None, min_length=1)
    """PEM bundle of the CAs trusted for the upstream's certificate (instead of the system's)."""
    insecure: bool = False
    """Do not verify the upstream's TLS certificate."""
    tagttl: Duration = "5m"
    maxage: PositiveDuration | None = None
    maxsize: ByteSize | None = None
    timeout: PositiveDuration = "30s"
    connecttimeout: PositiveDuration = "10s"

    _password: str | None = PrivateAttr(default=None)

    @field_validator("prefix")
    @classmethod
    def _repository_prefix(cls, value: str, info: ValidationInfo) -> str:
        if value == "" and isinstance(info.context, dict) and info.context.get(CATCH_ALL):
            return value
        if value == "":
            raise ValueError("must not be empty (an upstream for every repository is the "
                             "proxy section)")
        if not is_valid_name(value):
            raise ValueError(f"not a repository name prefix: {value!r} (lowercase path "
                             "components such as docker.io or mirror/quay)")
        return value

    @field_validator("ca")
    @classmethod
    def _ca_exists(cls, value: str | None) -> str | None:
        if value is None:
            return value
        if not Path(value).is_file():
            raise ValueError(f"no such file: {value}")
        try:  # loaded now: a bundle that would fail at the first pull fails the start instead
            ssl.create_default_context(cafile=value)
        except ssl.SSLError:
            raise ValueError(f"{value} holds no PEM certificate") from None
        except OSError as exc:
            raise ValueError(f"cannot read {value}: {exc.strerror or exc}") from None
        return value

    @model_validator(mode="after")
    def _one_password(self, info: ValidationInfo) -> MirrorConfig:
        """Resolve the password now: a secret that cannot be had is a configuration error."""
        sources = [key for key in ("password", "passwordfile", "passwordenv")
                   if getattr(self, key) is not None]
        if len(sources) > 1:
            raise ValueError(f"set one of {', '.join(sources)}, not several")
        if sources and self.username is None:
            raise ValueError(f"{sources[0]} needs a username")
        if self.passwordfile is not None:
            self._password = _read_password_file(self.passwordfile)
        elif self.passwordenv is not None:
            password = _environ(info).get(self.passwordenv)
            if not password:
                state = "is empty" if password == "" else "is not set"
                raise _key_error("passwordenv", self.passwordenv,
                                 f"environment variable {self.passwordenv} {state}")
            self._password = password
        else:
            self._password = self.password
        return self

    def password_value(self) -> str | None:
        """The password from whichever source was configured, read at load; None when none
        was (anonymous pulls, or a username alone)."""
        return self._password

    @property
    def catch_all(self) -> bool:
        """True for the `proxy` section's upstream, which every repository name matches."""
        return self.prefix == ""

    @property
    def host(self) -> str:
        """host[:port] of `url`, as registries name themselves in tokens and auth files."""
        return urlsplit(self.url).netloc

    @property
    def tag_ttl_seconds(self) -> float:
        """`tagttl` in seconds."""
        return parse_duration(self.tagttl)

    @property
    def max_age_seconds(self) -> float | None:
        """`maxage` in seconds; None keeps cached content however long it goes unpulled."""
        return None if self.maxage is None else parse_duration(self.maxage)

    @property
    def max_bytes(self) -> int | None:
        """`maxsize` in bytes; None sets no limit."""
        return None if self.maxsize is None else parse_size(self.maxsize)

    @property
    def timeout_seconds(self) -> float:
        """`timeout` in seconds."""
        return parse_duration(self.timeout)

    @property
    def connect_timeout_seconds(self) -> float:
        """`connecttimeout` in seconds."""
        return parse_duration(self.connecttimeout)


def _unique_prefixes(mirrors: list[MirrorConfig]) -> list[MirrorConfig]:
    first: dict[str, int] = {}
    for index, mirror in enumerate(mirrors):
        if mirror.prefix in first:
            error = PydanticCustomError("mirror_config", "{reason}", {
                "reason": f"duplicate prefix {mirror.prefix!r} "
                          f"(also mirrors[{first[mirror.prefix]}].prefix)"})
            raise ValidationError.from_exception_data("mirrors", [
                InitErrorDetails(type=error, loc=(index, "prefix"), input=mirror.prefix)])
        first[mirror.prefix] = index
    return mirrors


MirrorList = Annotated[list[MirrorConfig], AfterValidator(_unique_prefixes)]
"""`mirrors`: prefixes are unique, so each local repository has at most one upstream by its
exact prefix."""


class ProxyConfig(Section):
    """distribution's `proxy` section: this registry mirrors `remoteurl` for every repository."""

    remoteurl: BaseURL
    username: str | None = None
    password: str | None = Field(default=None, repr=False)
    ttl: Duration = PROXY_TTL
    """Content not pulled for this long is evicted; "0" keeps it."""

    @field_validator("username", "password", mode="before")
    @classmethod
    def _empty_means_anonymous(cls, value: Any) -> Any:
        """distribution's templates write `username: ""` for anonymous pulls."""
        return None if value == "" else value

    @model_validator(mode="after")
    def _password_needs_username(self) -> ProxyConfig:
        if self.password is not None and self.username is None:
            raise ValueError("password needs a username")
        return self

    def upstream(self) -> MirrorConfig:
        """The same upstream as a `mirrors` entry with the empty (catch-all) prefix."""
        ttl = parse_duration(self.ttl)
        return MirrorConfig.model_validate({
            "prefix": "", "url": self.remoteurl, "username": self.username,
            "password": self.password, "maxage": self.ttl if ttl else None,
        }, context={CATCH_ALL: True})
