"""Publish, then subscribe: a generated list state of accounts, pods, hosts alone, IDN hosts,
domains known only by their digest, every severity, and comments and labels with commas, quotes,
backslashes and characters beyond ASCII, published in each format (`podmod lists publish
--skip-invalid`), signed, served over loopback HTTPS and synced by a second subscription, which
stores what the format holds exactly as a subscriber of the source does; and the Mastodon CSV is
one Mastodon's own admin import takes, row by row — against real PostgreSQL."""

from __future__ import annotations

import csv
import hashlib
import io
import json
import re
from pathlib import Path

import pytest

from podmod.loopback import LoopbackServer
from tests.helpers import podmod
from tests.test_lists import ListFiles, sync
from tests.test_lists import lists as lists  # (fixture)

N = 2000  # entries of each generated source (a 100,000-entry state reads back the same)

# Comments and labels as publishers write them (neutral placeholders).
COMMENTS = [
    "plain",
    "with, comma",
    'with "quotes"',
    '"quoted, all"',
    "back\\slash",
    "ünïcødé ✓ 日本",
    "=formula",
    "-minus",
    "+plus",
    "@at",
    "semi;colon",
    "it's",
    "emoji 🧪 rtl \u05d0\u05d1",
]
LABELS = ["spam", "hate speech", "spam; scam", "ünï", "placeholder-label"]


def _rows(header: list[str], rows: list[list[str]]) -> bytes:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(header)
    writer.writerows(rows)
    return out.getvalue().encode()


