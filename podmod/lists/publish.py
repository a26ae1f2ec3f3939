"""`podmod lists publish` and `keygen`: the other side of a subscription. Build a list file from a
CSV (of any shape podmod reads), from podmod's own lock decisions or from this pod's own list,
check it with the same parser subscribers use, write it in podmod's format or in Mastodon's
domain-block CSV (so Mastodon neighbours can import it), and sign it with a minisign secret key,
so publish → sync → match runs with podmod alone.
"""

from __future__ import annotations

import csv
import errno
import io
import os
import secrets
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from pathlib import Path

import psycopg

from podmod.errors import PodmodError
from podmod.lists import local, minisign
from podmod.lists.parse import (
    _LABEL,
    EXACT_HOST,
    MAX_LABEL,
    Entry,
    ParsedList,
    _check_label,
    csv_safe,
    parse_list,
)

HEADER = ("kind", "value", "label", "comment")
# Mastodon's export, as its admin import reads it (Mastodon 4.1+).
MASTODON_HEADER = (
    "#domain",
    "#severity",
    "#reject_media",
    "#reject_reports",
    "#public_comment",
    "#obfuscate",
)
# Mastodon's admin import (Admin::Import::ROWS_PROCESSING_LIMIT) refuses a whole domain-block CSV
# of more rows than this; importers through its API (FediBlockHole) take any number.
MASTODON_IMPORT_ROWS = 20_000

# Accounts whose latest lock decision is a lock: still locked by this pod's moderators or policies.
LOCKED_ACCOUNTS_SQL = """
SELECT account, created_at FROM (
    SELECT DISTINCT ON (person_id) person_id, account, action, created_at
    FROM podmod.decisions WHERE action IN ('lock', 'unlock') AND account IS NOT NULL
    ORDER BY person_id, id DESC
) latest WHERE action = 'lock' ORDER BY account
"""


@dataclass
class Rendered:
    """A list file's bytes, and what of the entries it holds: `written` rows; `left_out` entries
    it cannot hold; `widened` entries for one host alone (a Pleroma, Akkoma or Friendica server's
    plain domain) written as their domain, which subscribers apply to its subdomains too, as
    neither format can say one host alone (one whose domain is an entry as well is that row)."""

    body: bytes
    written: int = 0
    left_out: int = 0
    widened: int = 0
    silenced: int = 0  # silence entries written in podmod's format, which has no severity


def _rows(
    parsed: ParsedList, rendered: Rendered, holds: Callable[[Entry], bool]
) -> Iterator[Entry]:
    """The entries a format holds (`holds`), each once, one for a host alone as its domain; the
    others counted in `rendered`."""
    domains = {entry.value for entry in parsed.entries if entry.kind == "pod" and holds(entry)}
    for entry in parsed.entries:
        if not holds(entry):
            rendered.left_out += 1
        elif entry.kind == "pod" and entry.value.startswith(EXACT_HOST):
            rendered.widened += 1
            domain = entry.value.removeprefix(EXACT_HOST)
            if domain not in domains:
                domains.add(domain)
                rendered.written += 1
                yield replace(entry, value=domain)
        else:
            rendered.written += 1
            yield entry


