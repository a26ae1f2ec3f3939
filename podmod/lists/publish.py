"""`podmod lists publish` and `keygen`: the other side of a subscription. Build a list file from a
CSV (of any shape podmod reads), from podmod's own lock decisions or from this pod's own list,
check it with the same parser subscribers use, write it in podmod's format, in Mastodon's
domain-block CSV (so Mastodon neighbours can import it) or as one domain per line (GoToSocial's
plain subscriptions, Mastodon's user import, Misskey), and sign it with a minisign secret key,
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
from dataclasses import dataclass, field, replace
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
OUTPUT_FORMATS = ("podmod", "mastodon", "domains")

# Why a format leaves an entry out, as the summary says it after their number.
NOT_A_DOMAIN = "accounts, content or ports (the format holds whole domains only)"
DIGEST_ONLY = "known only by the digest of their name"
HIDDEN_BY_SOURCE = (
    "obfuscated by their source, which this format cannot keep hidden (--format mastodon"
    " keeps them, marked #obfuscate)"
)
NOOP_AS_BLOCK = "noop, which this format would write as blocks"
NOOP_MASTODON = (
    "noop without reject_media, which block nothing (Mastodon's own export leaves them out,"
    " and importers that read no severity would block them)"
)
NOT_SUSPENDED = (
    "silences and noops (a list of domains has no severity, and its importers block every"
    " domain in it)"
)

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
    it cannot hold, how many for each reason; `widened` entries for one host alone (a Pleroma,
    Akkoma or Friendica server's plain domain) written as their domain, which subscribers apply
    to its subdomains too, as no format can say one host alone (one whose domain is an entry as
    well is that row); `hidden` written marked obfuscated, as their source had them."""

    body: bytes
    written: int = 0
    left_out: dict[str, int] = field(default_factory=dict)
    widened: int = 0
    silenced: int = 0  # silence entries written in podmod's format, which has no severity
    hidden: int = 0


def _rows(
    parsed: ParsedList, rendered: Rendered, left_out: Callable[[Entry], str | None]
) -> Iterator[Entry]:
    """The entries a format holds (those `left_out` gives no reason for), each once, one for a
    host alone as its domain; the others counted in `rendered` by their reason."""
    domains = {e.value for e in parsed.entries if e.kind == "pod" and left_out(e) is None}
    for entry in parsed.entries:
        why = left_out(entry)
        if why is not None:
            rendered.left_out[why] = rendered.left_out.get(why, 0) + 1
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


def _left_out_of_podmod(entry: Entry) -> str | None:
    """Why podmod's format cannot hold an entry: a pod known only by a digest, a domain its
    source hid (Flags.obfuscate) or a noop entry, for none of which it has a column (written
    plainly, the second would name what its source chose not to, and the third would flag)."""
    if entry.published:
        return DIGEST_ONLY
    if entry.flags.obfuscate:
        return HIDDEN_BY_SOURCE
    if entry.severity == "noop":
        return NOOP_AS_BLOCK
    return None


def render(parsed: ParsedList) -> Rendered:
    """The canonical list file: the header, then one row per entry it can hold
    (_left_out_of_podmod)."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(HEADER)
    rendered = Rendered(b"")
    for entry in _rows(parsed, rendered, _left_out_of_podmod):
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


def _not_a_domain(entry: Entry) -> str | None:
    """Why a format of whole domains cannot hold an entry: an account or content, a port (or an
    IP v6 address), a pod known only by a digest."""
    if entry.published:  # (its value, `sha256:…`, holds a colon: no port)
        return DIGEST_ONLY
    if entry.kind != "pod" or ":" in entry.value:
        return NOT_A_DOMAIN
    return None


def _left_out_of_mastodon(entry: Entry) -> str | None:
    """Why Mastodon's domain-block CSV leaves an entry out: not a whole domain (_not_a_domain),
    or a noop that limits nothing, as Mastodon's own export (DomainBlock.with_limitations: a
    silence, a suspension or media rejected) leaves it out."""
    why = _not_a_domain(entry)
    if why is None and entry.severity == "noop" and not entry.flags.reject_media:
        return NOOP_MASTODON
    return why


def _public_comment(entry: Entry, parsed: ParsedList) -> str:
    """An entry's public comment in Mastodon's CSV: as its source wrote it where its source has
    public comments (every domain shape: the entry's label is made from its comment, lower-case
    and split), else, from podmod's format, its label (the category it was listed for; its
    comment is a note, such as `locked 2026-12-01`) or, with none, its comment. Never made
    spreadsheet-safe (csv_safe): Mastodon and GoToSocial show it to the public as written, and
    Mastodon's own export writes it so."""
    if parsed.format == "podmod":
        return entry.label or entry.comment
    return entry.comment or entry.label  # (RapidBlock's tags, when it gives no reason)


