"""Upload ids: version-4 UUIDs that only the repository they were issued for accepts."""

from __future__ import annotations

import uuid

from dockyard.registry import upload_ids


def test_an_issued_id_is_a_canonical_version_4_uuid() -> None:
    upload_id = upload_ids.issue("team/app")
    parsed = uuid.UUID(upload_id)
    assert str(parsed) == upload_id
    assert parsed.version == 4 and parsed.variant == uuid.RFC_4122


def test_an_id_belongs_to_the_repository_it_was_issued_for_only() -> None:
    issued = {upload_ids.issue("team/app") for _ in range(200)}
    assert len(issued) == 200
    assert all(upload_ids.issued_for(upload_id, "team/app") for upload_id in issued)
    assert not any(upload_ids.issued_for(upload_id, "team/ap") for upload_id in issued)
    assert not any(upload_ids.issued_for(upload_id, "team/app2") for upload_id in issued)


def test_other_texts_are_neither_ids_nor_issued() -> None:
    upload_id = upload_ids.issue("r")
    for text in (upload_id.upper(), upload_id.replace("-", ""), "../etc", "", str(uuid.uuid4())):
        assert not upload_ids.issued_for(text, "r")
    assert upload_ids.is_upload_id(str(uuid.uuid4()))
    assert not upload_ids.is_upload_id(upload_id.upper())
