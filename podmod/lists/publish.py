"""`podmod lists publish` and `keygen`: the other side of a subscription. Build a list file from a
CSV or from podmod's own lock decisions, check it with the same parser subscribers use, and sign
it with a minisign secret key, so publish → sync → match runs with podmod alone.
"""

from __future__ import annotations

import csv
import io
import os
from pathlib import Path

import psycopg

from podmod.errors import PodmodError
from podmod.lists import minisign
from podmod.lists.parse import ParsedList, csv_safe, parse_list

HEADER = ("kind", "value", "label", "comment")

# Accounts whose latest lock decision is a lock: still locked by this pod's moderators or policies.
LOCKED_ACCOUNTS_SQL = """
SELECT account, created_at FROM (
    SELECT DISTINCT ON (person_id) person_id, account, action, created_at
    FROM podmod.decisions WHERE action IN ('lock', 'unlock') AND account IS NOT NULL
    ORDER BY person_id, id DESC
) latest WHERE action = 'lock' ORDER BY account
"""


def render(parsed: ParsedList) -> bytes:
    """The canonical list file: the header, then one row per entry."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(HEADER)
    for entry in parsed.entries:
        writer.writerow((entry.kind, entry.value, csv_safe(entry.label), csv_safe(entry.comment)))
    return out.getvalue().encode("utf-8")


def from_csv(path: Path) -> ParsedList:
    """Entries from a CSV in the list format (or Mastodon's), validated as subscribers will."""
    try:
        data = path.read_bytes()
    except OSError as error:
        raise PodmodError(f"Cannot read {path}: {error.strerror}.") from None
    return parse_list(data)


def from_decisions(state: psycopg.Connection, *, label: str) -> ParsedList:
    """Entries for every account this pod's moderators (or policies) locked and still lock."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(HEADER)
    for row in state.execute(LOCKED_ACCOUNTS_SQL):
        writer.writerow(("account", row["account"], label, f"locked {row['created_at']:%Y-%m-%d}"))
    return parse_list(out.getvalue().encode("utf-8"))


def load_secret_key(path: Path, password_env: str | None) -> minisign.SecretKey:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as error:
        raise PodmodError(f"Cannot read the secret key {path}: {error.strerror}.") from None
    password = os.environ.get(password_env) if password_env else None
    if password_env and password is None:
        raise PodmodError(
            f"The environment variable {password_env} (the key's password) is not set."
        )
    return minisign.SecretKey.from_file_text(text, password)


def publish(
    parsed: ParsedList,
    output: Path,
    secret: minisign.SecretKey,
    *,
    trusted_comment: str | None = None,
) -> tuple[Path, Path]:
    """Write the list file and its detached signature `<output>.minisig`."""
    body = render(parsed)
    signature = minisign.sign(body, secret, trusted_comment=trusted_comment, file_name=output.name)
    output.write_bytes(body)
    signature_path = output.with_name(output.name + ".minisig")
    signature_path.write_text(signature, encoding="utf-8")
    return output, signature_path


def keygen(directory: Path, name: str = "podmod", password: str | None = None) -> tuple[Path, Path]:
    """A new key pair: `<name>.pub` to give subscribers, `<name>.key` (mode 0600) to keep."""
    directory.mkdir(parents=True, exist_ok=True)
    secret = minisign.SecretKey.generate()
    public_path, secret_path = directory / f"{name}.pub", directory / f"{name}.key"
    if secret_path.exists():
        raise PodmodError(f"{secret_path} already exists; podmod never overwrites a secret key.")
    descriptor = os.open(secret_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(descriptor, "w", encoding="utf-8") as handle:
        handle.write(secret.to_file_text(password))
    public_path.write_text(secret.public_key.to_file_text(), encoding="utf-8")
    return public_path, secret_path