def render(parsed: ParsedList) -> Rendered:
    """The canonical list file: the header, then one row per entry. It cannot hold pods known
    only by a digest, nor noop entries: podmod's format has no column for either, and a noop
    entry written as a plain one would flag."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(HEADER)
    rendered = Rendered(b"")
    for entry in _rows(parsed, rendered, lambda e: not e.published and e.severity != "noop"):
        rendered.silenced += entry.severity == "silence"
        label = csv_safe(_label_for_podmod(entry.label))
        writer.writerow((entry.kind, entry.value, label, csv_safe(entry.comment)))
    rendered.body = out.getvalue().encode("utf-8")
    return rendered


def _label_for_podmod(label: str) -> str:
    """A label that podmod's format holds: one taken from a Mastodon comment may carry characters
    podmod's labels refuse (`no (really)!`); those become spaces, so the file reads back. A comma
    between two labels (`spam, scam`, as a moderator types them) becomes podmod's `;`: they stay
    two labels, not the one `spam scam`."""
    if _check_label(label) is None:
        return label
    label = label.replace(",", ";")
    kept = "".join(char if _LABEL.fullmatch(char) else " " for char in label)
    return " ".join(kept.split())[:MAX_LABEL].strip()


def render_mastodon(parsed: ParsedList) -> Rendered:
    """Mastodon's domain-block CSV of the `pod` entries (severity suspend unless the entry says
    silence or noop; the label, else the comment, as public comment). It cannot hold accounts,
    content, pods known only by a digest, nor ports: Mastodon blocks whole domains."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(MASTODON_HEADER)
    rendered = Rendered(b"")
    for entry in _rows(
        parsed, rendered, lambda e: e.kind == "pod" and not e.published and ":" not in e.value
    ):
        comment = csv_safe(entry.label or entry.comment)
        writer.writerow(
            (entry.value, entry.severity or "suspend", "false", "false", comment, "false")
        )
    rendered.body = out.getvalue().encode("utf-8")
    return rendered


def from_csv(path: Path, *, skip_invalid: bool = False) -> ParsedList:
    """Entries from a list file of any shape podmod reads, validated as subscribers will."""
    try:
        data = path.read_bytes()
    except OSError as error:
        raise PodmodError(f"Cannot read {path}: {error.strerror}.") from None
    return parse_list(data, skip_invalid=skip_invalid, skipping="give --skip-invalid")


def from_decisions(state: psycopg.Connection, *, label: str) -> ParsedList:
    """Entries for every account this pod's moderators (or policies) locked and still lock."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(HEADER)
    for row in state.execute(LOCKED_ACCOUNTS_SQL):
        writer.writerow(("account", row["account"], label, f"locked {row['created_at']:%Y-%m-%d}"))
    return parse_list(out.getvalue().encode("utf-8"))


def from_pod_list(state: psycopg.Connection, *, with_reasons: bool = False) -> ParsedList:
    """The entries in force of this pod's own list, each with its label; with `with_reasons`
    each with the reason its moderator gave too (written for this pod's moderators, not for
    the world: published only when asked)."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(HEADER)
    for row in reversed(local.entries(state)):  # (in the order they were added)
        reason = row["comment"] if with_reasons else ""
        writer.writerow((row["kind"], row["value"], _label_for_podmod(row["label"] or ""), reason))
    return parse_list(out.getvalue().encode("utf-8"))


def load_secret_key(path: Path, password_env: str | None) -> minisign.SecretKey:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as error:
        raise PodmodError(f"Cannot read the secret key {path}: {error.strerror}.") from None
    try:
        return minisign.SecretKey.from_file_text(text, password_from(password_env))
    except minisign.PasswordNeeded:
        raise minisign.PasswordNeeded(
            f"The secret key {path} is encrypted: give --password-env VAR, VAR an environment"
            " variable holding its password."
        ) from None


def password_from(password_env: str | None) -> str | None:
    """The key's password, from the environment variable `password_env` (None: none asked for).
    A variable that is not set is refused, not read as no password: keygen would write the
    secret key unencrypted."""
    if not password_env:
        return None
    password = os.environ.get(password_env)
    if password is None:
        raise PodmodError(
            f"The environment variable {password_env} (the key's password) is not set."
        )
    return password


@dataclass
class Published:
    body: Path
    signature: Path
    entries: int  # written
    left_out: int = 0  # entries the format cannot hold
    why: str = ""
    widened: int = 0  # entries for one host alone written as their domain (Rendered)
    output_format: str = "podmod"
    silenced: int = 0  # (Rendered)

    def warning(self) -> str | None:
        """What the file's subscribers cannot do with it, for the publisher to hear now: a
        Mastodon file longer than Mastodon's own admin import takes; silences in podmod's
        format, which subscribers read as suspensions."""
        if self.output_format == "mastodon" and self.entries > MASTODON_IMPORT_ROWS:
            return (
                f"Mastodon's admin import refuses a file of more than {MASTODON_IMPORT_ROWS:,}"
                f" rows and this one has {self.entries:,}: Mastodon admins can import it only in"
                " parts, or through the API with a tool such as FediBlockHole."
            )
        if self.silenced:
            count = f"{self.silenced:,} silence {'entry' if self.silenced == 1 else 'entries'}"
            return (
                f"{count} written without their severity, which podmod's format cannot hold:"
                " subscribers weigh them as suspensions; publish with --format mastodon, or"
                ' the silences as a file of their own for subscribers to set severity = "silence".'
            )
        return None


