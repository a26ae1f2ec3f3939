"""The list parser: every kind's validation and normal form, podmod's own format with its line
numbers, labels and refusal as a whole or row by row, and properties that hold for any input.
(The domain-list shapes, Mastodon's export among them, are tests/test_list_shapes.py.)"""

from __future__ import annotations

import contextlib
import csv
import dataclasses
import gc
import io
import json
import re
import unicodedata
import zipfile

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from podmod.lists.parse import (
    KINDS,
    Entry,
    ListFormatError,
    ListReader,
    RowError,
    csv_safe,
    detect_format,
    label_keys,
    label_tokens,
    normalise,
    parse_list,
)

HEADER = "kind,value,label,comment\n"
HASH = "0123456789abcdef" * 4


def body(*rows: str, header: str = HEADER) -> bytes:
    return (header + "".join(row + "\n" for row in rows)).encode()


@pytest.mark.parametrize(
    ("kind", "value", "expected"),
    [
        ("account", "spam@pod.example", "spam@pod.example"),
        ("account", "Spam.Bot-1_x@Pod.Example", "spam.bot-1_x@pod.example"),
        ("account", "@spam@pod.example", "spam@pod.example"),
        ("account", "spam@pod.example:8443", "spam@pod.example:8443"),
        ("account", "spam@pod.example:443", "spam@pod.example"),  # (no handle writes it)
        ("account", "spam@[2001:db8::2]:443", "spam@[2001:db8::2]"),
        ("account", "spam@localhost:3000", "spam@localhost:3000"),
        ("account", "spam@bücher.example", "spam@xn--bcher-kva.example"),
        ("account", " spam@pod.example. ", "spam@pod.example"),
        ("pod", "pod.example", "pod.example"),
        ("pod", "Pod.Example:8443", "pod.example:8443"),
        ("pod", "pod.example:443", "pod.example"),
        ("pod", "*.pod.example:443", "pod.example"),
        ("pod", "192.0.2.1:443", "192.0.2.1"),
        ("pod", "https://pod.example/", "pod.example"),
        ("pod", "https://pod.example:443", "pod.example"),
        ("pod", "https://pod.example:8443/", "pod.example:8443"),
        ("pod", "www.pod.example", "www.pod.example"),
        ("pod", "BÜCHER.example", "xn--bcher-kva.example"),
        ("pod", "tk", "tk"),  # a whole top-level domain
        ("pod", ".TK", "tk"),
        ("pod", ".pod.example", "pod.example"),
        ("pod", "192.0.2.1", "192.0.2.1"),
        ("pod", "2001:DB8:0:0::2", "[2001:db8::2]"),
        ("pod", "[2001:db8::2]:8443", "[2001:db8::2]:8443"),
        ("pod", "https://[2001:db8::2]:443/", "[2001:db8::2]"),
        ("hashtag", "#Spam", "spam"),
        ("hashtag", "Straße", "strasse"),
        ("hashtag", "#ｓｐａｍ", "spam"),
        ("hashtag", "#buy-now_2", "buy-now_2"),
        ("hashtag", "#नमस्ते", "नमस्ते"),
        ("phrase", "  Buy   CHEAP\tpills  ", "buy cheap pills"),
        ("phrase", "ﬁnd\u00a0ME", "find me"),
        ("url", "https://media.example/path", "https://media.example/path"),
        ("url", "HTTPS://Media.Example:443/Path?A=1#frag", "https://media.example/Path?A=1"),
        ("url", "http://media.example:80/x", "http://media.example/x"),
        ("url", "http://media.example:8080/x", "http://media.example:8080/x"),
        ("url", "media.example", "https://media.example/"),
        ("url", "media.example/path/file.jpg", "https://media.example/path/file.jpg"),
        ("url", "https://bücher.example/ä", "https://xn--bcher-kva.example/ä"),
        ("pdq", HASH.upper(), HASH),
        ("sha256", HASH, HASH),
    ],
)
def test_valid_values_are_normalised(kind: str, value: str, expected: str) -> None:
    assert normalise(kind, value) == expected
    assert normalise(kind, expected) == expected


