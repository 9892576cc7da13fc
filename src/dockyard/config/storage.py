"""The `storage` section: the blob driver (filesystem or s3), deletion, maintenance, redirects."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import Field, field_validator, model_validator

from dockyard.config.section import Section
from dockyard.config.values import Duration, PositiveDuration, parse_duration


class FilesystemConfig(Section):
    """Blobs under a local directory; also where the default SQLite database and keys live."""

    rootdirectory: str = Field(default="./data", min_length=1)


MIN_S3_CHUNK_SIZE = 5 * 1024 * 1024
"""S3's smallest multipart part (except the last one)."""

PartSize = Annotated[int, Field(ge=MIN_S3_CHUNK_SIZE)]


class S3Config(Section):
    """distribution's `storage.s3` keys; credentials fall back to the AWS chain when unset."""

    bucket: str = Field(min_length=1)
    region: str = "us-east-1"
    regionendpoint: str | None = None
    forcepathstyle: bool = False
    accesskey: str | None = None
    secretkey: str | None = None
    sessiontoken: str | None = None
    rootdirectory: str = ""
    chunksize: PartSize = 10 * 1024 * 1024
    multipartcopychunksize: PartSize = 32 * 1024 * 1024
    multipartcopymaxconcurrency: int = Field(default=16, ge=1)
    multipartcopythresholdsize: int = Field(default=32 * 1024 * 1024, ge=0)
    storageclass: str = "STANDARD"
    """NONE sends no storage class (for stores that know none)."""
    encrypt: bool = False
    keyid: str | None = None
    secure: bool = True
    skipverify: bool = False
    v4auth: bool = True
    """Accepted as true only: requests are always signed with AWS signature version 4."""
    objectacl: str | None = None
    useragent: str | None = None
    """Leads the User-Agent header of S3 requests; unset (or empty) keeps the client's own."""

    @field_validator("v4auth")
    @classmethod
    def _only_v4(cls, value: bool) -> bool:
        if not value:
            raise ValueError("signature version 2 is not supported: S3 requests are always "
                             "signed with version 4 (remove v4auth or set it to true)")
        return value

    @model_validator(mode="after")
    def _pair_of_keys(self) -> S3Config:
        if (self.accesskey is None) != (self.secretkey is None):
            raise ValueError("accesskey and secretkey go together (or neither, for the AWS chain)")
        return self

    @property
    def endpoint_url(self) -> str | None:
        """`regionendpoint`, with the scheme `secure` implies when it has none."""
        if self.regionendpoint is None:
            return None
        if "://" in self.regionendpoint:
            return self.regionendpoint
        return f"{'https' if self.secure else 'http'}://{self.regionendpoint}"


class DeleteConfig(Section):
    """Whether manifests and blobs may be deleted through the API, and what goes with them."""

    enabled: bool = True
    referrers: Literal["keep", "remove"] = "keep"
    """What happens to referrers (signatures, SBOMs) when their subject manifest is deleted:
    kept as orphans, or deleted with it (and by GC when their subject is gone)."""


class UploadPurgingConfig(Section):
    """Abandoned uploads hold staged bytes; they are removed once older than `age`."""

    enabled: bool = True
    age: Duration = "168h"
    interval: PositiveDuration = "24h"
    dryrun: bool = False

    @property
    def age_seconds(self) -> float:
        """`age` in seconds."""
        return parse_duration(self.age)

    @property
    def interval_seconds(self) -> float:
        """`interval` in seconds."""
        return parse_duration(self.interval)


class ReadOnlyConfig(Section):
    """Refuse writes (for maintenance or a migration) while still serving pulls."""

    enabled: bool = False


class GCConfig(Section):
    """Online garbage collection in the server (Dockyard's; distribution has none)."""

    enabled: bool = True
    interval: PositiveDuration = "1h"
    graceperiod: Duration = "1h"
    """Blobs pushed and manifests pushed more recently than this are never collected."""
    deleteuntagged: bool = False

    @property
    def interval_seconds(self) -> float:
        """`interval` in seconds."""
        return parse_duration(self.interval)

    @property
    def grace_seconds(self) -> float:
        """`graceperiod` in seconds."""
        return parse_duration(self.graceperiod)


class MaintenanceConfig(Section):
    """Background upkeep: upload purging, read-only mode and garbage collection."""

    uploadpurging: UploadPurgingConfig = Field(default_factory=UploadPurgingConfig)
    readonly: ReadOnlyConfig = Field(default_factory=ReadOnlyConfig)
    gc: GCConfig = Field(default_factory=GCConfig)


class RedirectConfig(Section):
    """With a driver that can presign (s3), blob GETs redirect to the store unless disabled."""

    disable: bool = False


class StorageConfig(Section):
    """distribution's `storage` section; exactly one driver, filesystem by default."""

    filesystem: FilesystemConfig = Field(default_factory=FilesystemConfig)
    delete: DeleteConfig = Field(default_factory=DeleteConfig)
    maintenance: MaintenanceConfig = Field(default_factory=MaintenanceConfig)
    cache: dict[str, Any] = Field(default_factory=dict)
    """Accepted so distribution configs load unchanged; Dockyard's metadata lives in its DB."""
    redirect: RedirectConfig = Field(default_factory=RedirectConfig)
    s3: S3Config | None = None

    @model_validator(mode="after")
    def _one_driver(self) -> StorageConfig:
        if self.s3 is not None and "filesystem" in self.model_fields_set:
            raise ValueError("configure one storage driver: filesystem or s3, not both")
        return self
