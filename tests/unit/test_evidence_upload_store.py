"""The center's upload store: chunks appended at their offset, a resend changes nothing,
the finished file is checked against its SHA-256 before it is served."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from citywatch.center.evidence_upload import (
    HashMismatch,
    OffsetMismatch,
    TooLarge,
    UploadError,
    UploadStore,
)

DATA = bytes(range(256)) * 40
SHA = hashlib.sha256(DATA).hexdigest()


@pytest.fixture
def store(tmp_path: Path) -> UploadStore:
    return UploadStore(tmp_path / "uploads", max_file_bytes=1 << 20)


def test_chunks_resume_at_the_stored_offset_and_complete_under_the_hash(store: UploadStore) -> None:
    """Three chunks make the file; progress tells where to resume; the file lands by hash."""
    assert store.progress(SHA).offset == 0
    assert store.append(SHA, 0, len(DATA), [DATA[:4000]]).offset == 4000
    assert store.progress(SHA) == store.append(SHA, 4000, len(DATA), [])
    assert not store.progress(SHA).complete
    done = store.append(SHA, 4000, len(DATA), [DATA[4000:9000], DATA[9000:]])
    assert done.complete and done.offset == len(DATA)
    assert store.path_of(SHA).read_bytes() == DATA
    assert store.append(SHA, 0, len(DATA), [DATA]).complete  # a resend: already there


def test_a_chunk_at_the_wrong_offset_is_refused_with_the_stored_one(store: UploadStore) -> None:
    """A chunk that skips or repeats bytes is 409 naming where the stored part ends."""
    store.append(SHA, 0, len(DATA), [DATA[:100]])
    with pytest.raises(OffsetMismatch) as refused:
        store.append(SHA, 50, len(DATA), [DATA[50:200]])
    assert refused.value.offset == 100 and refused.value.status_code == 409


def test_bytes_not_matching_the_hash_are_deleted_not_stored(store: UploadStore) -> None:
    """A finished file with other content is 422 and leaves nothing behind to serve."""
    other = b"x" * len(DATA)
    with pytest.raises(HashMismatch):
        store.append(SHA, 0, len(DATA), [other])
    assert store.progress(SHA).offset == 0 and not store.path_of(SHA).exists()


@pytest.mark.parametrize(
    ("length", "chunk"),
    [(2 << 20, b"a"), (10, b"b" * 11)],
)
def test_files_over_the_limit_or_their_length_are_refused(
    store: UploadStore, length: int, chunk: bytes
) -> None:
    """Announcing more than max_file_bytes, or sending past the announced length, is 413."""
    with pytest.raises(TooLarge):
        store.append(SHA, 0, length, [chunk])
    assert store.progress(SHA).offset == 0


def test_a_name_that_is_not_a_sha256_is_refused(store: UploadStore) -> None:
    """Only 64 hex digits name a file (no path can be smuggled in)."""
    with pytest.raises(UploadError):
        store.progress("../../etc/passwd".ljust(64, "a"))