@pytest.mark.parametrize(
    ("kind", "value", "reason"),
    [
        ("account", "spam", "handle"),
        ("account", "@pod.example", "handle"),
        ("account", "spam@", "host"),
        ("account", "sp am@pod.example", "user name"),
        ("account", "spam!@pod.example", "user name"),
        ("account", "spam@pod", "host"),
        ("account", "spam@-pod.example", "host"),
        ("account", "spam@pod-.example", "host"),
        ("account", "spam@pod..example", "host"),
        ("account", "spam@" + "a" * 64 + ".example", "host"),
        ("account", "spam@pod.example:0", "port"),
        ("account", "spam@pod.example:65536", "port"),
        ("account", "spam@pod.example:http", "port"),
        ("pod", "pod_1.example", "host"),
        ("pod", "..tk", "host"),
        ("pod", "-tk", "host"),
        ("pod", "2001:db8::2:", "IP v6"),
        ("pod", "fe80::1%eth0", "IP v6"),
        ("pod", "[2001:db8::2]x", "host"),
        ("pod", "[2001:db8::2]:0", "port"),
        ("pod", "https://pod.example/people/abc", "page"),
        ("pod", "ftp://pod.example", "pod host"),
        ("pod", "spam@pod.example", "pod host"),
        ("hashtag", "#", "hashtag"),
        ("hashtag", "#two words", "hashtag"),
        ("hashtag", "#tag!", "hashtag"),
        ("hashtag", "#" + "a" * 256, "longer"),
        ("phrase", "   ", "empty"),
        ("phrase", "a" * 1001, "longer"),
        ("url", "ftp://media.example/x", "http"),
        ("url", "https://", "host"),
        ("url", "https://user:pw@media.example/", "user name"),
        ("url", "https://media.example/a b", "spaces"),
        ("url", "javascript:alert(1)", "host"),
        ("pdq", "abc", "64 hexadecimal"),
        ("pdq", "g" * 64, "64 hexadecimal"),
        ("sha256", HASH + "0", "64 hexadecimal"),
        ("bogus", "x", "not a known kind"),
    ],
)
def test_invalid_values_are_refused_with_a_reason(kind: str, value: str, reason: str) -> None:
    with pytest.raises(ValueError, match=reason):
        normalise(kind, value)


def test_a_good_list_parses_in_order_with_labels_and_comments() -> None:
    parsed = parse_list(
        body(
            "account,Spam@Pod.Example,spam,seen 2024-05-01",
            "pod,bad.example,,",
            "hashtag,#BuyNow,spam: ads,",
            "phrase,cheap pills,,\tindented comment",
            f"sha256,{HASH},csam,",
        )
    )
    assert parsed.format == "podmod"
    assert parsed.errors == [] and parsed.duplicates == 0
    assert parsed.entries == [
        Entry("account", "spam@pod.example", "spam", "seen 2024-05-01", 2, labels=("spam",)),
        Entry("pod", "bad.example", "", "", 3),
        Entry("hashtag", "buynow", "spam: ads", "", 4, labels=("ads",)),
        Entry("phrase", "cheap pills", "", "indented comment", 5),
        Entry("sha256", HASH, "csam", "", 6, labels=("csam",)),
    ]
    assert all(entry.severity == "" and entry.published == "" for entry in parsed.entries)


def test_labels_are_split_into_normalised_tokens() -> None:
    parsed = parse_list(body("account,a@pod.example,Spam; Bots;spam,", "account,b@pod.example,,"))
    assert [(e.label, e.labels) for e in parsed.entries] == [
        ("Spam; Bots;spam", ("spam", "bots")),
        ("", ()),
    ]