def mastodon_source(n: int) -> tuple[bytes, dict[str, set[str]]]:
    """Mastodon's domain-block CSV with a #digest column: a tenth known by digest alone (their
    domain obfuscated), a tenth IDN hosts, the rest plain; severities in turn, media and reports
    rejected here and there; two invalid rows. With the entries (as podmod names them) that
    formats leave out: `digest`, `noop` without media rejected, `not_suspend`."""
    rows, left_out = [], {"digest": set(), "noop": set(), "not_suspend": set()}
    for i in range(n):
        severity = ("suspend", "silence", "noop")[i % 3]
        media, reports = i % 7 == 0, i % 5 == 0
        comment = f"{COMMENTS[i % len(COMMENTS)]} {i}"
        if i % 10 == 0:
            digest = hashlib.sha256(f"hidden{i}.example".encode()).hexdigest()
            rows.append([f"hid***{i}.example", severity, "true", "false", comment, "true", digest])
            left_out["digest"].add(f"sha256:{digest}")
            continue
        host = f"bücher{i}.example" if i % 10 == 1 else f"pod{i}.example"
        flags = [str(media).lower(), str(reports).lower()]
        rows.append([host, severity, *flags, comment, "false", ""])
        value = host.encode("idna").decode()
        if severity == "noop" and not media:
            left_out["noop"].add(value)
        if severity != "suspend":
            left_out["not_suspend"].add(value)
    # What a file holds besides entries, which its subscribers' syncs and the publisher are told
    # of: domains obfuscated without a digest, patterns, a repeated row, a canary.
    rows += [
        ["exa**le.example", "suspend", "false", "false", "placeholder", "true", ""],
        ["*end.example", "suspend", "false", "false", "placeholder", "false", ""],
        ["pod2.example", "noop", "false", "false", "placeholder again", "false", ""],
        ["aud.invalid", "suspend", "false", "false", "placeholder:canary", "false", ""],
    ]
    rows.insert(
        n // 2, ["bad_host.example", "suspend", "false", "false", "placeholder", "false", ""]
    )
    rows.insert(n // 3, ["fine.example", "suspend", "false", "false", "line\nbreak", "false", ""])
    header = "#domain,#severity,#reject_media,#reject_reports,#public_comment,#obfuscate,#digest"
    return _rows(header.split(","), rows), left_out


def podmod_source(n: int) -> tuple[bytes, dict[str, int]]:
    """podmod's format: accounts (some on IDN hosts), pods (some IDN), labels, comments; one
    invalid row."""
    rows, counts = [], {"accounts": 0}
    for i in range(n):
        label, comment = LABELS[i % len(LABELS)], f"{COMMENTS[i % len(COMMENTS)]} {i}"
        kind, value = [
            ("account", f"user{i}@far.example"),
            ("account", f"name{i}@bücher{i}.example"),
            ("pod", f"p{i}.example"),
            ("pod", f"straße{i}.example"),
        ][i % 4]
        rows.append([kind, value, label, comment])
        counts["accounts"] += kind == "account"
    rows.insert(n // 2, ["account", "no-at-sign.example", "spam", "placeholder"])
    return _rows(["kind", "value", "label", "comment"], rows), counts


def pleroma_source(n: int) -> bytes:
    """A Pleroma server's federation policy: plain domains (that host alone) and wildcards."""
    reject = [f"alone{i}.example" for i in range(n)] + [f"*.under{i}.example" for i in range(n)]
    info = {f"alone{i}.example": {"reason": f"{COMMENTS[i % len(COMMENTS)]} {i}"} for i in range(n)}
    policy = {
        "mrf_simple": {"reject": reject, "followers_only": [f"quiet{i}.example" for i in range(n)]}
    }
    policy["mrf_simple_info"] = {"reject": info}
    return json.dumps({"metadata": {"federation": policy}}).encode()


def entries_of(state, name: str) -> dict[tuple[str, str], tuple[str, tuple[str, ...], str]]:
    """A subscription's entries in force: (kind, value) → (severity, labels, comment)."""
    state.rollback()
    rows = state.execute(
        "SELECT e.kind, e.value, e.severity, e.labels, e.comment FROM podmod.list_entries e"
        " JOIN podmod.lists l ON l.id = e.list_id WHERE l.name = %s AND e.removed_in IS NULL",
        (name,),
    ).fetchall()
    state.rollback()
    return {
        (row["kind"], row["value"]): (row["severity"], tuple(row["labels"]), row["comment"])
        for row in rows
    }


def sync_line(output: str, name: str) -> str:
    [line] = [line for line in output.splitlines() if line.startswith(f"{name}: ")]
    return line


@pytest.fixture
def key(tmp_path) -> tuple[Path, str]:
    """A secret key made by `podmod lists keygen`, and its public key as a subscription pins it."""
    made = podmod("lists", "keygen", "--dir", str(tmp_path / "keys"))
    assert made.exit_code == 0, made.output
    public = (tmp_path / "keys" / "podmod.pub").read_text().splitlines()[1]
    return tmp_path / "keys" / "podmod.key", public


def published(lists: ListFiles, key: Path, source: bytes, name: str, fmt: str) -> str:
    """`podmod lists publish` of `source` in `fmt` to `<name>.csv` beside the lists; its output."""
    source_path = lists.directory.parent / f"{name}.source"
    source_path.write_bytes(source)
    result = podmod(
        "lists", "publish", "--from-csv", str(source_path), "--secret-key", str(key),
        "--output", str(lists.directory / f"{name}.csv"), "--format", fmt, "--skip-invalid",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    return result.output


def subscribed_and_synced(lists, server, public_key: str, names: list[str]) -> str:
    for name in names:
        lists.subscribe(name, signed=False, url=server.url(f"{name}.csv"), public_key=public_key)
    code, output = sync(*names)
    assert code == 0, output
    return output


def origin(lists: ListFiles, name: str, source: bytes) -> str:
    """A subscriber of the source itself, read from disk (invalid rows skipped)."""
    path = lists.directory.parent / f"{name}.list"
    path.write_bytes(source)
    lists.subscribe(name, signed=False, url=path.as_uri(), skip_invalid=True)
    code, output = sync(name)
    assert code == 0, output
    return sync_line(output, name)


def test_podmods_format_reads_back_every_entry_it_holds(lists, pod, state, tmp_path, key):
    secret, public = key
    masto, left_out = mastodon_source(N)
    ours, _ = podmod_source(N)
    said_masto = published(lists, secret, masto, "masto-as-podmod", "podmod")
    said_ours = published(lists, secret, ours, "ours-as-podmod", "podmod")
    with LoopbackServer(lists.directory, tmp_path) as server:
        lists.list_sync = {"ca_bundle": str(server.cert_path)}
        out = subscribed_and_synced(lists, server, public, ["masto-as-podmod", "ours-as-podmod"])
    said_origin = [origin(lists, "masto", masto), origin(lists, "ours", ours)]

    # The source's invalid rows: named by line when published, counted by its subscribers.
    assert "'bad_host.example' is not a valid host name" in said_masto, said_masto
    assert re.search(r"left out line \d+: the comment contains a control character", said_masto)
    assert re.search(r"left out line \d+: 'no-at-sign.example'", said_ours), said_ours
    assert "2 invalid rows skipped" in said_origin[0] and "1 invalid row skipped" in said_origin[1]
    for note in ("1 obfuscated row skipped", "1 pattern row skipped", "1 repeated row merged"):
        assert note in said_origin[0], said_origin[0]
    assert (
        "\nfrom the source: 1 obfuscated row skipped; 1 pattern row skipped; 1 repeated row"
        " merged; its canary aud.invalid not written" in said_masto
    ), said_masto
    assert "from the source" not in said_ours
    # A subscriber of podmod's own list stores what a subscriber of the source does, all of it.
    assert entries_of(state, "ours-as-podmod") == entries_of(state, "ours")
    assert "skipped" not in sync_line(out, "ours-as-podmod")
    # From Mastodon's CSV: every pod but those known by digest alone and the noops, each with
    # its comment; silences written as plain entries (the format has no severity, and says so).
    source, back = entries_of(state, "masto"), entries_of(state, "masto-as-podmod")
    noops = {k for k, (severity, _, _) in source.items() if severity == "noop"}
    kept = set(source) - noops - {("pod", value) for value in left_out["digest"]}
    assert set(back) == kept
    assert {k: v[2] for k, v in back.items()} == {k: source[k][2] for k in kept}
    assert {severity for severity, _, _ in back.values()} == {""}
    plain = {k for k in kept if re.fullmatch(r"(plain|with, comma|semi;colon) \d+", source[k][2])}
    assert plain and {k: back[k][1] for k in plain} == {k: source[k][1] for k in plain}
    assert f"{len(left_out['digest']):,} known only by the digest of their name" in said_masto
    assert "silence entries written without their severity" in said_masto, said_masto
    assert "skipped" not in sync_line(out, "masto-as-podmod")


def test_mastodons_format_reads_back_every_whole_domain_and_mastodon_imports_it(
    lists, pod, state, tmp_path, key
):
    secret, public = key
    masto, left_out = mastodon_source(N)
    ours, counts = podmod_source(N)
    said_masto = published(lists, secret, masto, "masto-as-mastodon", "mastodon")
    said_ours = published(lists, secret, ours, "ours-as-mastodon", "mastodon")
    with LoopbackServer(lists.directory, tmp_path) as server:
        lists.list_sync = {"ca_bundle": str(server.cert_path)}
        names = ["masto-as-mastodon", "ours-as-mastodon"]
        out = subscribed_and_synced(lists, server, public, names)
    origin(lists, "masto", masto)
    origin(lists, "ours", ours)

    # Severity, labels and comment come back as they were; what it cannot hold is told by why.
    source, back = entries_of(state, "masto"), entries_of(state, "masto-as-mastodon")
    gone = {("pod", value) for value in left_out["digest"] | left_out["noop"]}
    assert gone <= set(source)
    assert back == {k: v for k, v in source.items() if k not in gone}
    assert f"{len(left_out['digest']):,} known only by the digest of their name" in said_masto
    assert f"{len(left_out['noop']):,} noop without reject_media" in said_masto, said_masto
    assert "skipped" not in sync_line(out, "masto-as-mastodon")
    # podmod's format: its pods, as suspensions, the label their public comment (its labels).
    ours_source, ours_back = entries_of(state, "ours"), entries_of(state, "ours-as-mastodon")
    assert {k: (v[0], v[1]) for k, v in ours_back.items()} == {
        k: ("suspend", v[1]) for k, v in ours_source.items() if k[0] == "pod"
    }
    assert f"{counts['accounts']:,} accounts, content or ports" in said_ours, said_ours
    assert "skipped" not in sync_line(out, "ours-as-mastodon")
    for name in names:
        domains = [row["#domain"] for row in mastodon_import(lists.directory / f"{name}.csv")]
        assert sorted(domains) == sorted(value for _, value in entries_of(state, name))


def test_a_list_of_domains_reads_back_every_suspended_domain(lists, pod, state, tmp_path, key):
    secret, public = key
    masto, left_out = mastodon_source(N)
    said = published(lists, secret, masto, "masto-as-domains", "domains")
    with LoopbackServer(lists.directory, tmp_path) as server:
        lists.list_sync = {"ca_bundle": str(server.cert_path)}
        out = subscribed_and_synced(lists, server, public, ["masto-as-domains"])
    origin(lists, "masto", masto)

    source, back = entries_of(state, "masto"), entries_of(state, "masto-as-domains")
    gone = {("pod", value) for value in left_out["digest"] | left_out["not_suspend"]}
    assert back == {k: ("suspend", (), "") for k in set(source) - gone}
    assert f"{len(left_out['digest']):,} known only by the digest of their name" in said, said
    assert f"{len(left_out['not_suspend']):,} silences and noops" in said, said
    assert "skipped" not in sync_line(out, "masto-as-domains")
    # (Mastodon's import of a user's domain blocks takes one domain a line)
    lines = (lists.directory / "masto-as-domains.csv").read_text().splitlines()
    assert lines and all(mastodon_domain(line) for line in lines)


def test_a_host_alone_is_published_as_its_domain_in_every_format(lists, pod, state, tmp_path, key):
    secret, public = key
    source = pleroma_source(50)
    said = {
        fmt: published(lists, secret, source, f"alone-{fmt}", fmt)
        for fmt in ("podmod", "mastodon", "domains")
    }
    with LoopbackServer(lists.directory, tmp_path) as server:
        lists.list_sync = {"ca_bundle": str(server.cert_path)}
        subscribed_and_synced(lists, server, public, [f"alone-{fmt}" for fmt in said])
    origin(lists, "alone", source)

    hosts = {value for _, value in entries_of(state, "alone") if value.startswith("=")}
    assert len(hosts) == 100  # (rejected and followers-only: each host alone)
    widened = {("pod", host.removeprefix("=")) for host in hosts}
    for fmt, output in said.items():
        values = set(entries_of(state, f"alone-{fmt}"))
        # (a list of domains holds the suspended ones alone)
        expected = {k for k in widened if fmt != "domains" or k[1].startswith("alone")}
        assert expected <= values, (fmt, sorted(expected - values)[:5])
        assert not {value for _, value in values if value.startswith("=")}
        assert "for one host alone written as their domain" in output, output


# What Mastodon's admin import (Admin::Import, ExportDomainBlocksController#import) takes: a CSV
# Ruby's CSV parses strictly (a quote opens a field only at its start and is doubled inside; no
# bare line break outside quotes), its first header `#domain`; per row, the domain stripped and
# lower-cased, valid by DomainValidator (its IDNA form of labels of letters, digits and hyphens,
# 1 to 63 characters, under 256 in all), the severity suspend, silence or noop, the booleans
# true or false; at most 20,000 rows.
MASTODON_SEVERITIES = {"suspend", "silence", "noop"}


def strict_csv(text: str) -> list[list[str]]:
    """Rows of RFC 4180 CSV, as Ruby's CSV reads it without liberal_parsing; ValueError where it
    raises MalformedCSVError."""
    rows: list[list[str]] = []
    row: list[str] = []
    field, i, at_start = "", 0, True
    while i < len(text):
        char = text[i]
        if at_start and char == '"':
            closing = i + 1
            while True:
                closing = text.find('"', closing)
                if closing < 0:
                    raise ValueError(f"a quoted field opened at {i} is never closed")
                if text[closing + 1 : closing + 2] != '"':
                    break
                closing += 2
            field = text[i + 1 : closing].replace('""', '"')
            i, at_start = closing + 1, False
            if i < len(text) and text[i] not in ",\n":
                raise ValueError(f"characters after a closing quote at {i}")
            continue
        at_start = False
        if char == ",":
            row.append(field)
            field, at_start = "", True
        elif char == "\n":
            rows.append([*row, field])
            row, field, at_start = [], "", True
        elif char in '"\r':
            raise ValueError(f"an unquoted field holds {char!r} at {i}")
        else:
            field += char
        i += 1
    if field or row:
        rows.append([*row, field])
    return rows


def mastodon_domain(text: str) -> bool:
    host = text.strip().lower()
    try:
        ascii_host = host.encode("idna").decode()
    except UnicodeError:
        return False
    labels = ascii_host.split(".")
    return len(ascii_host) < 256 and all(
        re.fullmatch(r"[a-z0-9-]{1,63}", label) for label in labels
    )


def mastodon_import(path: Path) -> list[dict[str, str]]:
    """The rows Mastodon's admin import would take from a published file; every row must be."""
    rows = strict_csv(path.read_text(encoding="utf-8"))
    header, body = rows[0], rows[1:]
    assert header == [
        "#domain", "#severity", "#reject_media", "#reject_reports", "#public_comment", "#obfuscate"
    ]  # fmt: skip
    assert 0 < len(body) <= 20_000
    taken = []
    for cells in body:
        assert len(cells) == len(header), cells
        row = dict(zip(header, cells, strict=True))
        assert mastodon_domain(row["#domain"]), row
        assert row["#severity"].strip().lower() in MASTODON_SEVERITIES, row
        for flag in ("#reject_media", "#reject_reports", "#obfuscate"):
            assert row[flag] in ("true", "false"), row
        taken.append(row)
    return taken
