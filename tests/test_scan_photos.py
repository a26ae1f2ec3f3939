"""Photos: local files read from the pod's uploads folder, remote photos downloaded over HTTPS only
when allowed, each hashed (SHA-256, PDQ) and matched against the lists' pdq and sha256 entries;
the hashes are kept, the images never."""

from __future__ import annotations

import hashlib
import ipaddress
import socket
from pathlib import Path
from typing import Any

import psycopg
import pytest

from podmod import netguard
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
    monkeypatch.setattr(netguard, "EXEMPT", frozenset({ipaddress.ip_address("127.0.0.1")}))
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


def test_remote_photos_on_private_addresses_or_plain_http_are_refused(
    lists, pod, monkeypatch, tmp_path
):
    author = pod.person("inside", "far.example")
    monkeypatch.setenv("PODMOD_SCAN_FETCH_REMOTE_PHOTOS", "true")
    publish(lists, "images", [f"pdq,{'f' * 64},,"])
    settle()
    loopback = photo(pod, author, remote="https://127.0.0.1:6379/x.jpg")
    plain = photo(pod, author, remote="http://far.example/x.jpg")
    local = photo(pod, author, remote=f"file://{tmp_path}/x.jpg")
    (tmp_path / "x.jpg").write_bytes(encoded(picture(81)))
    settle()

    hashes = stored_hashes()
    assert "private network" in hashes[loopback]["error"]
    assert "only https://" in hashes[plain]["error"] and "only https://" in hashes[local]["error"]


def connections(server: LoopbackServer) -> list[object]:
    """Every connection the server accepts, from now on (refused handshakes included)."""
    accepted: list[object] = []
    accept = server.httpd.get_request

    def counted() -> tuple[Any, Any]:
        accepted.append(None)
        return accept()

    server.httpd.get_request = counted  # type: ignore[method-assign]
    return accepted


def test_a_backslash_before_the_at_sign_does_not_smuggle_a_loopback_host(
    lists, pod, tmp_path, monkeypatch
):
    """urllib.parse reads https://127.0.0.1:PORT\\@8.8.8.8/ as host 8.8.8.8, urllib3 as 127.0.0.1:
    the photo is refused before anything is resolved or contacted."""
    served = tmp_path / "served"
    served.mkdir()
    (served / "x.jpg").write_bytes(encoded(picture(61), "JPEG"))
    author = pod.person("smuggler", "far.example")
    monkeypatch.setenv("PODMOD_SCAN_FETCH_REMOTE_PHOTOS", "true")
    publish(lists, "images", [f"pdq,{hash_image(encoded(picture(61))).pdq_hex},,"])
    settle()
    with LoopbackServer(served, tmp_path) as server:
        monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(server.cert_path))
        accepted = connections(server)
        photo_id = photo(pod, author, remote=f"https://127.0.0.1:{server.port}\\@8.8.8.8/x.jpg")
        settle()

    assert accepted == [] and content_signals() == []
    assert "backslash" in stored_hashes()[photo_id]["error"]


EMBEDDED_LOOPBACK = [
    "[64:ff9b::7f00:1]",  # NAT64
    "[64:ff9b:1::7f00:1]",  # local-use NAT64
    "[2002:7f00:1::1]",  # 6to4
    "[::127.0.0.1]",  # IPv4-compatible
    "[::ffff:127.0.0.1]",  # IPv4-mapped
    "[2001:0:4136:e378:8000:63bf:80ff:fffe]",  # Teredo
    "[fec0::1]",  # site-local
    "[ff0e::1]",  # multicast
    "224.0.0.1",  # multicast
]


def test_remote_photos_on_private_addresses_inside_ipv6_forms_are_refused(lists, pod, monkeypatch):
    author = pod.person("tunnel", "far.example")
    monkeypatch.setenv("PODMOD_SCAN_FETCH_REMOTE_PHOTOS", "true")
    publish(lists, "images", [f"pdq,{'f' * 64},,"])
    settle()
    photos = {
        host: photo(pod, author, remote=f"https://{host}/x.jpg") for host in EMBEDDED_LOOPBACK
    }
    settle()

    hashes = stored_hashes()
    errors = {host: hashes[photo_id]["error"] for host, photo_id in photos.items()}
    assert {host: "private network" in error for host, error in errors.items()} == dict.fromkeys(
        EMBEDDED_LOOPBACK, True
    ), errors


def test_a_host_that_resolves_again_to_another_address_is_fetched_from_the_checked_one(
    lists, pod, tmp_path, monkeypatch
):
    """DNS rebinding: the name answers an allowed address once, then an internal one. podmod
    resolves once, checks, and connects to what it checked; the internal server never hears."""
    served, internal, inside_tls = tmp_path / "served", tmp_path / "internal", tmp_path / "tls"
    for folder in (served, internal, inside_tls):
        folder.mkdir()
    (served / "x.jpg").write_bytes(encoded(picture(71), "JPEG"))
    (internal / "x.jpg").write_bytes(encoded(picture(72), "JPEG"))
    author = pod.person("rebinder", "far.example")
    monkeypatch.setenv("PODMOD_SCAN_FETCH_REMOTE_PHOTOS", "true")
    monkeypatch.setattr(netguard, "EXEMPT", frozenset({ipaddress.ip_address("127.0.0.1")}))
    publish(lists, "images", [f"pdq,{'f' * 64},,"])
    settle()
    with LoopbackServer(served, tmp_path) as server:
        inside = LoopbackServer(internal, inside_tls, address="127.0.0.2", port=server.port)
        with inside:
            monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(server.cert_path))
            lookups: list[str] = []
            resolve = socket.getaddrinfo

            def rebinding(host: Any, port: Any, *args: Any, **kwargs: Any) -> Any:
                if host == "localhost":
                    lookups.append(host)
                    host = "127.0.0.1" if len(lookups) == 1 else "127.0.0.2"
                return resolve(host, port, *args, **kwargs)

            monkeypatch.setattr(socket, "getaddrinfo", rebinding)
            to_inside = connections(inside)
            photo_id = photo(pod, author, remote=f"https://localhost:{server.port}/x.jpg")
            settle()

    assert to_inside == [] and lookups == ["localhost"]
    assert (
        stored_hashes()[photo_id] | {"source": "remote", "error": None} == stored_hashes()[photo_id]
    )


def test_a_remote_photo_too_large_names_the_photo_setting(tmp_path, monkeypatch):
    # (not list_sync.max_bytes, which the download shares with lists and which changes nothing)
    from podmod.lists import fetch

    served = tmp_path / "served"
    served.mkdir()
    (served / "big.jpg").write_bytes(b"\xff" * 5_000)
    monkeypatch.setattr(netguard, "EXEMPT", frozenset({ipaddress.ip_address("127.0.0.1")}))
    with LoopbackServer(served, tmp_path) as server:
        monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(server.cert_path))
        with pytest.raises(fetch.FetchError) as refused:
            fetch.download_public(server.url("big.jpg"), max_bytes=1_000, timeout=30)

    assert "more than 1 kB (scan.photo_max_bytes)" in str(refused.value), refused.value