@pytest.mark.parametrize(
    ("text", "tokens"),
    [
        ("", ()),
        ("spam", ("spam",)),
        (" Spam ;  HATE   speech , spam", ("spam", "hate speech")),
        ("iftas:hate-speech;iftas:spam", ("hate-speech", "spam")),
        ("IFTAS: Canary", ("canary",)),
        ("a:b:c", ("b:c",)),
        ("iftas:;;,", ()),
        ("Straße", ("strasse",)),
        ("x" * 100 + ";ok;" + "y" * 101, ("x" * 100, "ok")),
        (
            "lack of moderation, conspiracy weirdness",
            ("lack of moderation", "conspiracy weirdness"),
        ),
        ("“free speech zone”, spam", ("free speech zone", "spam")),
        ("„Spam“; «hate speech»; ‘bots’; 'scam'", ("spam", "hate speech", "bots", "scam")),
        ("he's a thief, 'half quoted", ("he's a thief", "'half quoted")),
        ("“mismatched'", ("“mismatched'",)),
        ("Tagline: “Now With More Spam!”", ("now with more spam!",)),
        ('"iftas:spam", iftas:"hate speech"', ("spam", "hate speech")),
        ("-", ()),
        ("- ; _ ; spam; --", ("spam",)),
    ],
)
def test_label_tokens(text: str, tokens: tuple[str, ...]) -> None:
    assert label_tokens(text) == tokens


@pytest.mark.parametrize(
    ("text", "keys"),
    [
        ("", ()),
        ("spam", ("spam",)),
        # one label however its words are joined, as different publishers write the same reason
        ("Hate speech", ("hate-speech",)),
        ("iftas:hate-speech;iftas:spam", ("hate-speech", "spam")),
        ("hate_speech; Hate  -  Speech; HATE SPEECH, hate--speech", ("hate-speech",)),
        ("Third-party bots, third party bots", ("third-party-bots",)),
        ("“free speech zone”, spam", ("free-speech-zone", "spam")),
        ("-spam_; __; - ", ("spam",)),
        ("-", ()),
        ("a_b-c d", ("a-b-c-d",)),
        # as it shows: without what shows nothing (a zero-width space copied with a word, a soft
        # hyphen, a word joiner, a bidirectional override), compatibility forms as they show
        (
            "spam\u200b; \u00adscam; hate\u2060 speech; \u202ebots",
            ("spam", "scam", "hate-speech", "bots"),
        ),
        ("\ufeffＳＰＡＭ；Hate Speech", ("spam", "hate-speech")),
        ("spa\u0301m, spám", ("spám",)),
        ("\u200b, \u200d", ()),
    ],
)
def test_label_keys(text: str, keys: tuple[str, ...]) -> None:
    assert label_keys(label_tokens(text)) == keys


def test_entries_are_ordinary_frozen_entries() -> None:
    entry = parse_list(body("account,a@pod.example,spam,")).entries[0]
    assert type(entry) is Entry
    assert entry == Entry("account", "a@pod.example", "spam", "", 2, "", ("spam",), "")
    assert hash(entry) == hash(Entry("account", "a@pod.example", "spam", "", 2, "", ("spam",)))
    assert dataclasses.replace(entry, line=3).line == 3
    with pytest.raises(dataclasses.FrozenInstanceError):
        entry.value = "b@pod.example"  # type: ignore[misc]


def test_header_is_case_insensitive_and_may_have_spaces_and_a_bom() -> None:
    data = b"\xef\xbb\xbf Kind , VALUE,Label ,comment\r\naccount,spam@pod.example,,\r\n"
    assert [e.value for e in parse_list(data).entries] == ["spam@pod.example"]


def test_trailing_empty_cells_and_comment_lines_before_the_header_are_ignored() -> None:
    data = b"# published by a pod\n\nkind,value,label,comment,\naccount,a@pod.example,,,\n"
    data += b"account,b@pod.example,,,,,\naccount,c@pod.example,spam,,,x\n"
    parsed = parse_list(data, skip_invalid=True)
    assert [(e.value, e.line) for e in parsed.entries] == [
        ("a@pod.example", 4),
        ("b@pod.example", 5),
    ]
    assert [(e.line, e.message) for e in parsed.errors] == [
        (6, "the row has 6 columns; the list format has 4: kind,value,label,comment")
    ]


def test_label_and_comment_columns_may_be_left_out() -> None:
    parsed = parse_list(body("account,spam@pod.example", "pod,bad.example,spam"))
    assert [(e.label, e.comment) for e in parsed.entries] == [("", ""), ("spam", "")]