def publish(
    parsed: ParsedList,
    output: Path,
    secret: minisign.SecretKey,
    *,
    trusted_comment: str | None = None,
    output_format: str = "podmod",
) -> Published:
    """Write the list file (`podmod` or `mastodon` format) and its detached signature
    `<output>.minisig`, whose trusted comment is minisign's (the time and the file's name, which
    subscribers check) followed by `trusted_comment`, the publisher's words."""
    if output_format == "mastodon":
        rendered = render_mastodon(parsed)
        why = "Mastodon's format holds whole domains only: no accounts, content or ports"
    else:
        rendered = render(parsed)
        why = "noop entries and obfuscated domains known only by their digest"
    body = rendered.body
    signature_path = output.with_name(output.name + ".minisig")
    signature = minisign.sign(
        body,
        secret,
        note=trusted_comment,
        file_name=output.name,
        timestamp=_next_timestamp(signature_path),
    )
    _write_together({output: body, signature_path: signature.encode("utf-8")})
    return Published(
        output,
        signature_path,
        rendered.written,
        rendered.left_out,
        why,
        rendered.widened,
        output_format,
        rendered.silenced,
    )


def _write_together(files: dict[Path, bytes]) -> None:
    """Write each file beside its place, then move them into place: a write that fails (no such
    directory, no permission, a full disk) leaves no half-written file, nor a new list file
    beside the signature of the one before."""
    written: dict[Path, Path] = {}
    path = next(iter(files))
    try:
        for path, data in files.items():
            if path.is_dir():  # (found now, not once another file has moved into place)
                raise IsADirectoryError(errno.EISDIR, os.strerror(errno.EISDIR))
            temporary = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")
            descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
            written[path] = temporary
            with os.fdopen(descriptor, "wb") as handle:
                handle.write(data)
        for path, temporary in written.items():
            os.replace(temporary, path)
    except OSError as error:
        for temporary in written.values():
            temporary.unlink(missing_ok=True)
        raise PodmodError(
            f"Cannot write {path} ({error.strerror or error}), so nothing was written; check that"
            " its directory exists and that you may write there."
        ) from None


def _next_timestamp(signature_path: Path) -> int:
    """Now, or a second after the signature this one replaces: subscribers refuse a version signed
    in the same second as the one they hold (they cannot tell which is newer)."""
    now = int(time.time())
    try:
        lines = signature_path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError):
        return now
    if len(lines) < 3 or not lines[2].startswith(minisign.TRUSTED):
        return now
    previous = minisign.TrustedComment.parse(lines[2].removeprefix(minisign.TRUSTED)).timestamp
    return now if previous is None else max(now, previous + 1)


def keygen(directory: Path, name: str = "podmod", password: str | None = None) -> tuple[Path, Path]:
    """A new key pair: `<name>.pub` to give subscribers, `<name>.key` (mode 0600) to keep."""
    directory.mkdir(parents=True, exist_ok=True)
    secret = minisign.SecretKey.generate()
    public_path, secret_path = directory / f"{name}.pub", directory / f"{name}.key"
    if secret_path.exists():
        raise PodmodError(
            f"{secret_path} already exists and podmod never overwrites a secret key; give another"
            " --name or --dir for a new one."
        )
    descriptor = os.open(secret_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(descriptor, "w", encoding="utf-8") as handle:
        handle.write(secret.to_file_text(password))
    public_path.write_text(secret.public_key.to_file_text(), encoding="utf-8")
    return public_path, secret_path
