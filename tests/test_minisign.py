"""The pure-Python minisign format: sign/verify, key files, and interop with the minisign CLI."""

from __future__ import annotations

import base64
import hashlib
import shutil
import subprocess
import time
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from podmod.errors import PodmodError
from podmod.lists import minisign
from podmod.lists.minisign import (
    OtherFileSignature,
    PublicKey,
    SecretKey,
    SignatureError,
    TrustedComment,
    sign,
    verify,
)

DATA = b"kind,value,label,comment\naccount,spam@pod.example,spam,\n"
PASSWORD = "correct horse battery staple"

requires_cli = pytest.mark.skipif(
    shutil.which("minisign") is None,
    reason="the minisign CLI is not on PATH (apt-get install -y minisign)",
)


def cli(*args: str | Path, password: str | None = None) -> subprocess.CompletedProcess[str]:
    """Run minisign; a password goes to stdin (minisign reads it there when stdin is no tty)."""
    stdin = None if password is None else f"{password}\n{password}\n"
    result = subprocess.run(
        ["minisign", *map(str, args)], input=stdin, capture_output=True, text=True, timeout=120
    )
    return result


def cli_ok(*args: str | Path, password: str | None = None) -> str:
    result = cli(*args, password=password)
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout


def write_list(directory: Path) -> Path:
    path = directory / "list.csv"
    path.write_bytes(DATA)
    return path


# --- pure Python ----------------------------------------------------------------------------


def test_round_trip_returns_the_trusted_comment() -> None:
    secret = SecretKey.generate()
    signature = sign(DATA, secret, file_name="list.csv")
    lines = signature.splitlines()
    assert lines[0] == "untrusted comment: signature from podmod secret key"
    assert base64.b64decode(lines[1])[:2] == b"ED"
    comment = verify(DATA, signature, secret.public_key)
    assert comment.startswith("timestamp:")
    assert comment.endswith("\tfile:list.csv\thashed")
    assert verify(DATA, sign(DATA, secret, trusted_comment="v42"), secret.public_key) == "v42"


def test_signature_error_is_a_podmod_error() -> None:
    assert issubclass(SignatureError, PodmodError)


def test_tampered_data_is_refused() -> None:
    secret = SecretKey.generate()
    signature = sign(DATA, secret)
    with pytest.raises(SignatureError, match="does not verify with the pinned public key"):
        verify(DATA + b"account,friend@pod.example,spam,\n", signature, secret.public_key)


def test_the_keys_own_signature_of_other_bytes_says_what_the_key_signed_with_it() -> None:
    # (so a sync can tell the signature of the version before, served beside a new file)
    secret = SecretKey.generate()
    signature = sign(DATA, secret, trusted_comment="timestamp:7\tfile:list.csv\thashed")
    with pytest.raises(OtherFileSignature, match="does not verify") as caught:
        verify(DATA + b"account,friend@pod.example,spam,\n", signature, secret.public_key)
    assert caught.value.trusted_comment == "timestamp:7\tfile:list.csv\thashed"
    forged = signature.replace("timestamp:7\t", "timestamp:8\t")
    with pytest.raises(SignatureError, match="does not verify") as caught:
        verify(DATA + b"x", forged, secret.public_key)
    assert not isinstance(caught.value, OtherFileSignature)


def test_another_key_is_refused_naming_both_key_ids() -> None:
    signer, pinned = SecretKey.generate(), SecretKey.generate()
    with pytest.raises(SignatureError, match="another key") as caught:
        verify(DATA, sign(DATA, signer), pinned.public_key)
    assert signer.key_id[::-1].hex().upper() in str(caught.value)
    assert pinned.key_id[::-1].hex().upper() in str(caught.value)


def test_same_key_id_but_other_key_is_refused() -> None:
    secret, other = SecretKey.generate(), SecretKey.generate()
    impostor = PublicKey(secret.key_id, other.public_key.key)
    with pytest.raises(SignatureError, match="does not verify"):
        verify(DATA, sign(DATA, secret), impostor)


def test_tampered_trusted_comment_is_refused() -> None:
    secret = SecretKey.generate()
    signature = sign(DATA, secret, trusted_comment="timestamp:1\tfile:list.csv\thashed")
    forged = signature.replace("timestamp:1\t", "timestamp:2\t")
    with pytest.raises(SignatureError, match="trusted comment does not verify"):
        verify(DATA, forged, secret.public_key)


