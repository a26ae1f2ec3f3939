"""Photos: local files read from the pod's uploads folder, remote photos downloaded over HTTPS only
when allowed, each hashed (SHA-256, PDQ) and matched against the lists' pdq and sha256 entries;
the hashes are kept, the images never."""

from __future__ import annotations

import hashlib
from pathlib import Path

import psycopg
import pytest

from podmod import scan
from podmod.config import load_config
from podmod.loopback import LoopbackServer
from podmod.matching.images import hash_image
from tests import test_scan
from tests.test_matching import encoded, picture, small_crop
from tests.test_scan import content_signals, photo, publish, settle

lists = test_scan.lists  # a fixture


@pytest.fixture
def uploads(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    folder = tmp_path / "public" / "uploads" / "images"
    folder.mkdir(parents=True)
    monkeypatch.setenv("PODMOD_SCAN_UPLOADS_DIR", str(folder))
    return folder


def stored_hashes() -> dict[int, dict]:
    with psycopg.connect(load_config().state_database_url) as conn:
        rows = conn.execute(
            "SELECT photo_id, sha256, quality, source, error FROM podmod.photo_hashes"
        ).fetchall()
    return {
        row[0]: {"sha256": row[1], "quality": row[2], "source": row[3], "error": row[4]}
        for row in rows
    }


def test_a_local_photo_near_a_listed_picture_matches_within_the_distance(lists, pod, uploads):
    author = pod.person("uploader")
    listed = hash_image(encoded(picture(11)))
    exact = encoded(picture(12))
    publish(
        lists,
        "images",
        [f"pdq,{listed.pdq_hex},placeholder,", f"sha256,{hashlib.sha256(exact).hexdigest()},,"],
    )
    settle()

    (uploads / "repost.jpg").write_bytes(encoded(small_crop(picture(11)), "JPEG", quality=80))
    (uploads / "exact.png").write_bytes(exact)
    (uploads / "unrelated.png").write_bytes(encoded(picture(13)))
    near = photo(pod, author, local_name="repost.jpg")
    same = photo(pod, author, local_name="exact.png")
    photo(pod, author, local_name="unrelated.png")
    settle()

    by_item = {s["item_id"]: s for s in content_signals()}
    assert set(by_item) == {near, same}
    assert by_item[near]["entry"] == f"pdq:{listed.pdq_hex}"
    assert 0 < by_item[near]["distance"] <= 31 and by_item[near]["item_type"] == "Photo"
    assert by_item[same]["entry"].startswith("sha256:") and by_item[same]["distance"] == 0
    assert {h["source"] for h in stored_hashes().values()} == {"file"}


def test_a_mirrored_repost_matches_through_the_turned_hashes(lists, pod, uploads):
    from PIL import ImageOps

    author = pod.person("mirror", "far.example")
    listed = hash_image(encoded(picture(21)))
    publish(lists, "images", [f"pdq,{listed.pdq_hex},,"])
    settle()
    (uploads / "flipped.jpg").write_bytes(encoded(ImageOps.mirror(picture(21)), "JPEG"))
    photo_id = photo(pod, author, local_name="flipped.jpg")
    settle()

    [signal] = content_signals()
    assert signal["item_id"] == photo_id and signal["orientation"] != "original"


def test_a_new_pdq_entry_matches_photos_hashed_earlier_without_reading_them_again(
    lists, pod, uploads
):
    author = pod.person("earlier", "far.example")
    publish(lists, "images", [f"pdq,{'0' * 64},unrelated,"])
    settle()
    (uploads / "old.png").write_bytes(encoded(picture(31)))
    photo_id = photo(pod, author, local_name="old.png")
    settle()
    assert content_signals() == [] and photo_id in stored_hashes()
    (uploads / "old.png").unlink()  # gone: only the stored hash is left

    listed = hash_image(encoded(picture(31)))
    publish(lists, "images", [f"pdq,{'0' * 64},unrelated,", f"pdq,{listed.pdq_hex},,"])
    settle()

    [signal] = content_signals()
    assert signal["item_id"] == photo_id and signal["version"] == 2


def test_file_names_cannot_leave_the_uploads_folder(lists, pod, uploads, tmp_path):
    author = pod.person("sneaky", "far.example")
    secret = tmp_path / "public" / "uploads" / "secret.png"
    secret.write_bytes(encoded(picture(41)))
    publish(lists, "images", [f"pdq,{hash_image(secret.read_bytes()).pdq_hex},,"])
    settle()
    photo_id = photo(pod, author, local_name="../secret.png")
    settle()

    assert content_signals() == []
    assert "not a photo file name" in stored_hashes()[photo_id]["error"]


def test_what_is_not_an_image_is_recorded_and_not_retried(lists, pod, uploads):
    author = pod.person("broken", "far.example")
    publish(lists, "images", [f"pdq,{'f' * 64},,"])
    settle()
    (uploads / "notes.jpg").write_bytes(b"placeholder text, not a picture")
    photo_id = photo(pod, author, local_name="notes.jpg")
    settle()

    assert "not an image" in stored_hashes()[photo_id]["error"]


def test_remote_photos_are_not_downloaded_unless_switched_on(lists, pod):
    author = pod.person("remote", "far.example")
    publish(lists, "images", [f"pdq,{'f' * 64},,"])
    settle()
    photo(pod, author, remote="https://far.example/uploads/images/x.jpg")
    settle()

    assert stored_hashes() == {}


def test_a_remote_photo_is_downloaded_over_https_hashed_and_matched(
    lists, pod, tmp_path, monkeypatch
):
    served = tmp_path / "served"
    served.mkdir()
    (served / "repost.jpg").write_bytes(encoded(picture(51), "JPEG", quality=75))
    listed = hash_image(encoded(picture(51)))
    author = pod.person("faraway", "far.example")
    monkeypatch.setenv("PODMOD_SCAN_FETCH_REMOTE_PHOTOS", "true")
    monkeypatch.setattr(scan, "_refuse_private", lambda host: None)  # the test server is local
    with LoopbackServer(served, tmp_path) as server:
        monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(server.cert_path))
        publish(lists, "images", [f"pdq,{listed.pdq_hex},,"])
        settle()
        photo_id = photo(pod, author, remote=server.url("repost.jpg"))
        missing = photo(pod, author, remote=server.url("missing.jpg"))
        settle()

    [signal] = content_signals()
    assert signal["item_id"] == photo_id and signal["distance"] <= 31
    hashes = stored_hashes()
    assert hashes[photo_id]["source"] == "remote" and hashes[photo_id]["error"] is None
    assert "404" in hashes[missing]["error"]


def test_remote_photos_on_private_addresses_or_plain_http_are_refused(lists, pod, monkeypatch):
    author = pod.person("inside", "far.example")
    monkeypatch.setenv("PODMOD_SCAN_FETCH_REMOTE_PHOTOS", "true")
    publish(lists, "images", [f"pdq,{'f' * 64},,"])
    settle()
    loopback = photo(pod, author, remote="https://127.0.0.1:6379/x.jpg")
    plain = photo(pod, author, remote="http://far.example/x.jpg")
    settle()

    hashes = stored_hashes()
    assert "private network" in hashes[loopback]["error"]
    assert "only https://" in hashes[plain]["error"]
