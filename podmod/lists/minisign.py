"""The minisign signature format in pure Python: shared blocklists are signed and verified with it.

Interoperable with the `minisign` tool (https://jedisct1.github.io/minisign/) in both directions.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import os
import re
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from podmod.errors import PodmodError
from podmod.redact import CONTROL, printable

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

# cryptography (7 MiB of every process that loads it) is imported where a key signs or verifies:
# the reader, the worker and the web app read the configuration's public keys and the signed
# versions' trusted comments, and never verify.

SIG_ALG = b"Ed"  # Ed25519 key; also the legacy signature algorithm (signs the raw data)
HASHED_SIG_ALG = b"ED"  # signature over the BLAKE2b-512 hash of the data (minisign >= 0.10)
KDF_SCRYPT, KDF_NONE, CHK_ALG = b"Sc", b"\0\0", b"B2"
# libsodium's crypto_pwhash_scryptsalsa208sha256_{OPS,MEM}LIMIT_SENSITIVE, which minisign uses.
OPSLIMIT, MEMLIMIT = 33554432, 1073741824
UNTRUSTED, TRUSTED = "untrusted comment: ", "trusted comment: "


class SignatureError(PodmodError):
    """A signature, key or key file is malformed or does not verify."""


class PasswordNeeded(SignatureError):
    """A secret key is encrypted, and no password was given for it."""


class OtherFileSignature(SignatureError):
    """A signature made with the pinned key, its trusted comment intact, but for other bytes than
    the file's: `trusted_comment` is what the key signed with it (so the caller can tell whose
    signature it is, as a server between updates serves one file's signature beside another)."""

    def __init__(self, message: str, trusted_comment: str) -> None:
        super().__init__(message)
        self.trusted_comment = trusted_comment


# A signed time podmod can hold: decimal unix seconds up to the end of the year 9999.
_TIMESTAMP = re.compile(r"[0-9]{1,12}")
LATEST_TIMESTAMP = 253402300799


@dataclass(frozen=True)
class TrustedComment:
    """What a verified trusted comment says. minisign writes `timestamp:<unix>\tfile:<name>`
    (and `\thashed`); other signers write other text, kept as it is, with neither."""

    text: str
    timestamp: int | None = None
    file: str | None = None

    @classmethod
    def parse(cls, text: str) -> TrustedComment:
        """Read `timestamp:` and `file:` from the tab-separated fields (the first of each
        decides); a timestamp that is not decimal seconds is no timestamp. Never raises: it also
        reads the comments stored before verify() refused such a timestamp."""
        text = text.replace("\0", "\ufffd")  # PostgreSQL text holds no NUL
        fields = _fields(text)
        return cls(text, _signed_time(fields.get("timestamp", "")), fields.get("file") or None)

    @property
    def signed_at(self) -> datetime | None:
        return None if self.timestamp is None else datetime.fromtimestamp(self.timestamp, UTC)


def _fields(text: str) -> dict[str, str]:
    """A trusted comment's `key:value` fields among its tab-separated parts, the first of each."""
    fields: dict[str, str] = {}
    for part in text.split("\t"):
        key, colon, value = part.partition(":")
        if colon:
            fields.setdefault(key, value)
    return fields


def _signed_time(value: str) -> int | None:
    """A `timestamp:` field's unix seconds; None for a value that is not a time podmod can hold."""
    timestamp = int(value) if _TIMESTAMP.fullmatch(value) else None
    return None if timestamp is None or timestamp > LATEST_TIMESTAMP else timestamp


def _check_signed_time(trusted_comment: str) -> None:
    """A trusted comment may have no `timestamp:` (other signers write none), but one it has must
    be a time: read as none, it would turn a signature that says when it was made into one that
    cannot be told from an older copy, which a subscriber accepts with a warning."""
    stamp = _fields(trusted_comment).get("timestamp")
    if stamp is None or _signed_time(stamp) is not None:
        return
    shown = printable(stamp) if len(stamp) <= 30 else printable(stamp[:30]) + "…"
    raise SignatureError(
        f"The signature file is malformed (its trusted comment's timestamp {shown!r} is not "
        "decimal unix seconds up to the year 9999); ask the list's maintainers to sign it again."
    )