def test_blank_lines_are_skipped_and_lines_count_from_the_header() -> None:
    data = b"\nkind,value,label,comment\n\naccount,a@pod.example,,\n   \n,,,\n" + (
        b'phrase,"two\nlines",,\nbogus,x,,\naccount,b@pod.example,,\n'
    )
    parsed = parse_list(data, skip_invalid=True)
    assert [(e.value, e.line) for e in parsed.entries] == [
        ("a@pod.example", 4),
        ("b@pod.example", 10),
    ]
    assert [(e.line, e.message) for e in parsed.errors] == [
        (7, "the value contains a control character (U+000A)"),
        (9, "'bogus' is not a known kind (account, pod, hashtag, phrase, url, pdq, sha256)"),
    ]


def test_repeated_rows_are_counted_and_add_their_labels_and_comments_to_the_first() -> None:
    parsed = parse_list(
        body(
            "account,spam@pod.example,first,why",
            "account,SPAM@pod.example,second,why",
            "account,@spam@pod.example,iftas:third; first,and more",
            "pod,pod.example,,",
            "pod,pod.example,,",
        )
    )
    assert [(e.kind, e.line, e.label, e.labels, e.comment) for e in parsed.entries] == [
        (
            "account",
            2,
            "first; second; iftas:third",
            ("first", "second", "third"),
            "why; and more",
        ),
        ("pod", 5, "", (), ""),
    ]
    assert parsed.duplicates == 3


def test_invalid_rows_refuse_the_whole_list_naming_lines() -> None:
    rows = ["account,ok@pod.example,,", "bogus,x,,", "account,nobody,,", "pdq,abc,,"]
    rows += ["account,x@pod.example,,,extra", "pod,bad.example,bad label!,"]
    rows += ["pod,a.example,,", "pod,-.example,,"]
    with pytest.raises(ListFormatError) as refused:
        parse_list(body(*rows), max_errors_shown=3)
    message = str(refused.value)
    assert message.startswith("6 invalid rows: line 3: 'bogus' is not a known kind (account,")
    assert "line 4: 'nobody' is not a diaspora* handle" in message
    assert "line 5: 'abc' is not a PDQ hash" in message
    assert "line 6" not in message
    assert message.endswith("; and 3 more; fix the list or set skip_invalid = true for it.")


def test_skip_invalid_keeps_the_valid_entries_and_returns_the_errors() -> None:
    rows = ["account,ok@pod.example,,", "account,x@pod.example,,,extra", "pod,bad.example,spam,"]
    rows += ["pod,b.example,bad label!,", "pod,c.example,," + "x" * 2001]
    parsed = parse_list(body(*rows), skip_invalid=True)
    assert [e.value for e in parsed.entries] == ["ok@pod.example", "bad.example"]
    assert [(e.line, e.message) for e in parsed.errors] == [
        (3, "the row has 5 columns; the list format has 4: kind,value,label,comment"),
        (5, "the label 'bad label!' may only hold letters, digits, spaces and _ : ; . / -"),
        (6, "the comment is longer than 2000 characters"),
    ]


def test_control_characters_make_a_row_invalid_but_tab_in_a_comment_is_fine() -> None:
    rows = ["account,ok@pod.example,,a\tb", "phrase,a\x00b,,", "pod,c.example,,a\x07b"]
    parsed = parse_list(body(*rows), skip_invalid=True)
    assert [(e.value, e.comment) for e in parsed.entries] == [("ok@pod.example", "a\tb")]
    assert [e.line for e in parsed.errors] == [3, 4]
    assert "U+0000" in parsed.errors[0].message


def test_one_invalid_row_is_singular() -> None:
    with pytest.raises(ListFormatError, match=r"^1 invalid row: line 2: "):
        parse_list(body("bogus,x,,"))