def test_untrusted_comment_is_not_covered() -> None:
    secret = SecretKey.generate()
    signature = sign(DATA, secret, trusted_comment="ok").replace("from podmod", "from anyone")
    assert verify(DATA, signature.replace("\n", "\r\n"), secret.public_key) == "ok"


def _malformed(secret: SecretKey) -> list[str]:
    good = sign(DATA, secret).splitlines()
    raw = base64.b64decode(good[1])
    return [
        "",
        "not a signature",
        "\n".join(good[:3]),
        "\n".join([good[0], "!!!", *good[2:]]),
        "\n".join([good[0], good[1][:-8], *good[2:]]),
        "\n".join([good[0], base64.b64encode(b"Xx" + raw[2:]).decode(), *good[2:]]),
        "\n".join([*good[:3], "AAAA"]),
        "\n".join([good[0], good[1], "comment: no prefix", good[3]]),
    ]


@pytest.mark.parametrize("index", range(8))
def test_malformed_signature_is_refused(index: int) -> None:
    secret = SecretKey.generate()
    with pytest.raises(SignatureError, match="malformed"):
        verify(DATA, _malformed(secret)[index], secret.public_key)


def test_legacy_signature_verifies() -> None:
    secret = SecretKey.generate()
    private = Ed25519PrivateKey.from_private_bytes(secret.seed)
    signature = private.sign(DATA)  # legacy "Ed": over the raw data, not its BLAKE2b hash
    comment = "timestamp:1700000000\tfile:list.csv"
    text = (
        "untrusted comment: legacy\n"
        f"{base64.b64encode(b'Ed' + secret.key_id + signature).decode()}\n"
        f"trusted comment: {comment}\n"
        f"{base64.b64encode(private.sign(signature + comment.encode())).decode()}\n"
    )
    assert verify(DATA, text, secret.public_key) == comment
    with pytest.raises(SignatureError, match="does not verify"):
        verify(DATA + b"x", text, secret.public_key)
    prehashed_as_legacy = text.replace(
        text.splitlines()[1],
        base64.b64encode(b"ED" + secret.key_id + signature).decode(),
    )
    with pytest.raises(SignatureError, match="does not verify"):
        verify(DATA, prehashed_as_legacy, secret.public_key)


def test_the_trusted_comment_minisign_writes_gives_the_signed_time_and_file() -> None:
    comment = TrustedComment.parse("timestamp:1700000000\tfile:core list.csv\thashed")
    assert (comment.timestamp, comment.file) == (1700000000, "core list.csv")
    assert comment.signed_at is not None and comment.signed_at.isoformat() == (
        "2023-11-14T22:13:20+00:00"
    )
    legacy = TrustedComment.parse("timestamp:1700000000\tfile:core.csv")  # minisign < 0.10
    assert (legacy.timestamp, legacy.file) == (1700000000, "core.csv")


@pytest.mark.parametrize(
    "text",
    [
        "",
        "v42",
        "signed on 2024-05-01 by the core team",
        "timestamp:",
        "timestamp:soon",
        "timestamp:-5",
        "timestamp:1e9",
        "timestamp: 1700000000",
        "timestamp:" + "9" * 5000,
        "timestamp:99999999999999999999",  # after the year 9999
        "at timestamp:1700000000",
        "timestamp:\u0661\u0667",  # digits, but not ASCII ones
        "file:",
        "\t" * 1000 + ":",
    ],
)
def test_any_other_trusted_comment_is_kept_as_text_without_a_time_or_file(text: str) -> None:
    comment = TrustedComment.parse(text)
    assert comment.timestamp is None and comment.signed_at is None and comment.file is None
    assert comment.text == text


def test_a_time_or_file_beside_other_text_is_still_read() -> None:
    comment = TrustedComment.parse("release 42\ttimestamp:1700000000\tnote:x:y")
    assert (comment.timestamp, comment.file) == (1700000000, None)
    assert TrustedComment.parse("file:core.csv\tv42").file == "core.csv"


def test_an_odd_file_name_is_kept_to_be_compared_never_dropped() -> None:
    """A name that cannot be the list's (a path, 5,000 characters) still binds the signature:
    dropping it would make the signature look unbound."""
    assert TrustedComment.parse("file:lists/core.csv").file == "lists/core.csv"
    assert TrustedComment.parse("file:" + "x" * 5000).file == "x" * 5000
    odd = TrustedComment.parse("timestamp:\x00\tfile:\x00")
    assert odd.file == "\ufffd" and odd.timestamp is None and "\x00" not in odd.text


