"""Moving in from a Go registry that keeps its storage in a bucket: Debian's `docker-registry`
with its s3 driver on the moto S3 server is filled through its API and stopped, and
`--from-distribution s3://BUCKET/PREFIX` migrates the bucket's tree into a Dockyard that then
serves every image byte for byte; a rerun changes nothing."""

from __future__ import annotations

import secrets
from pathlib import Path

import pytest

from tests.backends import S3_KEYS, Services
from tests.server import RunningRegistry
from tests.system.api.client import digest_of
from tests.system.transfer_distribution.test_migrate import (
    GO_DATA,
    Seeded,
    assert_everything_served,
    assert_left_out,
    fresh_dockyard,
    run_migration,
    seed_go_registry,
)

ROOT = "go"
"""The Go registry's rootdirectory in the bucket."""
KEYS = {"AWS_ACCESS_KEY_ID": S3_KEYS["accesskey"],
        "AWS_SECRET_ACCESS_KEY": S3_KEYS["secretkey"]}


@pytest.fixture(scope="module")
def bucket(services: Services) -> str:
    name = f"go-registry-{secrets.token_hex(4)}"
    services.moto.client().create_bucket(Bucket=name)
    return name


@pytest.fixture(scope="module")
def seeded_s3(services: Services, bucket: str, tmp_path_factory: pytest.TempPathFactory
              ) -> Seeded:
    storage: dict[str, object] = {"s3": {
        "region": "us-east-1", "bucket": bucket, "regionendpoint": services.moto.endpoint,
        "accesskey": S3_KEYS["accesskey"], "secretkey": S3_KEYS["secretkey"],
        "rootdirectory": f"/{ROOT}", "secure": False, "v4auth": True,
    }}
    return seed_go_registry(tmp_path_factory.mktemp("go-registry-s3"), storage)


def migrate_s3(dockyard: RunningRegistry, services: Services, location: str, *extra: str
               ) -> tuple[int, str, str]:
    outcome = run_migration(dockyard, location, "--s3-endpoint", services.moto.endpoint,
                            *extra, env=KEYS)
    return outcome.returncode, outcome.stdout, outcome.stderr


def test_the_go_registry_wrote_its_tree_into_the_bucket(services: Services, bucket: str,
                                                        seeded_s3: Seeded) -> None:
    app = seeded_s3.images[("lib/app", "v1")]
    key = f"{ROOT}/{GO_DATA}/repositories/lib/app/_manifests/tags/v1/current/link"
    link = services.moto.client().get_object(Bucket=bucket, Key=key)["Body"].read()
    assert link == app.digest.encode()


def test_migrated_images_are_served_byte_for_byte(services: Services, bucket: str,
                                                  seeded_s3: Seeded, tmp_path: Path) -> None:
    dockyard = fresh_dockyard(tmp_path)
    code, out, err = migrate_s3(dockyard, services, f"s3://{bucket}/{ROOT}")
    assert code == 0, out + err
    assert "migrated 4 repositories, 6 tags, 10 manifests, 17 blobs" in out, out
    assert "0 hard-linked" in out
    dockyard.start()
    try:
        assert_everything_served(dockyard, seeded_s3)
    finally:
        dockyard.stop()

    code, out, err = migrate_s3(dockyard, services, f"s3://{bucket}/{ROOT}/")
    assert code == 0, out + err
    assert "4 repositories, 0 tags, 0 manifests, 0 blobs (0 bytes" in out, out
    assert "0 layer links" in out


def test_a_corrupt_object_is_refused_with_its_address_named(
        services: Services, bucket: str, seeded_s3: Seeded, tmp_path: Path) -> None:
    s3 = services.moto.client()
    copy = "corrupt-copy"
    layer = seeded_s3.images[("nested/deep/tool", "list")].children[0].blobs[1]
    digest = digest_of(layer)
    corrupt_key = f"{copy}/{GO_DATA}/blobs/sha256/{digest[7:9]}/{digest[7:]}/data"
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=f"{ROOT}/"):
        for item in page.get("Contents", []):
            key = copy + item["Key"][len(ROOT):]
            s3.copy_object(Bucket=bucket, Key=key,
                           CopySource={"Bucket": bucket, "Key": item["Key"]})
    damaged = bytearray(layer)
    damaged[10] ^= 0xFF
    s3.put_object(Bucket=bucket, Key=corrupt_key, Body=bytes(damaged))

    dockyard = fresh_dockyard(tmp_path)
    code, out, err = migrate_s3(dockyard, services, f"s3://{bucket}/{copy}")
    assert code == 1, out + err
    assert (f"error: blob nested/deep/tool@{digest}: refused: s3://{bucket}/{corrupt_key} "
            "does not hash") in out, out
    assert_left_out(dockyard, seeded_s3, "nested/deep/tool", digest)


def test_link_is_refused_for_a_bucket(services: Services, bucket: str,
                                      tmp_path: Path) -> None:
    dockyard = fresh_dockyard(tmp_path)
    code, _, err = migrate_s3(dockyard, services, f"s3://{bucket}/{ROOT}", "--link")
    assert code == 2
    assert f"--link needs the Go registry's tree on this filesystem; blobs in " \
           f"s3://{bucket}/{ROOT} are copied (leave --link out)" in err
    assert not (dockyard.root / "blobs" / "sha256").exists()


@pytest.mark.parametrize(("location", "message"), [
    ("s3://{bucket}/elsewhere", "s3://{bucket}/elsewhere/ holds no docker/registry/v2: give "
                                "the Go registry's storage rootdirectory"),
    ("s3://no-such-bucket-here/go", "bucket 'no-such-bucket-here' does not exist at "),
    ("s3:///go", "s3:///go: give the bucket as s3://BUCKET/PREFIX"),
])
def test_a_bucket_without_the_go_layout_is_refused(services: Services, bucket: str,
                                                   tmp_path: Path, location: str,
                                                   message: str) -> None:
    dockyard = fresh_dockyard(tmp_path)
    code, out, err = migrate_s3(dockyard, services, location.format(bucket=bucket))
    assert code == 2, out + err
    assert message.format(bucket=bucket) in err, err
    assert "Traceback" not in err


def test_s3_options_need_an_s3_source(tmp_path: Path) -> None:
    dockyard = fresh_dockyard(tmp_path)
    outcome = run_migration(dockyard, tmp_path, "--s3-region", "eu-west-1")
    assert outcome.returncode == 2
    assert "--s3-endpoint and --s3-region go with an s3:// source" in outcome.stderr