def test_invalid_utf8_refuses_the_whole_list_even_with_skip_invalid() -> None:
    data = body("account,ok@pod.example,,") + b"phrase,caf\xe9,,\n"
    with pytest.raises(ListFormatError, match=r"not valid UTF-8 \(byte 61, line 3\)"):
        parse_list(data, skip_invalid=True)


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"", r"^The list is empty; it needs at least a header line"),
        (b"\n\n", r"^The list is empty; it needs at least a header line"),
        (b"value,kind\nspam@pod.example,account\n", r"^Line 1 of the list is 'value,kind', which"),
        (b"account,spam@pod.example,,\n", r"^Line 1 of the list is 'account,spam@pod.exam"),
        (b"\nkind,value\n", r"^Line 2 of the list is 'kind,value', which is none of the shapes"),
    ],
)
def test_a_missing_or_unknown_header_is_refused(data: bytes, message: str) -> None:
    with pytest.raises(ListFormatError, match=message):
        parse_list(data, skip_invalid=True)


GZIP_OF_A_LIST = bytes.fromhex("1f8b0800000000000003") + b"(compressed rows)"


def _zip(*members: tuple[str, str]) -> bytes:
    """A ZIP archive of these (name, text) members, stored as a spreadsheet program stores them
    (an OpenDocument file's `mimetype` first and uncompressed)."""
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as archive:
        for name, text in members:
            archive.writestr(name, text)
    return out.getvalue()


@pytest.mark.parametrize(
    ("data", "forced", "message"),
    [
        (
            b'<!DOCTYPE html>\n<html lang="en">\n<head><title>core.csv</title>',
            None,
            r"^The list's address serves a web page \(it begins '<!DOCTYPE html>'\), not a list"
            r" file; set url to the file's own address \(on GitHub, GitLab, Codeberg or Gitea,",
        ),
        (
            b"\r\n  <HTML>\r\n<head><title>404 Not Found</title></head>",
            "mastodon-json",
            r"^The list's address serves a web page \(it begins '<HTML>'\)",
        ),
        (
            b"version https://git-lfs.github.com/spec/v1\noid sha256:" + b"ab" * 32 + b"\n"
            b"size 52\n",
            None,
            r"^The list's address serves a Git LFS pointer \('version https://git-lfs.github.com/"
            r"spec/v1'\), not the file: its repository keeps the file in Git LFS; set url to the"
            r" file's LFS address \(on GitHub, https://media.githubusercontent.com/media/OWNER/",
        ),
        (
            b'["one.example", "two.example"]',
            None,
            r"^The list is a JSON array of names, not of domain blocks such as \{\"domain\": "
            r"\"pod.example\", …\}: Mastodon's /api/v1/instance/peers answers such an array, the"
            r" servers an instance knows, not those it blocks \(its blocks are at /api/v1/instance"
            r"/domain_blocks\); a list of domains to block is read one per line\.$",
        ),
        (b'["one.example"]', "mastodon-json", r"^The list is a JSON array of names, not of"),
        (
            # (Mastodon's /api/v1/instance/activity: a server's weekly figures)
            b'[{"week": "1700000000", "statuses": "10", "logins": "3", "registrations": "0"}]',
            None,
            r"^The list is a JSON array of objects without \"domain\" \(the first holds 'week',"
            r" 'statuses', 'logins', 'registrations'\), not of domain blocks such as \{\"domain\":"
            r" \"pod.example\", \"severity\": \"suspend\", …\}; set url to an address that serves"
            r" a list \(a Mastodon server publishes its blocks at"
            r" /api/v1/instance/domain_blocks\)\.$",
        ),
        (
            # (Mastodon's /api/v1/blocks: the accounts one user blocks)
            b'[{"id": "1", "username": "a", "acct": "a@far.example", "display_name": "A",'
            b' "locked": false, "bot": false}]',
            "mastodon-json",
            r"^The list is a JSON array of objects without \"domain\" \(the first holds 'id',"
            r" 'username', 'acct', 'display_name', 'locked', …\), .*: it names accounts, as"
            r" Mastodon's /api/v1/blocks answers; a list of accounts is read as handles",
        ),
        (GZIP_OF_A_LIST, None, r"^The list is gzip-compressed \(a \.gz file\), not text; publish"),
        (b"PK\x03\x04\x14\x00", None, r"^The list is a ZIP archive, not a list file; publish"),
        (
            _zip(("[Content_Types].xml", ""), ("xl/workbook.xml", "<workbook/>")),
            "mastodon-csv",
            r'^The list is an Excel workbook \(\.xlsx\), not a list file; save it as "CSV UTF-8"'
            r" and publish that file\.$",
        ),
        (
            _zip(("mimetype", "application/vnd.oasis.opendocument.spreadsheet")),
            None,
            r"^The list is a LibreOffice spreadsheet \(\.ods\), not a list file; save it as",
        ),
        (
            b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + bytes(504),
            None,
            r"^The list is an Excel 97-2003 workbook \(\.xls\), not a list file; save it as",
        ),
        (
            "#domain\none.example\n".encode("utf-16"),
            "mastodon-csv",
            r"^The list is UTF-16 text \(as spreadsheet programs save \"Unicode text\"\), not"
            r' UTF-8; save it as "CSV UTF-8" and publish it again\.$',
        ),
    ],
    ids=[
        "web-page",
        "web-page-forced",
        "lfs-pointer",
        "peers",
        "peers-forced",
        "weekly-activity",
        "accounts-json",
        "gzip",
        "zip",
        "xlsx",
        "ods",
        "xls",
        "utf-16",
    ],
)
def test_a_file_that_is_something_else_than_a_list_is_refused_saying_what_it_is(
    data: bytes, forced: str | None, message: str
) -> None:
    with pytest.raises(ListFormatError, match=message):
        parse_list(data, skip_invalid=True, format=forced)


