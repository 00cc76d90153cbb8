"""Blob names that are symbolic links out of the models folder are never followed: reading
raises UnsafeBlob, the blob counts as missing, and every writer replaces the link itself."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from pollama.errors import UnsafeBlob
from pollama.store.blobs import Blobs

DATA = b"the true bytes of the blob"
DIGEST = "sha256:" + hashlib.sha256(DATA).hexdigest()


@pytest.fixture
def planted(tmp_path: Path) -> tuple[Blobs, Path, Path]:
    blobs = Blobs(tmp_path / "models" / "blobs")
    blobs.root.mkdir(parents=True)
    outside = tmp_path / "elsewhere.txt"
    outside.write_text("not yours")
    link = blobs.root / DIGEST.replace(":", "-")
    link.symlink_to(outside)
    return blobs, link, outside


def test_a_link_out_is_neither_read_nor_counted(planted):
    blobs, _, _ = planted
    assert not blobs.exists(DIGEST)
    with pytest.raises(UnsafeBlob, match=r"symbolic link to .*elsewhere\.txt, outside the models"):
        blobs.read_bytes(DIGEST)
    with pytest.raises(UnsafeBlob):
        blobs.size(DIGEST)


@pytest.mark.parametrize("how", ["writer", "write_bytes", "commit_file"])
def test_writers_replace_the_link_never_its_target(planted, how):
    blobs, link, outside = planted
    if how == "writer":
        with blobs.writer(DIGEST) as w:
            w.write(DATA)
            _, created = w.commit()
    elif how == "write_bytes":
        _, _, created = blobs.write_bytes(DATA, DIGEST)
    else:
        temp = blobs.temp_path()
        temp.write_bytes(DATA)
        _, _, created = blobs.commit_file(temp)
    assert created and not link.is_symlink()
    assert blobs.read_bytes(DIGEST) == DATA
    assert outside.read_text() == "not yours"


def test_remove_takes_the_link_away_and_links_inside_are_followed(planted):
    blobs, link, outside = planted
    blobs.remove(DIGEST)
    assert not link.exists() and not link.is_symlink() and outside.read_text() == "not yours"
    inside = blobs.root.parent / "kept-here"
    inside.write_bytes(DATA)
    link.symlink_to(inside)
    assert blobs.exists(DIGEST) and blobs.read_bytes(DIGEST) == DATA