def test_comments_must_be_single_lines() -> None:
    with pytest.raises(SignatureError, match="single line"):
        sign(DATA, SecretKey.generate(), trusted_comment="a\nb")


@pytest.mark.parametrize(
    "stamp", ["253402300800", " 123", "12a", "", "-5", "1e9", "\u0661\u0667", "9" * 5000]
)
def test_a_signed_timestamp_that_is_not_a_time_is_refused_as_malformed(stamp: str) -> None:
    """Read as no timestamp, it would pass as a signature without one (applied with a warning):
    a replayed older file could not be told from a new one."""
    secret = SecretKey.generate()
    signature = sign(DATA, secret, trusted_comment=f"timestamp:{stamp}\tfile:list.csv\thashed")

    with pytest.raises(SignatureError) as caught:
        verify(DATA, signature, secret.public_key)

    assert str(caught.value).startswith(
        "The signature file is malformed (its trusted comment's timestamp "
    )
    assert str(caught.value).endswith(
        " is not decimal unix seconds up to the year 9999); ask the list's maintainers to sign it"
        " again."
    )


def test_a_trusted_comment_without_a_timestamp_or_with_one_in_range_still_verifies() -> None:
    secret = SecretKey.generate()
    for comment in ("v42", "timestamp:253402300799\tfile:list.csv", "at timestamp:soon"):
        assert verify(DATA, sign(DATA, secret, trusted_comment=comment), secret.public_key) == (
            comment
        )
    # (the first timestamp decides, as TrustedComment.parse reads it)
    later = "timestamp:1700000000\tfile:list.csv\thashed\ttimestamp:soon"
    assert verify(DATA, sign(DATA, secret, trusted_comment=later), secret.public_key) == later


def test_a_note_follows_minisigns_time_and_file_never_replaces_them() -> None:
    secret = SecretKey.generate()
    signature = sign(DATA, secret, file_name="list.csv", timestamp=1700000000, note="weekly list")

    comment = TrustedComment.parse(verify(DATA, signature, secret.public_key))

    assert comment.text == "timestamp:1700000000\tfile:list.csv\thashed\tweekly list"
    assert (comment.timestamp, comment.file) == (1700000000, "list.csv")
    for note in ("a\tfile:other.csv", "a\nb", "a\x1b[31m", "a\u202eb"):
        with pytest.raises(SignatureError, match="cannot hold a tab, a line break"):
            sign(DATA, secret, file_name="list.csv", note=note)
    with pytest.raises(ValueError, match="replaces file_name, timestamp and note"):
        sign(DATA, secret, trusted_comment="weekly list", file_name="list.csv")


def test_public_key_forms() -> None:
    public = SecretKey.generate().public_key
    line = public.to_string()
    assert line.startswith("RW") and len(line) == 56
    file_text = public.to_file_text()
    assert file_text.splitlines()[0].startswith("untrusted comment: minisign public key ")
    assert PublicKey.from_string(line) == public
    assert PublicKey.from_string(f"  {line}\n") == public
    assert PublicKey.from_string(file_text) == public
    assert PublicKey.from_string(public.to_file_text("my list")) == public
    known = PublicKey.from_string("RWQf6LRCGA9i53mlYecO4IzT51TGPpvWucNSCh1CBM0QTaLn73Y7GFO3")
    assert known.key_id[::-1].hex().upper() == "E7620F1842B4E81F"


@pytest.mark.parametrize(
    "text",
    [
        "",
        "RWQ",
        "not base64 at all",
        base64.b64encode(b"Xy" + bytes(40)).decode(),
        base64.b64encode(b"Ed" + bytes(41)).decode(),
        "untrusted comment: x\nRWQf6LRCGA9i53mlYecO4IzT51TGPpvWucNSCh1CBM0QTaLn73Y7GFO3\nextra",
    ],
)
def test_not_a_public_key(text: str) -> None:
    with pytest.raises(SignatureError, match="not a minisign public key"):
        PublicKey.from_string(text)


def test_unencrypted_secret_key_file_round_trip() -> None:
    secret = SecretKey.generate()
    text = secret.to_file_text()
    assert text.startswith("untrusted comment: ")
    assert base64.b64decode(text.splitlines()[1])[2:4] == b"\0\0"
    assert SecretKey.from_file_text(text) == secret
    assert SecretKey.from_file_text(text, "ignored for unencrypted keys") == secret
    assert "secret=" not in repr(secret)