def test_a_list_that_only_mentions_those_things_is_read_as_a_list() -> None:
    """Only what a file begins with tells it is a page or a pointer; and an array of objects with
    names beside them is still Mastodon's JSON, its other items invalid rows."""
    csv_text = (
        "#domain,#public_comment\n"
        "one.example,<html> pages for spam\n"
        "two.example,version https://git-lfs.github.com/spec/v1\n"
    )
    assert [e.value for e in parse_list(csv_text.encode()).entries] == [
        "one.example",
        "two.example",
    ]
    mixed = b'[{"domain": "one.example"}, "two.example"]'
    parsed = parse_list(mixed, skip_invalid=True)
    assert [e.value for e in parsed.entries] == ["one.example"]
    assert [error.line for error in parsed.errors] == [2]


def test_gotosocials_json_shapes_are_mastodons_suspensions() -> None:
    """GoToSocial's export of its domain blocks, and its /api/v1/instance/peers?filter=suspended,
    name no severity (each is a suspension) and say when they suspended; private_comment is never
    read."""
    peers = (
        b'[{"domain": "one.example", "suspended_at": "2020-05-13T13:29:12.000Z",'
        b' "public_comment": "spam; harassment"},'
        b' {"domain": "two.example", "suspended_at": "2020-05-13T13:29:12.000Z"}]'
    )
    export = (
        b'[{"domain": "three.example", "public_comment": "spam", "obfuscate": false,'
        b' "private_comment": "kept to ourselves", "created_by": "01ABCD", "id": "01EFGH"}]'
    )
    read = [parse_list(peers), parse_list(export)]

    assert [(e.value, e.severity, e.labels, e.comment) for p in read for e in p.entries] == [
        ("one.example", "suspend", ("spam", "harassment"), "spam; harassment"),
        ("two.example", "suspend", (), ""),
        ("three.example", "suspend", ("spam",), "spam"),
    ]
    assert {p.format for p in read} == {"mastodon-json"}


def test_gotosocials_answer_of_open_and_blocked_peers_reads_only_the_blocked() -> None:
    """GoToSocial's /api/v1/instance/peers?filter=suspended,open (its own test's shape, with
    neutral names): an item with no suspended_at or silenced_at is an open peer it federates
    with, no entry; an obfuscated one is counted; newer servers' severity and comment are read."""
    answer = json.dumps(
        [
            {"domain": "open-one.example"},
            {"domain": "open-two.example"},
            {
                "domain": "o*g.*u**.t**.*or*t.*r**ev**",
                "suspended_at": "2021-06-09T10:34:55.000Z",
                "public_comment": "placeholder reason",
            },
            {
                "domain": "blocked.example",
                "suspended_at": "2020-05-13T13:29:12.000Z",
                "public_comment": "spam",
            },
            {"domain": "quiet.example", "silenced_at": "2020-05-13T13:29:12.000Z"},
            {
                "domain": "newer.example",
                "suspended_at": "2024-01-01T00:00:00.000Z",
                "severity": "suspend",
                "comment": "harassment",
            },
        ]
    ).encode()

    parsed = parse_list(answer)

    assert [(e.value, e.severity, e.comment) for e in parsed.entries] == [
        ("blocked.example", "suspend", "spam"),
        ("quiet.example", "silence", ""),
        ("newer.example", "suspend", "harassment"),
    ]
    assert (parsed.unblocked, parsed.obfuscated, parsed.errors) == (2, 1, [])
    # Without any suspended_at or silenced_at, an array of domains is a list of blocks.
    plain = parse_list(b'[{"domain": "one.example"}, {"domain": "two.example"}]')
    assert [(e.value, e.severity) for e in plain.entries] == [
        ("one.example", "suspend"),
        ("two.example", "suspend"),
    ]
    assert plain.unblocked == 0