def _boolean(value: bool) -> str:
    return "true" if value else "false"


def render_mastodon(parsed: ParsedList) -> Rendered:
    """Mastodon's domain-block CSV of the whole domains (_left_out_of_mastodon): severity suspend
    unless the entry says silence or noop, its public comment (_public_comment), and what its
    source said of it (Flags): #obfuscate, so that a domain the source hid stays hidden for
    whoever imports it, #reject_media and #reject_reports."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(MASTODON_HEADER)
    rendered = Rendered(b"")
    for entry in _rows(parsed, rendered, _left_out_of_mastodon):
        flags = entry.flags
        rendered.hidden += flags.obfuscate
        writer.writerow(
            (
                entry.value,
                entry.severity or "suspend",
                _boolean(flags.reject_media),
                _boolean(flags.reject_reports),
                _public_comment(entry, parsed),
                _boolean(flags.obfuscate),
            )
        )
    rendered.body = out.getvalue().encode("utf-8")
    return rendered


def _left_out_of_domains(entry: Entry) -> str | None:
    """Why a list of one domain per line leaves an entry out: not a whole domain
    (_not_a_domain), hidden by its source, or not a suspension (podmod's format's entries, which
    name no severity, are: its subscribers weigh them so). Its importers have no severity and
    block every line: a silence or noop written there would become a block."""
    why = _not_a_domain(entry)
    if why is None and entry.flags.obfuscate:
        return HIDDEN_BY_SOURCE
    if why is None and entry.severity not in ("", "suspend"):
        return NOT_SUSPENDED
    return why


def render_domains(parsed: ParsedList) -> Rendered:
    """One suspended domain per line (_left_out_of_domains), no header, no comment: what
    GoToSocial's plain-text subscriptions, Mastodon's import of a user's domain blocks and
    Misskey's blocked hosts read, and podmod reads back as the same entries. A domain of one
    label (`tk`) comes last: a file's first line is read as a domain when it has a dot."""
    rendered = Rendered(b"")
    entries = list(_rows(parsed, rendered, _left_out_of_domains))
    entries.sort(key=lambda entry: "." not in entry.value)  # (stable: in the list's order)
    rendered.body = "".join(f"{entry.value}\n" for entry in entries).encode("utf-8")
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
    left_out: dict[str, int] = field(default_factory=dict)  # (Rendered)
    widened: int = 0  # entries for one host alone written as their domain (Rendered)
    output_format: str = "podmod"
    silenced: int = 0  # (Rendered)
    hidden: int = 0  # (Rendered)

    def left_out_text(self) -> str:
        """What the file leaves out, and why, after the number of entries it holds: "; 3 left
        out: 1 accounts, content or ports (…); 2 noop, …" ("" when nothing)."""
        if not self.left_out:
            return ""
        reasons = "; ".join(f"{count:,} {why}" for why, count in self.left_out.items())
        return f"; {sum(self.left_out.values()):,} left out: {reasons}"

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
        if self.output_format == "domains" and not self.entries:
            return (
                "no domain written: the file is empty, which podmod's subscribers refuse as a list"
                " that is retired; publish it once it holds a suspended domain."
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
    """Write the list file (in one of OUTPUT_FORMATS) and its detached signature
    `<output>.minisig`, whose trusted comment is minisign's (the time and the file's name, which
    subscribers check) followed by `trusted_comment`, the publisher's words."""
    if output_format == "mastodon":
        rendered = render_mastodon(parsed)
    elif output_format == "domains":
        rendered = render_domains(parsed)
    else:
        rendered = render(parsed)
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
        rendered.widened,
        output_format,
        rendered.silenced,
        rendered.hidden,
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