def test_corrupted_secret_key_is_refused() -> None:
    raw = bytearray(base64.b64decode(SecretKey.generate().to_file_text().splitlines()[1]))
    raw[70] ^= 1  # a byte of the seed
    with pytest.raises(SignatureError, match="corrupted"):
        SecretKey.from_file_text("untrusted comment: x\n" + base64.b64encode(raw).decode())
    with pytest.raises(SignatureError, match="not a minisign secret key"):
        SecretKey.from_file_text("untrusted comment: x\nRWQ=")


@pytest.fixture
def cheap_kdf(monkeypatch: pytest.MonkeyPatch) -> None:
    """Small scrypt limits keep pure-Python encryption tests fast (CLI tests use real ones)."""
    monkeypatch.setattr(minisign, "OPSLIMIT", 524288)
    monkeypatch.setattr(minisign, "MEMLIMIT", 16777216)


@pytest.mark.usefixtures("cheap_kdf")
def test_encrypted_secret_key_file_round_trip() -> None:
    secret = SecretKey.generate()
    text = secret.to_file_text(PASSWORD)
    assert base64.b64decode(text.splitlines()[1])[:6] == b"EdScB2"
    assert SecretKey.from_file_text(text, PASSWORD) == secret
    with pytest.raises(SignatureError, match="Wrong password"):
        SecretKey.from_file_text(text, "wrong")
    with pytest.raises(SignatureError, match="password is needed"):
        SecretKey.from_file_text(text)


@pytest.mark.parametrize(
    ("opslimit", "memlimit", "expected"),
    [
        (33554432, 1073741824, (1 << 20, 8, 1)),  # minisign's default (SENSITIVE)
        (524288, 16777216, (1 << 14, 8, 1)),  # INTERACTIVE
        (32768, 16777216, (1 << 10, 8, 1)),  # opslimit < memlimit / 32: p = 1, N from opslimit
        (1000, 16777216, (1 << 10, 8, 1)),  # opslimit is raised to 32768 first
        (1 << 22, 1 << 20, (1 << 10, 8, 128)),  # N from memlimit, p from what is left
    ],
)
def test_scrypt_params_follow_libsodium(
    opslimit: int, memlimit: int, expected: tuple[int, int, int]
) -> None:
    assert minisign._scrypt_params(opslimit, memlimit) == expected


# --- interop with the minisign CLI ----------------------------------------------------------


@requires_cli
def test_cli_signatures_verify_in_python(tmp_path: Path) -> None:
    cli_ok("-G", "-W", "-p", tmp_path / "cli.pub", "-s", tmp_path / "cli.key")
    path = write_list(tmp_path)
    public = PublicKey.from_string((tmp_path / "cli.pub").read_text())
    bare = PublicKey.from_string((tmp_path / "cli.pub").read_text().splitlines()[1])
    assert public == bare

    cli_ok("-S", "-s", tmp_path / "cli.key", "-m", path, "-t", "list v1")
    prehashed = (tmp_path / "list.csv.minisig").read_text()
    assert base64.b64decode(prehashed.splitlines()[1])[:2] == b"ED"
    assert verify(DATA, prehashed, public) == "list v1"

    cli_ok("-S", "-l", "-s", tmp_path / "cli.key", "-m", path, "-x", tmp_path / "legacy.minisig")
    legacy = (tmp_path / "legacy.minisig").read_text()
    assert base64.b64decode(legacy.splitlines()[1])[:2] == b"Ed"
    assert verify(DATA, legacy, public).endswith("\tfile:list.csv")

    with pytest.raises(SignatureError, match="does not verify"):
        verify(DATA + b"\n", prehashed, public)


@requires_cli
def test_cli_secret_key_signs_in_python(tmp_path: Path) -> None:
    cli_ok("-G", "-W", "-p", tmp_path / "cli.pub", "-s", tmp_path / "cli.key")
    secret = SecretKey.from_file_text((tmp_path / "cli.key").read_text())
    assert secret.public_key == PublicKey.from_string((tmp_path / "cli.pub").read_text())
    path = write_list(tmp_path)
    (tmp_path / "list.csv.minisig").write_text(sign(DATA, secret, file_name="list.csv"))
    out = cli_ok("-V", "-p", tmp_path / "cli.pub", "-m", path)
    assert "\tfile:list.csv\thashed" in out
    path.write_bytes(DATA + b"account,friend@pod.example,spam,\n")
    assert cli("-V", "-p", tmp_path / "cli.pub", "-m", path).returncode != 0