def test_podmods_format_is_detected_and_may_be_forced() -> None:
    assert detect_format(HEADER.encode()) == "podmod"
    assert parse_list(body("pod,a.example,,"), format="podmod").entries == [
        Entry("pod", "a.example", "", "", 2)
    ]
    with pytest.raises(ListFormatError, match=r'format = "podmod" reads; it has the shape of fo'):
        parse_list(b"#domain\na.example\n", format="podmod")


def test_a_quoted_cell_too_long_for_csv_refuses_the_list() -> None:
    data = body("account,a@pod.example,,", 'phrase,"' + "x" * 200_000 + '",,')
    with pytest.raises(ListFormatError, match=r"^Line 3 of the list cannot be read as CSV \(field"):
        parse_list(data, skip_invalid=True)


def test_a_list_reader_yields_what_parse_list_returns() -> None:
    data = body("account,a@pod.example,,", "bogus,x,,", "account,A@pod.example,,", "pod,b.example")
    reader = ListReader(data)
    assert reader.format == "podmod"
    entries = list(reader)
    parsed = parse_list(data, skip_invalid=True)
    assert entries == parsed.entries and reader.errors == parsed.errors
    assert reader.duplicates == parsed.duplicates == 1
    assert reader.errors == [RowError(3, parsed.errors[0].message, "line")]


def test_an_empty_list_with_a_header_is_valid() -> None:
    parsed = parse_list(HEADER.encode())
    assert parsed.entries == [] and parsed.errors == []


def test_published_cells_neutralised_by_csv_safe_read_back_as_written() -> None:
    parsed = parse_list(body("account,spam@pod.example,'-x,'=1+1", "pod,a.example,,'hello"))
    assert [(e.label, e.comment) for e in parsed.entries] == [("-x", "=1+1"), ("", "'hello")]


MASTODON_HEADER = "#domain,#severity,#reject_media,#reject_reports,#public_comment,#obfuscate\n"


@pytest.mark.parametrize(
    ("text", "safe"),
    [
        ("=HYPERLINK(1)", "'=HYPERLINK(1)"),
        ("+1", "'+1"),
        ("-1", "'-1"),
        ("@SUM(A1)", "'@SUM(A1)"),
        ("\tx", "'\tx"),
        ("\rx", "'\rx"),
        ("spam", "spam"),
        ("", ""),
        ("a=b", "a=b"),
    ],
)
def test_csv_safe_neutralises_formula_cells(text: str, safe: str) -> None:
    assert csv_safe(text) == safe


def test_the_fast_path_for_plain_handles_agrees_with_normalise() -> None:
    values = ["spam@pod.example", "a.b-c_d@x.y.z", "x@" + "a" * 63 + ".example", "x@a--b.c"]
    values += ["u" * 200 + "@pod.example", "x@-a.example", "x@a-.example", "x@a..example"]
    parsed = parse_list(body(*(f"account,{v},," for v in values)), skip_invalid=True)
    valid = []
    for value in values:
        with contextlib.suppress(ValueError):
            valid.append(normalise("account", value))
    assert [e.value for e in parsed.entries] == valid
    assert len(valid) == 5 and len(parsed.errors) == 3


# Properties: whatever the input, the parser answers with a result or a ListFormatError.