def check_note(note: str) -> None:
    """A publisher's words for a trusted comment are one field of it: a tab would make them
    fields of their own (a second `file:` or `timestamp:` read by other tools), a line break
    would end the comment, and other control characters would reach subscribers' terminals."""
    if CONTROL.search(note):
        raise SignatureError(
            "A trusted comment cannot hold a tab, a line break or another control character "
            "(minisign separates its fields with tabs); write it as plain text on one line."
        )


def _b64(text: str, length: int, what: str) -> bytes:
    try:
        raw = base64.b64decode(text.strip(), validate=True)
    except (binascii.Error, ValueError):
        raw = b""
    if len(raw) != length:
        raise SignatureError(what)
    return raw


def _key_id_hex(key_id: bytes) -> str:
    """The key id as minisign shows it: a little-endian 64-bit number in upper-case hex."""
    return key_id[::-1].hex().upper()


def _scrypt_params(opslimit: int, memlimit: int) -> tuple[int, int, int]:
    """(N, r, p) exactly as libsodium's pickparams() derives them from opslimit and memlimit."""
    opslimit, r = max(opslimit, 32768), 8
    ops_bound = opslimit < memlimit // 32  # else memory bound: N from memlimit, p from opslimit
    max_n = opslimit // (r * 4) if ops_bound else memlimit // (r * 128)
    n_log2 = next((n for n in range(1, 63) if 1 << n > max_n // 2), 63)
    p = 1 if ops_bound else min((opslimit // 4) // (1 << n_log2), 0x3FFFFFFF) // r
    return 1 << n_log2, r, p


def _public_bytes(seed: bytes) -> bytes:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
    from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

    public = Ed25519PrivateKey.from_private_bytes(seed).public_key()
    return public.public_bytes(Encoding.Raw, PublicFormat.Raw)


def _xor(a: bytes, b: bytes) -> bytes:
    return bytes(x ^ y for x, y in zip(a, b, strict=True))


def _keystream(password: str, salt: bytes, opslimit: int, memlimit: int, length: int) -> bytes:
    n, r, p = _scrypt_params(opslimit, memlimit)
    try:
        return hashlib.scrypt(
            password.encode(),
            salt=salt,
            n=n,
            r=r,
            p=p,
            dklen=length,
            maxmem=min(128 * r * (n + p + 2) + (1 << 20), 2**31 - 1),
        )
    except (ValueError, MemoryError):
        raise SignatureError(
            "Cannot derive the key from the password (the secret key asks for more memory or "
            "unusual parameters); re-encrypt it with `minisign -C`."
        ) from None


@dataclass(frozen=True)
class PublicKey:
    """A minisign public key: 8-byte key id and 32-byte Ed25519 public key."""

    key_id: bytes
    key: bytes

    @classmethod
    def from_string(cls, text: str) -> PublicKey:
        """Parse the base64 line (`RW...`) or the whole two-line .pub file."""
        lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
        if len(lines) == 2 and lines[0].startswith(UNTRUSTED.strip()):
            lines = lines[1:]
        message = (
            "This is not a minisign public key (expected the base64 line of a .pub file, "
            "starting with RW)."
        )
        raw = _b64(lines[0] if len(lines) == 1 else "", 42, message)
        if raw[:2] != SIG_ALG:
            raise SignatureError(message)
        return cls(raw[2:10], raw[10:])

    def to_string(self) -> str:
        """The base64 line, as pinned in podmod's config (`public_key`)."""
        return base64.b64encode(SIG_ALG + self.key_id + self.key).decode()

    def to_file_text(self, comment: str | None = None) -> str:
        """The content of a minisign .pub file."""
        comment = comment or f"minisign public key {_key_id_hex(self.key_id)}"
        return f"{UNTRUSTED}{comment}\n{self.to_string()}\n"


@dataclass(frozen=True)
class SecretKey:
    """A minisign secret key: 8-byte key id and 64-byte Ed25519 secret key (seed + public key)."""

    key_id: bytes
    secret: bytes = field(repr=False)

    @property
    def seed(self) -> bytes:
        """The 32-byte Ed25519 seed (private key)."""
        return self.secret[:32]

    @property
    def public_key(self) -> PublicKey:
        return PublicKey(self.key_id, self.secret[32:])

    @classmethod
    def generate(cls) -> SecretKey:
        """A new random key pair."""
        seed = os.urandom(32)
        return cls(os.urandom(8), seed + _public_bytes(seed))

    def _checksum(self) -> bytes:
        return hashlib.blake2b(SIG_ALG + self.key_id + self.secret, digest_size=32).digest()

    @classmethod
    def from_file_text(cls, text: str, password: str | None = None) -> SecretKey:
        """Load a minisign secret key file, encrypted (password needed) or not (`minisign -W`).

        The password is ignored for an unencrypted key; a wrong one raises SignatureError.
        """
        lines = text.strip().splitlines()
        raw = _b64(
            lines[1] if len(lines) >= 2 else "",
            158,
            "This is not a minisign secret key file (two lines, the second one base64).",
        )
        sig_alg, kdf_alg, chk_alg, salt = raw[:2], raw[2:4], raw[4:6], raw[6:38]
        if sig_alg != SIG_ALG or chk_alg != CHK_ALG or kdf_alg not in (KDF_SCRYPT, KDF_NONE):
            raise SignatureError("The secret key uses an algorithm minisign and podmod don't know.")
        keynum_sk = raw[54:]
        if kdf_alg == KDF_SCRYPT:
            if password is None:
                raise PasswordNeeded("The secret key is encrypted; its password is needed.")
            opslimit = int.from_bytes(raw[38:46], "little")
            memlimit = int.from_bytes(raw[46:54], "little")
            stream = _keystream(password, salt, opslimit, memlimit, len(keynum_sk))
            keynum_sk = _xor(keynum_sk, stream)
        key = cls(keynum_sk[:8], keynum_sk[8:72])
        checksum = keynum_sk[72:]
        # minisign leaves the checksum of unencrypted keys zeroed; check it whenever it is set.
        if (kdf_alg == KDF_SCRYPT or any(checksum)) and checksum != key._checksum():
            if kdf_alg == KDF_SCRYPT:
                raise SignatureError(
                    "Wrong password for the secret key (its checksum does not match)."
                )
            raise SignatureError("The secret key is corrupted (its checksum does not match).")
        if key.secret[32:] != _public_bytes(key.seed):
            raise SignatureError("The secret key is corrupted (its two halves do not match).")
        return key

    def to_file_text(self, password: str | None = None, comment: str | None = None) -> str:
        """A minisign secret key file: scrypt-encrypted when a password is given, else plain."""
        keynum_sk = self.key_id + self.secret + self._checksum()
        if password is None:
            header = SIG_ALG + KDF_NONE + CHK_ALG + bytes(48)
        else:
            salt = os.urandom(32)
            stream = _keystream(password, salt, OPSLIMIT, MEMLIMIT, len(keynum_sk))
            keynum_sk = _xor(keynum_sk, stream)
            limits = OPSLIMIT.to_bytes(8, "little") + MEMLIMIT.to_bytes(8, "little")
            header = SIG_ALG + KDF_SCRYPT + CHK_ALG + salt + limits
        default = "minisign encrypted secret key" if password is not None else "minisign secret key"
        return f"{UNTRUSTED}{comment or default}\n{base64.b64encode(header + keynum_sk).decode()}\n"


def sign(
    data: bytes,
    secret: SecretKey,
    *,
    trusted_comment: str | None = None,
    untrusted_comment: str = "signature from podmod secret key",
    file_name: str | None = None,
    timestamp: int | None = None,
    note: str | None = None,
) -> str:
    """The .minisig text for `data` (prehashed `ED` signature, as minisign >= 0.10 makes). Its
    trusted comment is minisign's, signed now (or at `timestamp`) for `file_name`, with `note` (a
    publisher's words) as a further field after minisign's, so that subscribers still read the
    time and the file; or `trusted_comment` as it is, which replaces all three."""
    if trusted_comment is None:
        named = f"\tfile:{file_name}" if file_name else ""
        signed = int(time.time()) if timestamp is None else timestamp
        if note:
            check_note(note)
        trusted_comment = f"timestamp:{signed}{named}\thashed" + (f"\t{note}" if note else "")
    elif file_name or timestamp is not None or note:
        # (given both, one would be dropped: a comment without the time and the file loses the
        # subscribers' replay and file checks)
        raise ValueError("trusted_comment replaces file_name, timestamp and note: give either.")
    if any(c in trusted_comment + untrusted_comment for c in "\r\n"):
        raise SignatureError("A signature comment must be a single line.")
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    private = Ed25519PrivateKey.from_private_bytes(secret.seed)
    signature = private.sign(hashlib.blake2b(data, digest_size=64).digest())
    global_signature = private.sign(signature + trusted_comment.encode())
    return (
        f"{UNTRUSTED}{untrusted_comment}\n"
        f"{base64.b64encode(HASHED_SIG_ALG + secret.key_id + signature).decode()}\n"
        f"{TRUSTED}{trusted_comment}\n{base64.b64encode(global_signature).decode()}\n"
    )


def verify(data: bytes, signature_text: str, public_key: PublicKey) -> str:
    """Check `data` against its .minisig text and the pinned key; return the trusted comment."""
    lines = [line.removesuffix("\r") for line in signature_text.split("\n")]
    malformed = (
        "The signature file is malformed (expected the four lines of a minisign "
        ".minisig file); ask the list's maintainers to publish it again."
    )
    if len(lines) < 4 or not lines[0].startswith(UNTRUSTED) or not lines[2].startswith(TRUSTED):
        raise SignatureError(malformed)
    raw = _b64(lines[1], 74, malformed)
    global_signature = _b64(lines[3], 64, malformed)
    sig_alg, key_id, signature = raw[:2], raw[2:10], raw[10:]
    if sig_alg not in (SIG_ALG, HASHED_SIG_ALG):
        raise SignatureError(malformed)
    if key_id != public_key.key_id:
        raise SignatureError(
            f"The signature was made with another key (key id {_key_id_hex(key_id)}), not the "
            f"pinned one ({_key_id_hex(public_key.key_id)}); pin a new public key only if the "
            "list's maintainers confirm they changed keys."
        )
    trusted_comment = lines[2].removeprefix(TRUSTED)
    message = hashlib.blake2b(data, digest_size=64).digest() if sig_alg == HASHED_SIG_ALG else data
    mismatch = (
        "The signature does not verify with the pinned public key; the list may have been "
        "tampered with — keep the previous version and ask the list's maintainers."
    )
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

    try:
        key = Ed25519PublicKey.from_public_bytes(public_key.key)
    except ValueError:
        raise SignatureError(mismatch) from None
    comment_verifies = _verifies(key, global_signature, signature + trusted_comment.encode())
    if not _verifies(key, signature, message):
        if comment_verifies:  # (the key's own signature, of other bytes)
            raise OtherFileSignature(mismatch, trusted_comment)
        raise SignatureError(mismatch)
    if not comment_verifies:
        raise SignatureError(
            "The signature's trusted comment does not verify with the pinned public key; the "
            "signature file may have been tampered with — ask the list's maintainers."
        )
    _check_signed_time(trusted_comment)
    return trusted_comment


def _verifies(key: Ed25519PublicKey, signature: bytes, message: bytes) -> bool:
    from cryptography.exceptions import InvalidSignature

    try:
        key.verify(signature, message)
    except InvalidSignature:
        return False
    return True