@requires_cli
def test_python_key_pair_works_with_cli(tmp_path: Path) -> None:
    secret = SecretKey.generate()
    (tmp_path / "py.key").write_text(secret.to_file_text())
    (tmp_path / "py.pub").write_text(secret.public_key.to_file_text())
    path = write_list(tmp_path)

    cli_ok("-S", "-s", tmp_path / "py.key", "-m", path, "-t", "from the cli")
    assert verify(DATA, (tmp_path / "list.csv.minisig").read_text(), secret.public_key) == (
        "from the cli"
    )

    (tmp_path / "list.csv.minisig").write_text(sign(DATA, secret, trusted_comment="from python"))
    assert "from python" in cli_ok("-V", "-p", tmp_path / "py.pub", "-m", path)
    assert "from python" in cli_ok("-V", "-P", secret.public_key.to_string(), "-m", path)

    cli_ok("-R", "-s", tmp_path / "py.key", "-p", tmp_path / "recreated.pub")
    recreated = PublicKey.from_string((tmp_path / "recreated.pub").read_text())
    assert recreated == secret.public_key


@requires_cli
def test_the_cli_signs_with_its_time_and_the_files_name(tmp_path: Path) -> None:
    cli_ok("-G", "-W", "-p", tmp_path / "cli.pub", "-s", tmp_path / "cli.key")
    path = write_list(tmp_path)
    before = int(time.time())
    cli_ok("-S", "-s", tmp_path / "cli.key", "-m", path)
    public = PublicKey.from_string((tmp_path / "cli.pub").read_text())

    comment = TrustedComment.parse(
        verify(DATA, (tmp_path / "list.csv.minisig").read_text(), public)
    )

    assert comment.file == "list.csv"
    assert comment.timestamp is not None and before <= comment.timestamp <= time.time()


@requires_cli
def test_cli_encrypted_key_loads_with_its_password(tmp_path: Path) -> None:
    cli_ok("-G", "-p", tmp_path / "enc.pub", "-s", tmp_path / "enc.key", password=PASSWORD)
    text = (tmp_path / "enc.key").read_text()
    assert base64.b64decode(text.splitlines()[1])[:6] == b"EdScB2"

    secret = SecretKey.from_file_text(text, PASSWORD)
    assert secret.public_key == PublicKey.from_string((tmp_path / "enc.pub").read_text())
    path = write_list(tmp_path)
    (tmp_path / "list.csv.minisig").write_text(sign(DATA, secret, trusted_comment="encrypted"))
    assert "encrypted" in cli_ok("-V", "-p", tmp_path / "enc.pub", "-m", path)

    with pytest.raises(SignatureError, match="Wrong password"):
        SecretKey.from_file_text(text, PASSWORD + "!")


@requires_cli
@pytest.mark.parametrize(
    ("opslimit", "memlimit"),
    [
        (33554432, 1073741824),  # minisign's own default
        (32768, 16777216),  # libsodium branch opslimit < memlimit / 32
        (1 << 22, 1 << 20),  # the other branch, with p = 128
    ],
)
def test_python_encrypted_key_opens_in_cli(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, opslimit: int, memlimit: int
) -> None:
    """minisign derives scrypt's N, r, p from the limits stored in the file: proof of pickparams."""
    monkeypatch.setattr(minisign, "OPSLIMIT", opslimit)
    monkeypatch.setattr(minisign, "MEMLIMIT", memlimit)
    secret = SecretKey.generate()
    (tmp_path / "py.key").write_text(secret.to_file_text(PASSWORD))
    path = write_list(tmp_path)

    cli_ok("-S", "-s", tmp_path / "py.key", "-m", path, "-t", "opened", password=PASSWORD)
    assert verify(DATA, (tmp_path / "list.csv.minisig").read_text(), secret.public_key) == "opened"
    if opslimit < 33554432:  # the wrong-password check costs seconds with the default limits
        wrong = cli("-S", "-s", tmp_path / "py.key", "-m", path, password="wrong")
        assert wrong.returncode != 0 and "Wrong password" in wrong.stdout + wrong.stderr


def test_blake2b_prehash_is_what_is_signed() -> None:
    """The `ED` signature is Ed25519 over BLAKE2b-512(data), checkable with cryptography alone."""
    secret = SecretKey.generate()
    raw = base64.b64decode(sign(DATA, secret).splitlines()[1])
    public = Ed25519PrivateKey.from_private_bytes(secret.seed).public_key()
    public.verify(raw[10:], hashlib.blake2b(DATA, digest_size=64).digest())