cells = st.text(alphabet=st.characters(codec="utf-8"), max_size=30) | st.sampled_from(
    ["account", "pod", "url", "#tag", "spam@pod.example", "https://a.example/", "", '"', ","]
)


@settings(max_examples=300, deadline=None)
@given(st.text(alphabet=st.characters(codec="utf-8"), max_size=200))
def test_any_text_parses_or_is_refused_cleanly(text: str) -> None:
    for data in (text.encode(), (HEADER + text).encode(), (MASTODON_HEADER + text).encode()):
        try:
            parse_list(data, skip_invalid=True)
            parse_list(data)
        except ListFormatError:
            pass


@settings(max_examples=300, deadline=None)
@given(st.lists(st.lists(cells, max_size=5), max_size=8))
def test_any_rows_parse_or_are_refused_cleanly(rows: list[list[str]]) -> None:
    out = io.StringIO()
    csv.writer(out).writerows([["kind", "value", "label", "comment"], *rows])
    try:
        parsed = parse_list(out.getvalue().encode(), skip_invalid=True)
    except ListFormatError:
        return
    for entry in parsed.entries:
        assert normalise(entry.kind, entry.value) == entry.value


@settings(max_examples=500, deadline=None)
@given(
    st.sampled_from(KINDS),
    st.text(max_size=40)
    | st.from_regex(
        r"@?[A-Za-z0-9_.-]{1,8}@[a-zA-Zü0-9-]{1,8}\.[a-z]{2,4}(:[0-9]{1,5})?", fullmatch=True
    )
    | st.from_regex(
        r"(https?://)?[a-zA-Zä-]{1,8}\.[a-z]{2,4}(:[0-9]{1,5})?(/[^ ]{0,10})?", fullmatch=True
    )
    | st.from_regex(r"#?[\w-]{1,10}", fullmatch=True),
)
def test_normalise_is_idempotent(kind: str, value: str) -> None:
    try:
        once = normalise(kind, value)
    except ValueError:
        return
    assert normalise(kind, once) == once


def reference_label_tokens(text: str) -> tuple[str, ...]:
    """label_tokens as its contract words it, step by step."""
    tokens: list[str] = []
    text = "".join(char for char in text if unicodedata.category(char) != "Cf")
    for part in re.split(r"[;,]", unicodedata.normalize("NFKC", text).strip()):
        token = re.sub(r"\s+", " ", part.strip()).casefold()
        quoted = [('"', '"'), ("'", "'"), ("“", "”"), ("„", "“"), ("«", "»"), ("‘", "’")]
        if len(token) > 1 and any(token[0] + token[-1] == a + b for a, b in quoted):
            token = token[1:-1].strip()
        if re.match(r"[\w-]+:", token):
            token = re.sub(r"^[\w-]+:", "", token).strip()
            if len(token) > 1 and any(token[0] + token[-1] == a + b for a, b in quoted):
                token = token[1:-1].strip()
        if re.search(r"[^ _-]", token) and len(token) <= 100 and token not in tokens:
            tokens.append(token)
    return tuple(tokens[:32])


@settings(max_examples=500, deadline=None)
@given(
    st.text(max_size=40)
    | st.text(
        alphabet="aB :;,-_\t\u00a0ßİ\"'“”„«»‘’\u200b\u202e\u00ad\uff33\uff1b\u0301", max_size=30
    )
    | st.sampled_from(
        ["iftas:x", "a" * 101, " spam ", "Hate  Speech", ";".join(map(str, range(40)))]
    )
)
def test_label_tokens_keeps_its_contract(text: str) -> None:
    assert label_tokens(text) == reference_label_tokens(text)
    keys = [re.sub(r"[ _-]+", "-", token).strip("-") for token in reference_label_tokens(text)]
    assert label_keys(label_tokens(text)) == tuple(dict.fromkeys(keys))


def test_parsing_leaves_the_garbage_collector_as_it_found_it() -> None:
    assert gc.isenabled()
    parse_list(body("account,a@pod.example,,"))
    assert gc.isenabled()
    gc.disable()
    try:
        parse_list(body("account,a@pod.example,,"))
        assert not gc.isenabled()
    finally:
        gc.enable()
