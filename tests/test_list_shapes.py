"""The domain-list shapes fediverse publishers use (podmod.lists.shapes): every published file
parses to exactly the entries its authors mean, each shape is told from its content, and every
rule of Mastodon's importer holds (severities, labels, obfuscated domains and their digests,
canaries, RapidBlock's unblocked rows), with refusals that name the line or item at fault."""

from __future__ import annotations

import contextlib
import csv
import hashlib
import io
import json
import re
import time
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from podmod.lists import shapes
from podmod.lists.parse import (
    FORMATS,
    NO_FLAGS,
    Details,
    Entry,
    Flags,
    ListFormatError,
    ListReader,
    detect_format,
    merged_details,
    normalise,
    parse_list,
)

FORMATS_DIR = Path(__file__).resolve().parents[2] / "shared" / "lists-formats"
MASTODON_HEADER = "#domain,#severity,#reject_media,#reject_reports,#public_comment,#obfuscate"
PLAIN_HEADER = "domain,severity,reject_media,reject_reports,public_comment,obfuscate"


def pod(
    value: str,
    line: int,
    severity: str = "suspend",
    comment: str = "",
    labels: tuple[str, ...] = (),
    published: str = "",
    flags: Flags = NO_FLAGS,
) -> Entry:
    """The entry a domain-list row becomes: its label is its labels joined by '; ', and it is
    selected by their keys (each label's words joined by one hyphen); `flags`, what else its row
    says (obfuscate, reject_media, reject_reports), kept to publish it again."""
    keys = tuple(dict.fromkeys(re.sub(r"[ _-]+", "-", label).strip("-") for label in labels))
    return Entry("pod", value, "; ".join(labels), comment, line, severity, keys, published, flags)


HIDDEN = Flags(obfuscate=True)  # (a row its source marks obfuscated)
MEDIA = Flags(reject_media=True)  # (Mastodon's "reject media" without a severity: a noop)
ALL_FLAGS = Flags(True, True, True)


def csv_file(header: str, *rows: str, newline: str = "\n") -> bytes:
    return newline.join([header, *rows, ""]).encode()


def digest(domain: str) -> str:
    """Mastodon's digest of an obfuscated domain: the SHA-256 hex of the real one."""
    return hashlib.sha256(domain.encode()).hexdigest()


# The files publishers publish, and what each one means.

EXPECTED: dict[str, tuple[str, list[Entry], int, list[str], int]] = {
    # path: (format, entries, obfuscated, canaries, unblocked)
    "fediblockhole/data-mastodon.json": (
        "mastodon-json",
        [
            pod(
                "example.org",
                1,
                "suspend",
                "A public comment",
                ("a public comment",),
                flags=ALL_FLAGS,
            ),
            pod(
                "example2.org",
                2,
                "silence",
                "Another public comment",
                ("another public comment",),
                flags=ALL_FLAGS,
            ),
            pod(
                "example3.org",
                3,
                "suspend",
                "Yes we love to comment",
                ("yes we love to comment",),
                flags=ALL_FLAGS,
            ),
            pod(
                "example4.org",
                4,
                "noop",
                "Look how many comments we can fit in here",
                ("look how many comments we can fit in here",),
                flags=ALL_FLAGS,
            ),
            pod("example5.org", 5, "suspend", "lack of moderation", ("lack of moderation",)),
            pod("example6.org", 6, "suspend", "anti-trans bigotry", ("anti-trans bigotry",)),
            pod("example7.org", 7, "suspend", "lack of moderation", ("lack of moderation",)),
            pod(
                "example8.org",
                8,
                "suspend",
                "lack of moderation, conspiracy weirdness",
                ("lack of moderation", "conspiracy weirdness"),
            ),
            pod(
                "example9.org", 9, "silence", "alt-right conspiracies", ("alt-right conspiracies",)
            ),
            pod(
                "example15.org",
                10,
                "suspend",
                "cryptocurrency",
                ("cryptocurrency",),
                flags=ALL_FLAGS,
            ),
        ],
        0,
        [],
        0,
    ),
    **{
        f"fediblockhole/data-{name}-01.csv": (
            "domain-csv",
            [
                pod(
                    "public-comment.example.org",
                    2,
                    severity,
                    "This is a public comment",
                    ("this is a public comment",),
                    flags=flags,
                ),
                pod("private-comment.example.org", 3, severity, flags=flags),
                pod(
                    "diff-comment.example.org",
                    4,
                    severity,
                    f"{word} public comment",
                    (label,),
                    flags=flags,
                ),
                pod("2diff-comment.example.org", 5, severity, last, (last.lower(),), flags=flags),
            ],
            0,
            [],
            0,
        )
        for name, severity, word, label, last, flags in [
            ("noop", "noop", "Noop", "noop public comment", "Public duplicate", NO_FLAGS),
            (
                "silences",
                "silence",
                "Silence",
                "silence public comment",
                "Public duplicate",
                NO_FLAGS,
            ),
            (
                "suspends",
                "suspend",
                "Suspend",
                "suspend public comment",
                "Suspend comment 1",
                ALL_FLAGS,
            ),
        ]
    },
    "fediblockhole/demo-allowlist-02.csv": ("domain-csv", [pod("example.org", 2)], 0, [], 0),
    "generated/allowlist.csv": (
        "domain-csv",
        [pod("canary.tier0.example", 2), pod("omicron.example", 3)],
        0,
        [],
        0,
    ),
    "generated/column-order.csv": (
        "domain-csv",
        [
            pod(
                "000delete.this.line.example",
                2,
                "suspend",
                "delete this line if you have read the documentation",
                ("delete this line if you have read the documentation",),
            ),
            pod("delta.example", 3),
        ],
        0,
        [],
        0,
    ),
    "generated/domains.txt": (
        "domains",
        [pod("lambda.example", 1), pod("mu.example", 2)],
        0,
        [],
        0,
    ),
    "generated/export-with-obfuscated-and-noop.csv": (
        "mastodon-csv",
        [
            pod("eta.example", 2, "suspend", "placeholder", ("placeholder",)),
            pod("kappa.example", 5, "noop", "media only", ("media only",), flags=MEDIA),
        ],
        2,
        [],
        0,
    ),
    "generated/labelled-with-canary.csv": (
        "mastodon-csv",
        [
            pod(
                "epsilon.example",
                2,
                "suspend",
                "iftas:hate-speech;online-harassment",
                ("hate-speech", "online-harassment"),
                flags=HIDDEN,
            ),
            pod(
                "zeta.example",
                3,
                "silence",
                "iftas:disinformation;cib;spam",
                ("disinformation", "cib", "spam"),
                flags=HIDDEN,
            ),
        ],
        0,
        ["aud.invalid"],
        0,
    ),
    "generated/rapidblock.json": (
        "rapidblock-json",
        [pod("nu.example", 1, "suspend", "placeholder reason", ("spam",))],
        0,
        [],
        1,
    ),
    "generated/unified-tier-mastodon.csv": (
        "mastodon-csv",
        [
            pod("alpha.example", 2),
            pod("beta.example", 3, "silence", "unmanaged spam", ("unmanaged spam",)),
        ],
        0,
        [],
        0,
    ),
    "generated/unified-tier-plain.csv": (
        "domain-csv",
        [
            pod("alpha.example", 2),
            pod("beta.example", 3, "silence", "Spam", ("spam",)),
            pod("sub.gamma.example", 4),
        ],
        0,
        [],
        0,
    ),
    "mastodon/domain_allows.csv": (
        "mastodon-csv",
        [pod("good.domain", 2), pod("better.domain", 3)],
        0,
        [],
        0,
    ),
    "mastodon/domain_blocks.csv": (
        "mastodon-csv",
        [
            pod("bad.domain", 2, "silence", "bad", ("bad",)),
            pod("worse.domain", 3, "suspend", "worse", ("worse",), flags=ALL_FLAGS),
            pod("reject.media", 4, "noop", "reject media", ("reject media",), flags=MEDIA),
            pod("reject.follows", 5, "silence", "reject follows", ("reject follows",)),
        ],
        0,
        [],
        0,
    ),
    "mastodon/domain_blocks_list.txt": (
        "domains",
        [pod("bad.domain", 1), pod("worse.domain", 2), pod("reject.media", 3)],
        0,
        [],
        0,
    ),
}

needs_formats = pytest.mark.skipif(
    not FORMATS_DIR.is_dir(),
    reason=f"the published list samples are not beside the repository ({FORMATS_DIR})",
)


@needs_formats
def test_every_published_sample_has_its_expected_reading() -> None:
    files = {
        path.relative_to(FORMATS_DIR).as_posix()
        for path in FORMATS_DIR.rglob("*")
        if path.is_file() and path.name != "README.md"
    }
    assert files == set(EXPECTED)


@needs_formats
@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_a_published_sample_parses_to_what_its_authors_mean(name: str) -> None:
    format, entries, obfuscated, canaries, unblocked = EXPECTED[name]
    data = (FORMATS_DIR / name).read_bytes()
    parsed = parse_list(data)
    assert detect_format(data) == format
    assert parsed.format == format
    assert parsed.entries == entries
    assert (parsed.obfuscated, parsed.canaries, parsed.unblocked) == (
        obfuscated,
        canaries,
        unblocked,
    )
    assert parsed.errors == [] and parsed.duplicates == 0
    assert parse_list(data, format=format).entries == entries


@needs_formats
def test_private_comments_of_the_samples_are_never_read() -> None:
    for name in EXPECTED:
        for entry in parse_list((FORMATS_DIR / name).read_bytes()).entries:
            assert "private" not in entry.comment.lower()


# Telling the shape from the content.


@pytest.mark.parametrize(
    ("data", "format"),
    [
        (b"kind,value,label,comment\n", "podmod"),
        (b"#domain,#severity\nx.example,suspend\n", "mastodon-csv"),
        (b"#severity,#domain\n", "mastodon-csv"),
        (b"#domain\n", "mastodon-csv"),
        (b"domain,severity\n", "domain-csv"),
        (b'"severity","domain"\n', "domain-csv"),
        (b"domain,\n", "domain-csv"),
        (b"domain,private_comment\n", "domain-csv"),
        (b"x.example\n", "domains"),
        (b"x.example,\n", "domains"),
        (b"x.example,Silence\n", "domains"),
        (b"# a comment\n\n# another\nx.example\n", "domains"),
        ("bücher.example\n".encode(), "domains"),
        (b"*.wild.example\n", "domains"),
        (b"https://x.example/\n", "domains"),
        (b"  [\n]", "mastodon-json"),
        (b'{"@spec": "https://rapidblock.org/spec/v1/", "blocks": {}}', "rapidblock-json"),
        (b'{"metadata": {"federation": {"mrf_simple": {}}}}', "pleroma-json"),
        (b'{"pleroma": {"metadata": {"federation": {"rejected_instances": {}}}}}', "pleroma-json"),
        (b'{"quarantined_instances": []}', "pleroma-json"),
        (b"\xef\xbb\xbf\r\n#domain,#severity\r\n", "mastodon-csv"),
    ],
)
def test_the_shape_is_told_from_the_content(data: bytes, format: str) -> None:
    assert detect_format(data) == format
    assert parse_list(data).format == format


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"", r"^The list is empty; "),
        (b"\n  \n,,\n", r"^The list is empty; "),
        (b"# only a comment\n", r'^The list holds only comment lines .* set format = "domains"'),
        (
            b"\nhello world\n",
            r"^Line 2 of the list is 'hello world', which is none of the shapes podmod reads "
            r"\(podmod's kind,value,label,comment; a Mastodon or FediBlockHole CSV with a domain or"
            r" #domain column; one domain per line; one account per line, or Mastodon's CSV of"
            r" accounts with an Account address column; Mastodon, RapidBlock, Pleroma or Lemmy"
            r" JSON\); fix the list, or name its shape with the list's format setting \(podmod,"
            r" mastodon-csv, domain-csv, domains, accounts, friendica, mastodon-json,"
            r" rapidblock-json, pleroma-json or lemmy-json\)\.$",
        ),
        (b"value,kind\n", r"^Line 1 of the list is 'value,kind', which is none of the shapes"),
        (b"localhost\n", r"^Line 1 of the list is 'localhost', which is none"),
        (b"<list>" + b"x" * 100, r"^Line 1 of the list is '<list>x{54}…', which is none"),
        (
            b"- hostname: one.example\n  severity: suspend\n",
            r"^Line 1 of the list is '- hostname: one.example': YAML, not a list of fediverse"
            r" servers in a shape podmod reads \(podmod's kind,value,label,comment; .*\); ask its"
            r" publisher for a Mastodon CSV export or one domain per line\.$",
        ),
        (b"---\n", r"^Line 1 of the list is '---': YAML, not a list of fediverse servers"),
        (
            b"#domain;#severity;#public_comment\none.example;silence;spam\n",
            r"^Line 1 of the list is '#domain;#severity;#public_comment': a header whose cells are"
            r" separated by semicolons, not commas \(as spreadsheet programs save CSV in some"
            r" languages\); save the file as CSV with commas and publish it again\.$",
        ),
        (b"#domain;#severity\n", r"^Line 1 of the list is '#domain;#severity': a header whose"),
        (b'\n"Kind";"Value"\n', r"^Line 2 of the list is '\"Kind\";\"Value\"': a header whose"),
        (
            b"# blocks\ndomain\tseverity\none.example\tsilence\n",
            r"^Line 2 of the list is 'domain\\tseverity': a header whose cells are separated by"
            r" tabs, not commas \(a spreadsheet program's tab-separated text\); save the file",
        ),
        (b"# my list; domain names\none.example;suspend\n", r"^Line 2 of the list is 'one.exa"),
        (b"0.0.0.0 one.example\n", r"is '0.0.0.0 one.example': a hosts file \(for DNS blocking\)"),
        (b"! Title: blocks\n||one.example^\n", r"is '! Title: blocks': an ad blocker's filter"),
        (b"address=/one.example/0.0.0.0\n", r"is 'address=/one.example/0.0.0.0': a dnsmasq conf"),
        # A server's page of the servers it blocks, in Markdown, for people to read (one such
        # page says it is "very much not intended as a block list").
        (
            "Servers blocked by pod.example\n=====\n\nPlaceholder text.\n\n| Instance | Status |"
            " Reason |\n| --------- | -- | ------ |\n| one.example | ⛔ | Placeholder |\n".encode(),
            r"^Line 1 of the list is 'Servers blocked by pod.example': the file is a Markdown page"
            r" \(a table or list written for people to read\), not a list file; ask its publisher"
            r" whether they publish the list as a file \(a Mastodon CSV export, or one domain per"
            r" line\) and set url to that; some such pages say they are not meant as a blocklist",
        ),
        (b"|Instance|Status|\n|:---|:---:|\n|one.example|x|\n", r"'\|Instance\|Status\|': the fi"),
        (
            b"Instance | Reason\n--- | ---\none.example | x\n",
            r"'Instance \| Reason': the file is a",
        ),
        (
            b"# Blocked\n\n- one.example\n- two.example\n",
            r"^Line 3 .* '- one.example': the file is",
        ),
        (
            b"Blocked\n-------\n* one.example\n",
            r"^Line 1 .* 'Blocked': the file is a Markdown page",
        ),
        (b'[{"domain": "x.example"},', r"^The list is not valid JSON \(line 1, column 26: "),
        (b"{\n  'blocks': {}\n}", r"^The list is not valid JSON \(line 2, column 3: Expecting"),
        (b"[" * 100_000, r"^The list is not valid JSON \(it is nested too deeply\)"),
        (b"[" + b"1" * 5000 + b"]", r"^The list is not valid JSON \(a number in it has too many"),
        (b'{"servers": []}', r'^The list is a JSON object without "blocks", not RapidBlock'),
        (b'{"blocks": ["x.example"]}', r'^The list is a JSON object whose "blocks" is not an obj'),
        (
            b"domain,count,percent\npod.example,12,40.0\n",
            r"^Line 1 of the list is 'domain,count,percent': a count of the sources that block"
            r" each domain \(an audit, such as Oliphant's domain_audit_file\), not a blocklist;",
        ),
        (
            b'{"group": ":pleroma", "key": ":instance", "value": [{"tuple": [":name", "x"]}]}',
            r"^The list is a Pleroma or Akkoma configuration without its mrf_simple policy \(the"
            r" part of it podmod reads\); ask its publisher for that part, or for a Mastodon CSV",
        ),
        (
            b'{"configs": [{"group": ":pleroma", "key": ":instance", "value": []}]}',
            r"^The list is a Pleroma or Akkoma configuration without its mrf_simple policy",
        ),
    ],
)
def test_a_file_of_no_shape_is_refused_in_one_sentence(data: bytes, message: str) -> None:
    with pytest.raises(ListFormatError, match=message) as refused:
        parse_list(data, skip_invalid=True)
    assert "\n" not in str(refused.value)
    with pytest.raises(ListFormatError):
        detect_format(data)


# Mastodon's and FediBlockHole's CSVs.


def test_a_mastodon_export_becomes_pod_entries_with_severities_and_labels() -> None:
    parsed = parse_list(
        csv_file(
            MASTODON_HEADER + ",#reject_follows",
            "spam.example,suspend,true,true,Spam factory,false,false",
            "Loud.Example,silence,false,false,,false,false",
            "quiet.example,noop,true,false,media only,false,false",
            "spam.example,suspend,true,true,Spam factory,false,false",
        )
    )
    assert parsed.format == "mastodon-csv"
    assert parsed.entries == [
        pod(
            "spam.example",
            2,
            "suspend",
            "Spam factory",
            ("spam factory",),
            flags=Flags(reject_media=True, reject_reports=True),
        ),
        pod("loud.example", 3, "silence"),
        pod("quiet.example", 4, "noop", "media only", ("media only",), flags=MEDIA),
    ]
    assert parsed.duplicates == 1


def test_columns_may_come_in_any_order_with_unknown_ones_ignored() -> None:
    header = '"public_comment", "Extra" ,"obfuscate","Severity","domain","private_comment",digest'
    parsed = parse_list(
        csv_file(
            header,
            '"Spam","x","False","silence","a.example","secret","' + "0" * 64 + '"',
            ',,,,"b.example",,',
        )
    )
    assert parsed.format == "domain-csv"
    assert parsed.entries == [
        pod("a.example", 2, "silence", "Spam", ("spam",)),
        pod("b.example", 3, "noop"),  # (an empty severity cell: FediBlockHole's noop)
    ]
    mastodon = parse_list(csv_file("#public_comment,#whatever,#domain", "c1,x,a.example"))
    assert mastodon.entries == [pod("a.example", 2, "suspend", "c1", ("c1",))]


def test_other_names_of_the_severity_and_public_comment_columns_are_read_as_theirs() -> None:
    """FediBlock-Importer publishes `block_type` for the severity; Mastodon's public API calls the
    public comment `comment`. A header with the usual name as well reads the usual one."""
    importer = parse_list(
        csv_file(
            "domain,block_type,reject_media,reject_reports,private_comment,public_comment,obfuscate",
            "a.example,silence,false,false,ours alone,spam,false",
            "b.example,suspend,false,false,,,false",
        )
    )
    api = parse_list(csv_file("domain,severity,comment,digest", "c.example,noop,spam; scam,"))
    both = parse_list(
        csv_file(
            "#domain,#severity,#block_type,#public_comment,#comment", "d.example,noop,silence,pub,x"
        )
    )

    assert importer.entries == [
        pod("a.example", 2, "silence", "spam", ("spam",)),
        pod("b.example", 3, "suspend"),
    ]
    assert api.entries == [pod("c.example", 2, "noop", "spam; scam", ("spam", "scam"))]
    assert both.entries == [pod("d.example", 2, "noop", "pub", ("pub",))]


def test_the_cariad_audits_columns_are_a_domain_csvs() -> None:
    """IFTAS's CARIAD audit names its domains `observed_domain` and what most large servers do
    about each `majority_action`; how many of them block it (`blocked_by`) is not read."""
    parsed = parse_list(
        csv_file(
            "observed_domain,blocked_by,majority_action",
            "a.example,>=80%,suspend",
            "b.example,>=51%,silence",
            "c.example,DNI,suspend",
        )
    )

    assert parsed.format == "domain-csv"
    assert parsed.entries == [
        pod("a.example", 2, "suspend"),
        pod("b.example", 3, "silence"),
        pod("c.example", 4, "suspend"),
    ]


@pytest.mark.parametrize(
    "word", ["True", "FALSE", "true", "1", "0", "t", "f", "yes", "no", "", "?"]
)
def test_boolean_columns_in_any_spelling_are_never_an_error(word: str) -> None:
    parsed = parse_list(csv_file(PLAIN_HEADER, f"a.example,suspend,{word},{word},Spam,{word}"))
    flags = ALL_FLAGS if word.lower() in ("true", "1", "t", "yes") else NO_FLAGS
    assert parsed.entries == [pod("a.example", 2, "suspend", "Spam", ("spam",), flags=flags)]


def test_a_bom_crlf_and_trailing_commas_are_read_as_plain_rows() -> None:
    data = b"\xef\xbb\xbf" + csv_file(
        "domain,severity,public_comment,,",
        "a.example,silence,Spam,,",
        "",
        "b.example,,,,,,,",
        "c.example",
        newline="\r\n",
    )
    parsed = parse_list(data)
    assert parsed.entries == [
        pod("a.example", 2, "silence", "Spam", ("spam",)),
        pod("b.example", 4, "noop"),  # (under a severity column, none is FediBlockHole's noop)
        pod("c.example", 5, "noop"),
    ]


@pytest.mark.parametrize("hash_", ["", "#"])
def test_a_comment_in_a_boolean_column_is_the_rows_comment(hash_: str) -> None:
    # One of Oliphant's exports names public_comment fifth, but its rows carry it third and a
    # reject_reports `false` fifth: the comment is the text of the boolean column, and a
    # boolean where the comment should be is none (it was the label "false" of 374 rows).
    header = "domain,severity,reject_media,reject_reports,public_comment,obfuscate"
    if hash_:
        header = ",".join("#" + name for name in header.split(","))
    parsed = parse_list(
        csv_file(
            header,
            "a.example,suspend,Spam ring,False,False,False",
            "b.example,silence,False,harassment,,False",
            "c.example,suspend,False,False,in place,True",
            "d.example,suspend,one,two,,False",
            "e.example,suspend,False,False,,False",
            "f.example,suspend,,false,false,false",
            "g.example,silence,,FALSE,TRUE,FALSE",
            "h.example,suspend,,false,true,false",
        )
    )
    assert parsed.entries == [
        pod("a.example", 2, "suspend", "Spam ring", ("spam ring",)),
        pod("b.example", 3, "silence", "harassment", ("harassment",)),
        pod("c.example", 4, "suspend", "in place", ("in place",), flags=HIDDEN),
        pod("d.example", 5),  # two texts in boolean columns: which is the comment is unknown
        pod("e.example", 6),
        pod("f.example", 7),
        pod("g.example", 8, "silence"),
        pod("h.example", 9),
    ]


@pytest.mark.parametrize(
    "data",
    [
        b"domain\na.example\nb.example\n",
        b"domain,\na.example,\nb.example,\n",
        b'"domain"\n"a.example"\n"b.example"\n',
        b"#domain\na.example\nb.example\n",
        b"domain,private_comment\na.example,note to self\nb.example,\n",
    ],
)
def test_an_allowlist_is_a_list_of_one_column(data: bytes) -> None:
    parsed = parse_list(data)
    assert parsed.entries == [pod("a.example", 2), pod("b.example", 3)]


def test_severities_in_any_case_and_the_words_of_other_software() -> None:
    rows = ["a.example,Suspend", "b.example,LIMIT", "c.example,reject", "d.example, noop "]
    rows += ["e.example,", "f.example,Silence"]
    parsed = parse_list(csv_file("domain,severity", *rows))
    severities = [(e.value, e.severity) for e in parsed.entries]
    assert severities == [
        ("a.example", "suspend"),
        ("b.example", "silence"),
        ("c.example", "suspend"),
        ("d.example", "noop"),
        ("e.example", "noop"),  # (an empty cell, as FediBlockHole reads it: a block of nothing)
        ("f.example", "silence"),
    ]


def test_domain_cells_are_normalised_idn_ports_and_urls_included() -> None:
    rows = ["Bücher.Example,silence", "https://pod.example/,suspend", "pod.example:8443,suspend"]
    rows += ["www.pod.example.,suspend", " spaced.example ,suspend", "xn--bcher-kva.example,noop"]
    parsed = parse_list(csv_file("domain,severity", *rows).replace(b"\n", b"\r\n"))
    assert [(e.value, e.line) for e in parsed.entries] == [
        ("xn--bcher-kva.example", 2),
        ("pod.example", 3),
        ("pod.example:8443", 4),
        ("www.pod.example", 5),
        ("spaced.example", 6),
    ]
    assert parsed.duplicates == 1  # the punycode spelling of bücher.example


def test_obfuscated_domains_are_counted_or_matched_by_their_digest() -> None:
    header = "#domain,#severity,#public_comment,#digest,#obfuscate"
    parsed = parse_list(
        csv_file(
            header,
            "sp**m.example,suspend,obfuscated,",
            "*.wild.example,silence,obfuscated wildcard,,true",
            f"ba*.example,silence,known,{digest('bad.example').upper()}",
            "ba*.example,silence,bad digest,abc",
            f"plain.example,suspend,digest ignored,{digest('other.example')}",
            f"ba*.example,suspend,again,{digest('bad.example')}",
        )
    )
    assert parsed.entries == [
        pod(  # (the repeat of the digest adds its comment and heavier severity)
            "sha256:" + digest("bad.example"),
            4,
            "suspend",
            "known; again",
            ("known", "again"),
            published="ba*.example",
        ),
        pod("plain.example", 6, "suspend", "digest ignored", ("digest ignored",)),
    ]
    assert (parsed.obfuscated, parsed.duplicates, parsed.errors) == (3, 1, [])


def test_an_obfuscated_row_never_refuses_a_list_whatever_else_it_holds() -> None:
    parsed = parse_list(csv_file("domain,severity,public_comment", "x*y.example,bogus,a\tb\x07"))
    assert (parsed.entries, parsed.obfuscated, parsed.errors) == ([], 1, [])
    # Known by its digest, its text is kept to be shown: as long as a host name at most, without
    # an escape sequence a terminal would act on (`podmod lists diff`) or another control.
    hostile = "ba*\x1b]0;Retitled\x07*.example\u202e" + "x" * 300
    parsed = parse_list(
        csv_file("#domain,#severity,#digest", f"{hostile},suspend,{digest('bad.example')}")
    )
    [entry] = parsed.entries
    assert (entry.value, entry.published) == (
        "sha256:" + digest("bad.example"),
        ("ba**.example" + "x" * 300)[:253],
    )
    assert parsed.errors == []


def test_canary_rows_are_never_entries_and_name_their_host() -> None:
    parsed = parse_list(
        csv_file(
            MASTODON_HEADER,
            "epsilon.example,suspend,FALSE,FALSE,IFTAS:Hate-Speech; Online  Harassment,TRUE",
            "aud.invalid,suspend,FALSE,FALSE,,TRUE",
            "check.example,suspend,FALSE,FALSE,iftas:canary,TRUE",
            "Sub.Aud.Invalid.,bogus severity,FALSE,FALSE,,TRUE",
            "aud.invalid,suspend,FALSE,FALSE,again,TRUE",
        )
    )
    assert parsed.entries == [
        pod(
            "epsilon.example",
            2,
            "suspend",
            "IFTAS:Hate-Speech; Online  Harassment",
            ("hate-speech", "online harassment"),
            flags=HIDDEN,
        )
    ]
    assert parsed.canaries == ["aud.invalid", "check.example", "sub.aud.invalid"]
    assert parsed.errors == []


def test_comments_are_checked_and_read_back_from_csv_safe_cells() -> None:
    rows = ["a.example,suspend,'=1+1", "b.example,suspend,bad\x07bell", "c.example,suspend,"]
    rows += ["d.example,suspend," + "x" * 2001, 'e.example,suspend,"two\nlines"', "f.example"]
    parsed = parse_list(csv_file("domain,severity,public_comment", *rows), skip_invalid=True)
    assert [(e.value, e.comment, e.line) for e in parsed.entries] == [
        ("a.example", "=1+1", 2),
        ("c.example", "", 4),
        ("d.example", "x" * 1999 + "…", 5),  # (a comment too long is cut, its entry kept)
        ("f.example", "", 8),
    ]
    assert [(e.line, e.message) for e in parsed.errors] == [
        (3, "the comment contains a control character (such as a line break)"),
        (6, "the comment contains a control character (such as a line break)"),
    ]


def test_a_comment_cut_for_its_length_keeps_the_labels_it_leaves_whole() -> None:
    """A long reason (a real server's, several merged, ran to 2,664 characters) is cut to 2,000:
    the label the cut goes through is none (`h…` would select nothing, and show a reason nobody
    gave); a cut that falls right before a separator keeps the label before it."""
    prose = "placeholder words " * 110 + "x" * 10  # (1,990 characters: too long to be a label)
    rows = [f"a.example,suspend,{prose}; spam; harassment", f"b.example,suspend,{prose}; spam; x;y"]
    parsed = parse_list(csv_file("domain,severity,public_comment", *rows))

    through, before_separator = parsed.entries
    assert through.comment == f"{prose}; spam; h…" and through.labels == ("spam",)
    assert before_separator.comment == f"{prose}; spam; x…"
    assert before_separator.labels == ("spam", "x")


STRAY_QUOTE = '"'
# A header and a row (its number, and text at the start of a cell) of each CSV shape that reads
# quoted cells, with the format it is.
QUOTED_SHAPES = [
    (MASTODON_HEADER, "h{}.example,suspend,false,false,{}spam,false", "mastodon-csv"),
    ("domain,severity,public_comment", "h{}.example,silence,{}spam", "domain-csv"),
    ("kind,value,label,comment", "account,u{}@pod.example,spam,{}placeholder", "podmod"),
    ("Account address,Hide notifications", "{1}u{0}@pod.example,true", "accounts"),
]


@pytest.mark.parametrize(("header", "row", "format"), QUOTED_SHAPES)
@pytest.mark.parametrize("stray", [5, 40], ids=["amid", "last-row"])
def test_a_quote_never_closed_is_its_rows_error_and_the_rows_after_it_are_read(
    header: str, row: str, format: str, stray: int
) -> None:
    """A stray quote, as hand-edited lists have: read on as the csv module reads it, its cell
    would hold every line after it, and with skip_invalid a list of 40 rows became one of 4."""
    rows = [row.format(number, STRAY_QUOTE if number == stray else "") for number in range(1, 41)]
    data = csv_file(header, *rows)

    with pytest.raises(ListFormatError) as refused:
        parse_list(data)
    assert str(refused.value).startswith(
        f'1 invalid row: line {stray + 1}: a quote (") opens a cell that is never closed'
    )

    parsed = parse_list(data, skip_invalid=True)
    assert parsed.format == format
    assert [e.line for e in parsed.entries] == [n + 1 for n in range(1, 41) if n != stray]
    assert [e.line for e in parsed.errors] == [stray + 1]


@pytest.mark.parametrize(("header", "row", "format"), QUOTED_SHAPES)
def test_a_stray_quote_closed_further_down_hides_no_rows(header: str, row: str, format: str):
    """Two stray quotes, on lines 6 and 31: read as the csv module reads them, the cell the first
    opens runs on to the second and holds the 24 rows between (with skip_invalid, a list of 40
    rows became one of 15). It is not read on over a line that reads as a row of its own."""
    rows = [row.format(number, STRAY_QUOTE if number == 5 else "") for number in range(1, 41)]
    rows[29] += STRAY_QUOTE  # (which closes a quoted cell)
    data = csv_file(header, *rows)

    with pytest.raises(ListFormatError) as refused:
        parse_list(data)
    assert str(refused.value).startswith(
        '1 invalid row: line 6: a quote (") opens a cell that would run on over line 7, a row of'
        " its own"
    )

    parsed = parse_list(data, skip_invalid=True)
    assert parsed.format == format
    assert [e.line for e in parsed.entries] == [n + 1 for n in range(1, 41) if n != 5]
    assert [e.line for e in parsed.errors] == [6]


def test_a_quoted_cell_still_runs_on_to_the_line_that_closes_it() -> None:
    """A line break inside quotes is read as the csv module reads it (the comment is then refused
    for it); only a quote no later line closes is a row of its own."""
    rows = ['a.example,suspend,"two', 'lines",false', 'b.example,silence,"spam",false']
    parsed = parse_list(csv_file(MASTODON_HEADER, *rows), skip_invalid=True)
    assert [(e.value, e.line) for e in parsed.entries] == [("b.example", 4)]
    assert [(e.line, e.message) for e in parsed.errors] == [
        (2, "the comment contains a control character (such as a line break)")
    ]


def test_quoted_cells_with_commas_and_quotes_are_read_as_the_csv_module_reads_them() -> None:
    rows = ['a.example,suspend,"spam, bots",false', '"b.example","silence","say ""hi""",""']
    rows += ['"c,d.example",suspend,,', 'e.example,noop,"spam, bots",false']
    parsed = parse_list(
        csv_file("domain,severity,public_comment,obfuscate", *rows), skip_invalid=True
    )
    assert parsed.entries == [
        pod("a.example", 2, "suspend", "spam, bots", ("spam", "bots")),
        pod("b.example", 3, "silence", 'say "hi"', ('say "hi"',)),
        pod("e.example", 5, "noop", "spam, bots", ("spam", "bots")),
    ]
    assert [e.line for e in parsed.errors] == [4]  # 'c,d.example' is no host


def test_invalid_rows_refuse_the_list_naming_their_lines() -> None:
    rows = ["ok.example,suspend,,", "not a domain,suspend,,", "ok2.example,bogus,,"]
    rows += ["ok3.example,suspend,,,,,,x", ",suspend,,", "ok4.example,silence,a,b,c"]
    data = csv_file("domain,severity,public_comment,obfuscate", *rows)
    with pytest.raises(ListFormatError) as refused:
        parse_list(data)
    assert str(refused.value) == (
        "5 invalid rows: line 3: 'not a domain' is not a valid host name such as pod.example;"
        " line 4: the severity 'bogus' is not suspend, silence or noop; line 5: the row has 8"
        " columns; the header names 4; line 6: the domain is empty; line 7: the row has 5"
        " columns; the header names 4; fix the list or set skip_invalid = true for it."
    )
    parsed = parse_list(data, skip_invalid=True)
    assert parsed.entries == [pod("ok.example", 2)]
    assert [e.line for e in parsed.errors] == [3, 4, 5, 6, 7]


def test_row_errors_name_the_columns_wherever_the_domain_column_is() -> None:
    data = csv_file("severity,domain", "suspend,a.example,x", "suspend,,", ",", "suspend,b.example")
    parsed = parse_list(data, skip_invalid=True)
    assert parsed.entries == [pod("b.example", 5)]
    assert [(e.line, e.message) for e in parsed.errors] == [
        (2, "the row has 3 columns; the header names 2"),
        (3, "the domain is empty"),
    ]


def test_a_mixed_list_reads_every_kind_of_row() -> None:
    rows = [
        "alpha.example,suspend,false,false,iftas:spam,false,false",
        "beta.example,silence,false,false,,false,false",
        "gam**.example,suspend,false,false,obfuscated,true,false",
        "delta.example,noop,true,false,media only,false,false",
        "aud.invalid,suspend,false,false,iftas:canary,true,false",
        "Alpha.Example,silence,false,false,again,false,false",
        "bücher.example,suspend,false,false,,false,false",
        "",
        "bad_host.example,suspend,false,false,,false,false",
    ]
    parsed = parse_list(csv_file(MASTODON_HEADER + ",#reject_follows", *rows), skip_invalid=True)
    assert parsed.entries == [
        pod("alpha.example", 2, "suspend", "iftas:spam; again", ("spam", "again")),
        pod("beta.example", 3, "silence"),
        pod("delta.example", 5, "noop", "media only", ("media only",), flags=MEDIA),
        pod("xn--bcher-kva.example", 8),
    ]
    assert (parsed.obfuscated, parsed.canaries, parsed.duplicates) == (1, ["aud.invalid"], 1)
    assert [(e.line, e.unit) for e in parsed.errors] == [(10, "line")]


def test_rows_read_once_per_distinct_text_agree_with_rows_read_whole(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    rows = [
        f"h{i}.example,{['suspend', 'silence', 'x'][i % 3]},false,c{i % 4},," for i in range(30)
    ]
    data = csv_file("domain,severity,obfuscate,public_comment", *rows)
    remembered = parse_list(data, skip_invalid=True)
    monkeypatch.setattr(shapes, "_TAILS_KEPT", 0)
    monkeypatch.setattr(shapes, "_COMMENTS_KEPT", 0)
    read_whole = parse_list(data, skip_invalid=True)
    assert remembered.entries == read_whole.entries and len(remembered.entries) == 20
    assert remembered.errors == read_whole.errors


def test_a_leading_wildcard_is_the_domain_and_everything_under_it_unless_obfuscated() -> None:
    # Real lists (imported from Pleroma, or written for Mastodon by hand) write `*.pod.example`
    # for the pod and its subdomains (Misskey needs no wildcard: it blocks by suffix); Mastodon's
    # obfuscation never starts with `*`, and a row that says it is obfuscated is one.
    header = "#domain,#severity,#public_comment,#obfuscate"
    parsed = parse_list(
        csv_file(
            header,
            "*.wild.example,suspend,wildcard,false",
            "*.both.example,silence,the wildcard,false",
            "both.example,suspend,the plain row,false",
            "*.hidden.example,suspend,obfuscated,true",
            "*ends.example,suspend,a pattern,false",
            "glob.*,suspend,a pattern,false",
            "*.*.twice.example,suspend,a pattern,false",
        )
    )
    assert parsed.entries == [
        pod("both.example", 4, "suspend", "the plain row", ("the plain row",)),
        pod("wild.example", 2, "suspend", "wildcard", ("wildcard",)),
    ]
    # (the one marked obfuscated; `*end.example`, `glob.*`, `*.*.twice.example`: patterns)
    assert (parsed.obfuscated, parsed.patterns, parsed.duplicates, parsed.errors) == (1, 3, 1, [])
    lines = parse_list(b"*.wild.example\n*.Other.Example,silence,true,true,true\n")
    assert lines.format == "domains"
    assert [(e.value, e.severity) for e in lines.entries] == [
        ("wild.example", "suspend"),
        ("other.example", "silence"),
    ]
    hidden = '[{"domain": "*.wild.example", "severity": "suspend", "obfuscate": true}]'
    shown = '[{"domain": "*.wild.example", "severity": "suspend", "obfuscate": false}]'
    assert (parse_list(hidden.encode()).entries, parse_list(hidden.encode()).obfuscated) == ([], 1)
    assert [e.value for e in parse_list(shown.encode()).entries] == ["wild.example"]


def test_real_exports_oddities_read_as_their_authors_mean_them() -> None:
    # Seen in published files: a defanged domain, `null` for no comment, two exports end to end
    # (the header again), a header-less export's columns after the severity.
    header = "#domain,#severity,#public_comment"
    parsed = parse_list(
        csv_file(
            header,
            "defanged[.]example,suspend,placeholder",
            "nothing.example,silence,null",
            header,
            "again.example,suspend,",
        )
    )
    assert [(e.value, e.line, e.comment) for e in parsed.entries] == [
        ("defanged.example", 2, "placeholder"),
        ("nothing.example", 3, ""),
        ("again.example", 5, ""),
    ]
    assert parsed.errors == []
    lines = parse_list(b"first.example,suspend,true,true,false\nsecond.example,Silence,x,y\n")
    assert lines.format == "domains"
    assert [(e.value, e.severity) for e in lines.entries] == [
        ("first.example", "suspend"),
        ("second.example", "silence"),
    ]
    half = parse_list(b"#domain\nhalf.]example\nother[.example\n")
    assert [e.value for e in half.entries] == ["half.example", "other.example"]
    broken = parse_list(b"#domain\nbad]example\n", skip_invalid=True)
    assert [(e.line, e.message) for e in broken.errors] == [
        (2, "'bad]example' is not a valid host name such as pod.example")
    ]


# Two files saved with a byte order mark (a spreadsheet's "CSV UTF-8"), put end to end with `cat`:
# the second's mark starts a line, before its header again. (shape, header, a row of each file)
CONCATENATED = [
    ("mastodon-csv", "#domain,#severity,#public_comment", "{}.example,suspend,spam"),
    ("domain-csv", "domain,severity,public_comment", "{}.example,silence,spam"),
    ("podmod", "kind,value,label,comment", "pod,{}.example,spam,"),
    ("accounts", "Account address,Show boosts", "someone@{}.example,true"),
    ("domains", "# one domain a line", "{}.example"),
]


@pytest.mark.parametrize(("shape", "header", "row"), CONCATENATED)
def test_two_files_with_byte_order_marks_put_end_to_end_read_as_one(
    shape: str, header: str, row: str
) -> None:
    def saved(name: str) -> str:
        return f"\ufeff{header}\r\n{row.format(name)}\r\n"

    parsed = parse_list((saved("first") + saved("second")).encode())

    assert parsed.format == shape
    assert [(e.value.split("@")[-1], e.line) for e in parsed.entries] == [
        ("first.example", 2),
        ("second.example", 4),
    ]
    assert parsed.errors == []


def test_a_lists_severity_setting_is_the_severity_of_rows_that_name_none() -> None:
    def severities(data: bytes) -> list[tuple[str, str]]:
        reader = ListReader(data, severity="silence")
        return [(value, details.severity) for _, value, _, details in reader.rows()]

    assert severities(b"a.example\nb.example,suspend\nc.example,noop\n") == [
        ("a.example", "silence"),
        ("b.example", "suspend"),
        ("c.example", "noop"),
    ]
    # A CSV without a severity column: the setting's. An empty cell under one names a severity
    # as its shape's authors read it, never the setting's (test_list_interop).
    assert severities(b"#domain,#public_comment\na.example,spam\n") == [("a.example", "silence")]
    assert severities(b"domain,severity\na.example,\nb.example,suspend\nc.example, \n") == [
        ("a.example", "noop"),
        ("b.example", "suspend"),
        ("c.example", "noop"),
    ]
    assert severities(b"domain\na.example\n") == [("a.example", "silence")]
    assert severities(b'[{"domain": "a.example"}]') == [("a.example", "silence")]
    assert severities(b'{"blocks": {"a.example": {"isBlocked": true}}}') == [
        ("a.example", "silence")
    ]
    default = ListReader(b"a.example\n")
    assert [details.severity for *_, details in default.rows()] == ["suspend"]


def test_a_header_less_list_of_accounts_is_read_as_account_entries() -> None:
    # Mastodon's export of an account's blocks: one user@host per line, no header.
    data = b"spammer@far.example\r\n@Other@Pod.Example:8443\r\n\r\n# a note\r\n"
    data += b"spammer@far.example\r\nthird@far.example,ignored\r\nnot a handle\r\n"
    parsed = parse_list(data, skip_invalid=True)
    assert parsed.format == "accounts"
    assert [(e.kind, e.value, e.line) for e in parsed.entries] == [
        ("account", "spammer@far.example", 1),
        ("account", "other@pod.example:8443", 2),
        ("account", "third@far.example", 6),
    ]
    assert parsed.duplicates == 1
    assert [e.line for e in parsed.errors] == [7]
    with pytest.raises(ListFormatError, match="line 7"):
        parse_list(data)
    forced = parse_list(b"far.example\n", format="accounts", skip_invalid=True)
    assert forced.entries == [] and "not a diaspora* handle" in forced.errors[0].message


@pytest.mark.parametrize(
    "data",
    [
        # Mastodon's export of an account's mutes
        b"Account address,Hide notifications\nspammer@far.example,true\n@Other@Pod.Example,false\n",
        # of its follows: a Languages cell quoted for its commas
        b"Account address,Show boosts,Notify on new posts,Languages\n"
        b'spammer@far.example,true,false,"en,de"\nother@pod.example,true,false,\n',
        # a CSV naming the column second: a first cell with a comma quoted
        b'List name,Account address\n"Far, and away",spammer@far.example\nNear,other@pod.example\n',
        # the address quoted in the first column, as a spreadsheet program may save it
        b'Account address,Hide notifications\n"spammer@far.example",true\nother@pod.example,\n',
        # what Mastodon's import of blocks takes: the header alone, a BOM and CRLF
        "\ufeffAccount address\r\nspammer@far.example\r\nother@pod.example\r\n".encode(),
    ],
)
def test_mastodons_csv_of_accounts_is_read_by_its_account_address_column(data) -> None:
    parsed = parse_list(data)

    assert parsed.format == "accounts"
    assert [(e.kind, e.value, e.line) for e in parsed.entries] == [
        ("account", "spammer@far.example", 2),
        ("account", "other@pod.example", 3),
    ]
    assert parsed.errors == []


def test_mastodons_csv_of_accounts_reports_rows_without_an_address_by_line() -> None:
    data = b"# shared mutes\nList name,Account address\n"
    data += b'"A list\nover two lines",spammer@far.example\nEmpty,\nList name,Account address\n'
    data += b"Bad,not a handle\nLast,other@pod.example\nLast,Other@Pod.Example\n"

    parsed = parse_list(data, skip_invalid=True)

    # (the header again, two exports put end to end, is no row; the repeated account merged)
    assert [(e.value, e.line) for e in parsed.entries] == [
        ("spammer@far.example", 3),
        ("other@pod.example", 8),
    ]
    assert [e.line for e in parsed.errors] == [5, 7]
    assert parsed.errors[0].message == "the row has no Account address cell"
    assert parsed.duplicates == 1
    with pytest.raises(ListFormatError, match="line 5"):
        parse_list(data)
    assert parse_list(data, format="accounts", skip_invalid=True).entries == parsed.entries


# One domain per line.


def test_a_file_of_one_domain_per_line_skips_comments_and_blank_lines() -> None:
    data = b"# Garden Fence, updated daily\r\n\r\nalpha.example\r\n  # indented\r\n"
    data += "Beta.Example,\r\n*.hidden.example\r\nbücher.example\r\n\r\naud.invalid\r\n".encode()
    data += b"alpha.example\r\nnot valid\r\n"
    parsed = parse_list(data, skip_invalid=True)
    assert parsed.format == "domains"
    assert parsed.entries == [
        pod("alpha.example", 3),
        pod("beta.example", 5),
        pod("xn--bcher-kva.example", 7),
        pod("hidden.example", 6),  # (a wildcard: read after the others)
    ]
    assert (parsed.obfuscated, parsed.canaries, parsed.duplicates) == (0, ["aud.invalid"], 1)
    assert [(e.line, e.message) for e in parsed.errors] == [
        (11, "'not valid' is not a valid host name such as pod.example")
    ]


def test_a_domain_per_line_may_carry_its_severity_after_a_comma() -> None:
    # Oliphant's first published file: `domain,severity` rows without a header.
    data = b"one.example,suspend\ntwo.example, Silence\nthree.example\nfour.example,noop,\n"
    data += b"five.example,bogus\n.tk,silence\n"
    parsed = parse_list(data, skip_invalid=True)
    assert parsed.format == "domains"
    assert parsed.entries == [
        pod("one.example", 1),
        pod("two.example", 2, "silence"),
        pod("three.example", 3),
        pod("four.example", 4, "noop"),
        pod("tk", 6, "silence"),
    ]
    assert [(e.line, e.message) for e in parsed.errors] == [
        (5, "the severity 'bogus' is not suspend, silence or noop")
    ]


def test_friendicas_published_blocklist_is_read_with_its_reasons_as_comments() -> None:
    # What a Friendica server serves at /blocklist/domain/download (PHP's fputcsv: a pattern and
    # its reason on each line, no header, a cell quoted where it needs to be).
    data = b'*.bad.example,"spam, bots"\nworse.example,harassment\nempty.example,\n'
    data += b'*bots*,bots\n"quoted.example","Placeholder ""reason"""\nsilenced.example,silence\n'
    data += b"third.example,two,cells\n"

    parsed = parse_list(data, skip_invalid=True)

    assert parsed.format == "domains"
    assert parsed.entries == [
        pod("worse.example", 2, "suspend", "harassment", ("harassment",)),
        pod("empty.example", 3),
        pod("quoted.example", 5, "suspend", 'Placeholder "reason"', ('placeholder "reason"',)),
        # (a reason that is a severity is read as one)
        pod("silenced.example", 6, "silence"),
        pod("bad.example", 1, "suspend", "spam, bots", ("spam", "bots")),
    ]
    assert parsed.patterns == 1  # (*bots*: a pattern names no host)
    assert [(e.line, e.message) for e in parsed.errors] == [
        (7, "the severity 'two' is not suspend, silence or noop")
    ]
    # Friendica's patterns are shell patterns: `?` and a class of characters name no host either,
    # and never refuse the list (a defanged dot and an IPv6 address are no class).
    globs = b"spam?.example,bots\n[ab]spam.example,bots\npod[.]example,x\n[2001:db8::1],x\n"
    assert detect_format(globs) == "domains"
    shell = parse_list(globs)
    assert [e.value for e in shell.entries] == ["pod.example", "[2001:db8::1]"]
    assert (shell.patterns, shell.errors) == (2, [])
    # A file whose first cell after a domain is a severity names severities: the others too.
    strict = parse_list(b"one.example,silence\ntwo.example,harassment\n", skip_invalid=True)
    assert [(e.line, e.message) for e in strict.errors] == [
        (2, "the severity 'harassment' is not suspend, silence or noop")
    ]
    # Quotes the csv module cannot read, in the cells after a severity, stay ignored as before.
    export = parse_list(b'one.example,silence,false,"unclosed\ntwo.example,noop,x"y\n')
    assert [(e.value, e.severity) for e in export.entries] == [
        ("one.example", "silence"),
        ("two.example", "noop"),
    ]


def test_format_friendica_reads_friendicas_patterns_as_friendica_matches_them() -> None:
    # The same file as one domain per line reads as Mastodon reads domains (each with its
    # subdomains); with format = "friendica", as Friendica matches its patterns: a plain domain
    # that host alone, `*.` and `*name` the domain with its subdomains (the part of them podmod
    # can name), other patterns none; the second cell always a reason.
    data = b'plain.example,spam\n*.sub.example,"bots, spam"\n*glob.example,silence\n'
    data += b"*bots*,x\nspam?.example,y\n*com,z\n*,everything\nported.example:8443,\n"

    parsed = parse_list(data, format="friendica")

    assert parsed.format == "friendica"
    assert parsed.entries == [
        pod("=plain.example", 1, "suspend", "spam", ("spam",)),
        pod("=ported.example:8443", 8),
        pod("sub.example", 2, "suspend", "bots, spam", ("bots", "spam")),
        pod("glob.example", 3, "suspend", "silence", ("silence",)),
    ]
    assert (parsed.patterns, parsed.errors) == (4, [])
    assert detect_format(data) == "domains"
    quiet = ListReader(data, format="friendica", severity="silence")
    assert next(iter(quiet)).severity == "silence"  # (a row's severity is the list's)
    with pytest.raises(ListFormatError, match="not Friendica's domain patterns, one per line"):
        parse_list(b"#domain,#severity\nx.example,suspend\n", format="friendica")


@pytest.mark.parametrize("cell", ["[" * 100_000, "[a" * 50_000, "?[" * 50_000])
def test_a_hostile_row_of_brackets_is_read_in_linear_time(cell: str) -> None:
    """Reading Friendica's patterns looks for a class of characters in every domain that is no
    plain host: a row of 100,000 `[` took a pattern that allowed `[` inside a class 29 s (each
    `[` a start that ran to the end); read in linear time it takes milliseconds. The bound is
    hundreds of times that, for a loaded machine."""
    started = time.perf_counter()
    parsed = parse_list(f"first.example\n{cell},x\n".encode(), skip_invalid=True)
    seconds = time.perf_counter() - started
    assert [e.value for e in parsed.entries] == ["first.example"]
    assert seconds < 5, f"{seconds:.1f} s to read one row of {len(cell):,} characters"


def test_whole_top_level_domains_and_ip_addresses_are_entries_as_mastodon_exports_write_them():
    # Rows of real exports that a reading of two-label hosts refused, and so the whole list with
    # them: a top-level domain with or without its dot, names of one label, a bare IP v6 address.
    data = (
        b"domain,severity,public_comment\n.cf,silence,\ncf,suspend,\nonelabel,suspend,\n"
        b"2001:db8:140:2113::2,suspend,\n198.51.100.4,silence,\n2001:db8:140:2113:,suspend,\n"
        b"..tk,suspend,\n.tk,silence,\n"
    )
    parsed = parse_list(data, skip_invalid=True)
    # `.cf` and `cf` are one domain: the row written plainly is the one that counts, as in
    # Mastodon, where `.cf` names no host (a dotted row alone is read: `.tk` below).
    assert parsed.entries == [
        pod("cf", 3),
        pod("onelabel", 4),
        pod("[2001:db8:140:2113::2]", 5),
        pod("198.51.100.4", 6, "silence"),
        pod("tk", 9, "silence"),
    ]
    assert parsed.duplicates == 1
    assert [(e.line, e.message) for e in parsed.errors] == [
        (7, "'2001:db8:140:2113:' is not a valid IP v6 address"),
        (8, "'..tk' is not a valid host name such as pod.example"),
    ]


# Mastodon's and RapidBlock's JSON.


def test_mastodon_json_from_the_admin_api_and_the_public_api() -> None:
    items = [
        {"domain": "a.example", "severity": "silence", "public_comment": "Spam, bots"},
        {"domain": "b.example", "severity": "suspend", "comment": "public", "digest": "x"},
        {"domain": "b*d.example", "severity": "suspend", "digest": digest("bad.example")},
        {"domain": "o*.example", "severity": "suspend", "digest": None, "comment": None},
        {"domain": "c.example", "private_comment": "never read", "public_comment": None},
        {"domain": "aud.invalid", "severity": "suspend", "comment": "iftas:canary"},
        {"domain": "canary.example", "comment": "IFTAS:Canary"},
        {"domain": "A.Example", "severity": "noop"},
    ]
    parsed = parse_list(json.dumps(items).encode())
    assert parsed.format == "mastodon-json"
    assert parsed.entries == [
        pod("a.example", 1, "silence", "Spam, bots", ("spam", "bots")),
        pod("b.example", 2, "suspend", "public", ("public",)),
        pod("sha256:" + digest("bad.example"), 3, published="b*d.example"),
        pod("c.example", 5),
    ]
    assert (parsed.obfuscated, parsed.canaries, parsed.duplicates) == (
        1,
        ["aud.invalid", "canary.example"],
        1,
    )


def test_invalid_json_items_refuse_the_list_naming_their_numbers() -> None:
    items: list[object] = [{"domain": "ok.example"}, "x.example", {"severity": "suspend"}]
    items += [{"domain": 3}, {"domain": "x.example", "severity": "ban"}, {"domain": "bad host"}]
    items += [
        {"domain": "y.example", "comment": ["a"]},
        {"domain": "z.example", "comment": "\ud800"},
    ]
    data = json.dumps(items).encode()
    with pytest.raises(ListFormatError, match=r"^7 invalid items: item 2: the item is not an obj"):
        parse_list(data, max_errors_shown=1)
    parsed = parse_list(data, skip_invalid=True)
    assert parsed.entries == [pod("ok.example", 1)]
    assert [(e.unit, e.line) for e in parsed.errors] == [("item", n) for n in range(2, 9)]
    assert parsed.errors[1].message == "the domain is empty"
    assert parsed.errors[3].message == "the severity 'ban' is not suspend, silence or noop"


def test_rapidblock_blocks_are_suspensions_labelled_by_their_tags() -> None:
    blocks = {
        "a.example": {"isBlocked": True, "reason": "spam, bots", "tags": ["Spam", "rb:bots"]},
        "b.example": {"isBlocked": False, "reason": "unblocked", "tags": []},
        "c.example": {"isBlocked": True},
        "aud.invalid": {"isBlocked": True, "tags": []},
        "d.example": {"isBlocked": True, "tags": ["canary"]},
        "e*.example": {"isBlocked": True, "reason": "hidden"},
        "f.example": {"isBlocked": "yes"},
        "g.example": {"isBlocked": True, "tags": "spam"},
        "h.example": ["not", "an", "object"],
    }
    data = json.dumps({"@spec": "https://rapidblock.org/spec/v1/", "blocks": blocks}).encode()
    parsed = parse_list(data, skip_invalid=True)
    assert parsed.format == "rapidblock-json"
    assert parsed.entries == [
        pod("a.example", 1, "suspend", "spam, bots", ("spam", "bots")),
        pod("c.example", 3),
    ]
    assert (parsed.unblocked, parsed.obfuscated, parsed.canaries) == (
        1,
        1,
        ["aud.invalid", "d.example"],
    )
    assert [(e.unit, e.line) for e in parsed.errors] == [("item", 7), ("item", 8), ("item", 9)]


# What a Pleroma or Akkoma server publishes of its federation policy (MRF transparency on), as its
# nodeinfo carries it; the same object sits under pleroma.metadata in /api/v1/instance.
PLEROMA_FEDERATION = {
    "enabled": True,
    "exclusions": False,
    "mrf_policies": ["SimplePolicy", "HashtagPolicy"],
    "mrf_simple": {
        "accept": ["friend.example"],
        "reject": ["bad.example", "*.wild.example", "ex*mple.org", "Both.Example"],
        "media_removal": ["both.example", "pics.example"],
        "federated_timeline_removal": ["loud.example"],
        "followers_only": [],
        "report_removal": ["noise.example"],
        "reject_deletes": [],
    },
    "mrf_simple_info": {
        "reject": {
            "bad.example": {"reason": "spam; harassment"},
            "Both.Example": {"reason": "hate-speech"},
        },
        "media_removal": {"both.example": {"reason": "gore"}},
    },
    "quarantined_instances": ["leaky.example"],
    "quarantined_instances_info": {
        "quarantined_instances": {"leaky.example": {"reason": "placeholder reason"}}
    },
    "rejected_instances": {"gone.example": {"reason": "placeholder"}},
}


@pytest.mark.parametrize(
    "document",
    [
        {
            "version": "2.1",
            "software": {"name": "akkoma", "version": "3.13.2"},
            "metadata": {"nodeName": "placeholder", "federation": PLEROMA_FEDERATION},
        },
        {
            "uri": "pleroma.example",
            "version": "2.7.2 (compatible; Pleroma 2.7.0)",
            "pleroma": {"metadata": {"federation": PLEROMA_FEDERATION}},
        },
        PLEROMA_FEDERATION,
    ],
    ids=["nodeinfo", "instance-api", "federation-alone"],
)
def test_pleromas_federation_policy_is_read_policy_by_policy(document) -> None:
    parsed = parse_list(json.dumps(document).encode())

    assert parsed.format == "pleroma-json"
    # As Pleroma's MRF matches them, a plain domain names that host alone (`=`), a wildcard the
    # domain and everything under it.
    assert parsed.entries == [
        pod("=gone.example", 1, "suspend", "placeholder", ("placeholder",)),
        pod("=bad.example", 2, "suspend", "spam; harassment", ("spam", "harassment")),
        # (under reject and media_removal: read as a suspension, both reasons merged, and its
        # media rejected, as Mastodon's reject_media, for `lists publish` to write)
        pod(
            "=both.example",
            5,
            "suspend",
            "hate-speech; gore",
            ("hate-speech", "gore"),
            flags=MEDIA,
        ),
        pod("=loud.example", 6, "silence"),
        pod("=pics.example", 8, "noop", flags=MEDIA),
        pod("=noise.example", 9, "noop", flags=Flags(reject_reports=True)),
        pod("=leaky.example", 10, "noop", "placeholder reason", ("placeholder reason",)),
        pod("wild.example", 3),
    ]
    # accept is the server's allowlist, never read; ex*mple.org is obfuscated
    assert (parsed.obfuscated, parsed.duplicates, parsed.errors) == (1, 1, [])


def test_pleromas_federation_policy_reports_bad_items_by_number() -> None:
    federation = {
        "mrf_simple": {"reject": ["a.example", 7, "not a domain", "b.example"]},
        "mrf_simple_info": {"reject": {"b.example": {"reason": ["not", "text"]}}},
    }
    data = json.dumps({"metadata": {"federation": federation}}).encode()

    parsed = parse_list(data, skip_invalid=True)

    assert [e.value for e in parsed.entries] == ["=a.example"]
    assert [(e.unit, e.line, e.message) for e in parsed.errors] == [
        ("item", 2, "the reject item '7' is not a domain"),
        ("item", 3, "'not a domain' is not a valid host name such as pod.example"),
        ("item", 4, "the reason reject gives 'b.example' is not text"),
    ]
    with pytest.raises(ListFormatError, match="item 2"):
        parse_list(data)
    bad = {"metadata": {"federation": {"mrf_simple": {"reject": "a.example"}}}}
    with pytest.raises(
        ListFormatError,
        match=r"^The list's mrf_simple\.reject is not a list of domains with their reasons; fix",
    ):
        parse_list(json.dumps(bad).encode())


def test_a_pleroma_configurations_mrf_simple_is_read_as_the_policy_it_publishes() -> None:
    """Some podmins publish their server's configuration (as its admin API and exports write it)
    as their blocklist: its mrf_simple reads as the published policy would."""
    simple = {
        "group": ":pleroma",
        "key": ":mrf_simple",
        "value": [
            {"tuple": [":media_removal", [{"tuple": ["pics.example", "placeholder"]}]]},
            {"tuple": [":reject", [{"tuple": ["bad.example", "spam"]}, "older.example", 7]]},
            {"tuple": [":federated_timeline_removal", [{"tuple": ["*.loud.example", ""]}]]},
            {"tuple": [":accept", [{"tuple": ["friend.example", ""]}]]},
        ],
    }
    expected = [
        pod("=bad.example", 1, "suspend", "spam", ("spam",)),
        pod("=older.example", 2),
        pod("=pics.example", 5, "noop", "placeholder", ("placeholder",), flags=MEDIA),
        pod("loud.example", 4, "silence"),
    ]
    for document in (simple, {"configs": [{"group": ":pleroma", "key": ":x"}, simple]}):
        parsed = parse_list(json.dumps(document).encode(), skip_invalid=True)

        assert parsed.format == "pleroma-json"
        assert parsed.entries == expected
        assert [(e.line, e.message) for e in parsed.errors] == [
            (3, "the reject item '7' is not a domain")
        ]


def test_a_long_reason_is_cut_and_its_entry_kept() -> None:
    federation = {
        "mrf_simple": {"reject": ["bad.example"]},
        "mrf_simple_info": {"reject": {"bad.example": {"reason": "spam, " + "x" * 2500}}},
    }
    [entry] = parse_list(json.dumps(federation).encode()).entries

    assert entry.comment == ("spam, " + "x" * 2500)[:1999] + "…"
    assert len(entry.comment) == 2000 and entry.labels[0] == "spam"


@pytest.mark.parametrize(
    ("document", "server"),
    [
        (
            {"version": "2.0", "software": {"name": "mastodon", "version": "4.3.0"}},
            "the nodeinfo of a server running 'mastodon 4.3.0'",
        ),
        (
            {
                "version": "2.1",
                "software": {"name": "akkoma", "version": "3.13.2"},
                "metadata": {"federation": {"enabled": True}},  # (transparency off)
            },
            "the nodeinfo of a server running 'akkoma 3.13.2'",
        ),
        (
            {"uri": "mastodon.example", "version": "4.3.0", "title": "placeholder"},
            "a server's description of itself (such as /api/v1/instance)",
        ),
    ],
)
def test_a_servers_nodeinfo_without_published_blocks_is_refused_saying_where_blocks_are(
    document, server
) -> None:
    with pytest.raises(ListFormatError) as refused:
        parse_list(json.dumps(document).encode())

    assert str(refused.value) == (
        f"The list is {server}, which publishes no blocks: Pleroma and Akkoma publish theirs there"
        " only with MRF transparency on, Mastodon at /api/v1/instance/domain_blocks; set url to"
        " an address that serves a list."
    )


def test_a_servers_well_known_nodeinfo_is_refused_naming_the_newest_nodeinfo_it_links() -> None:
    schema = "http://nodeinfo.diaspora.software/ns/schema/"
    links = [
        {"rel": schema + "2.0", "href": "https://pleroma.example/nodeinfo/2.0.json"},
        {"rel": schema + "2.1", "href": "https://pleroma.example/nodeinfo/2.1.json"},
        {"rel": "https://example.org/other", "href": "https://pleroma.example/other"},
    ]

    with pytest.raises(ListFormatError) as refused:
        parse_list(json.dumps({"links": links}).encode())

    assert str(refused.value) == (
        "The list is a server's /.well-known/nodeinfo, which only links its nodeinfo; set url to"
        " the nodeinfo, 'https://pleroma.example/nodeinfo/2.1.json', where Pleroma and Akkoma"
        " publish their blocks (Mastodon publishes its at /api/v1/instance/domain_blocks)."
    )
    with pytest.raises(ListFormatError, match='without "blocks"'):
        parse_list(json.dumps({"links": links[2:]}).encode())


# A format named in the config.


def test_a_forced_format_reads_what_detection_would_not() -> None:
    parsed = parse_list(b"localhost:3000\npod.example\n", format="domains")
    assert [e.value for e in parsed.entries] == ["localhost:3000", "pod.example"]
    assert parse_list(b"# emptied\n", format="domains").entries == []
    assert parse_list(b"", format="domains").format == "domains"
    assert parse_list(b"[]", format="mastodon-json").entries == []


@pytest.mark.parametrize(
    ("data", "format", "message"),
    [
        (
            b"domain,severity\n",
            "mastodon-csv",
            r"^Line 1 of the list is 'domain,severity', not a header with a #domain column, which"
            r' format = "mastodon-csv" reads; it has the shape of format = "domain-csv"; fix the'
            r" list, or change its format\.$",
        ),
        (
            b"#domain\nx.example\n",
            "domains",
            r"not one domain per line \(or a line of domains separated by commas\), which format =",
        ),
        (b"x.example\n", "podmod", r'not the header kind,value,label,comment, which format = "pod'),
        (b"x.example\n", "rapidblock-json", r"^Line 1 of the list is \'x.example\', not Rapid"),
        (b"[]", "rapidblock-json", r'^The list is JSON, not RapidBlock.*"mastodon-json"'),
        (b'{"blocks": {}}', "mastodon-json", r"^The list is JSON, not a JSON array of Mastodon"),
        (b"[", "mastodon-json", r"^The list is not valid JSON"),
        (b"\n", "mastodon-json", r"^The list is empty, not a JSON array of Mastodon domain blocks"),
        (b"", "domain-csv", r"^The list is empty"),
        (b"x.example\n", "csv", r"^'csv' is not a list format podmod reads \(podmod, mastodon-csv"),
    ],
)
def test_a_forced_format_that_does_not_fit_is_refused_clearly(
    data: bytes, format: str, message: str
) -> None:
    with pytest.raises(ListFormatError, match=message):
        parse_list(data, format=format)


# A Lemmy 0.19 server's /api/v3/federated_instances (its fields, neutral names): the servers it
# knows, those it allows, and those it blocks, each with its software and federation state.
LEMMY_ANSWER = {
    "federated_instances": {
        "linked": [
            {
                "id": 1,
                "domain": "known.example",
                "published": "2023-06-01T00:00:00Z",
                "software": "mastodon",
                "version": "4.2.0",
                "federation_state": None,
            },
            {"id": 2, "domain": "blocked.example", "published": "2023-06-01T00:00:00Z"},
        ],
        "allowed": [{"id": 3, "domain": "allowed.example", "published": "2023-06-01T00:00:00Z"}],
        "blocked": [
            {
                "id": 2,
                "domain": "blocked.example",
                "published": "2023-06-01T00:00:00Z",
                "updated": None,
                "software": "misskey",
                "version": "13.14.2",
                "federation_state": {"instance_id": 2, "fail_count": 0},
            },
            {"id": 4, "domain": "Other.Example", "published": "2023-07-01T00:00:00Z"},
            {"id": 5, "published": "2023-07-01T00:00:00Z"},
        ],
    }
}


def test_a_lemmy_servers_federated_instances_are_read_for_those_it_blocks() -> None:
    """Lemmy and PieFed publish the servers they block in their /api/v3/federated_instances,
    beside every server they know (linked) and those they allow: only the blocked are entries,
    each a suspension (as Lemmy defederates a server whole)."""
    data = json.dumps(LEMMY_ANSWER).encode()

    parsed = parse_list(data, skip_invalid=True)

    assert detect_format(data) == "lemmy-json"
    assert [(e.value, e.severity) for e in parsed.entries] == [
        ("blocked.example", "suspend"),
        ("other.example", "suspend"),
    ]
    assert [(error.line, error.unit) for error in parsed.errors] == [(3, "item")]
    assert {e.severity for e in ListReader(data, severity="silence")} == {"silence"}
    # (refused when the file is opened, before a row is read or stored)
    with pytest.raises(ListFormatError, match=r"^The list is a Lemmy server's answer with no fe"):
        ListReader(b'{"federated_instances": null}')
    with pytest.raises(ListFormatError, match=r"^The list's federated_instances has no list of b"):
        parse_list(b'{"federated_instances": {"linked": []}}')


def test_every_format_can_be_forced_on_its_own_shape() -> None:
    samples = {
        "podmod": b"kind,value,label,comment\npod,a.example,,\n",
        "mastodon-csv": b"#domain\na.example\n",
        "domain-csv": b"domain\na.example\n",
        "domains": b"a.example\n",
        "accounts": b"a@a.example\n",
        "mastodon-json": b'[{"domain": "a.example"}]',
        "rapidblock-json": b'{"blocks": {"a.example": {"isBlocked": true}}}',
        "pleroma-json": b'{"mrf_simple": {"reject": ["*.a.example"]}}',
        "friendica": b"*a.example,placeholder\n",  # (never told: it is "domains" to the eye)
        "lemmy-json": b'{"federated_instances": {"blocked": [{"domain": "a.example"}]}}',
    }
    assert set(samples) == set(FORMATS)
    for format, data in samples.items():
        parsed = parse_list(data, format=format)
        value = "a@a.example" if format == "accounts" else "a.example"
        assert (parsed.format, [e.value for e in parsed.entries]) == (format, [value])
        assert detect_format(data) == ("domains" if format == "friendica" else format)
    audit = parse_list(b"domain,count,percent\npod.example,12,40.0\n", format="domain-csv")
    assert [(e.value, e.severity) for e in audit.entries] == [("pod.example", "suspend")]


def test_a_list_reader_streams_entries_and_counts_as_it_goes() -> None:
    data = csv_file("domain", "a.example", "b*.example", "aud.invalid", "a.example", "c.example")
    reader = ListReader(data)
    assert reader.format == "domain-csv"
    seen = []
    for entry in reader:
        seen.append((entry.value, reader.obfuscated, list(reader.canaries), reader.duplicates))
    assert seen == [("a.example", 0, [], 0), ("c.example", 1, ["aud.invalid"], 1)]
    with pytest.raises(RuntimeError):
        list(reader)


# Properties: whatever the input, a result or a ListFormatError, and no entry of text with '*'.

domain_cells = st.text(alphabet=st.characters(codec="utf-8"), max_size=20) | st.sampled_from(
    [
        *("a.example", "*.b.example", "ex**le.org", "aud.invalid", "bücher.example", "", '"', ","),
        *("#", ".a.example", "example", ".example", "..example", ".aud.invalid", "2001:db8::2"),
        "[::1]:80",
    ]
)
other_cells = st.text(max_size=12) | st.sampled_from(
    ["suspend", "Silence", "noop", "limit", "TRUE", "false", "iftas:canary", "spam, bots", '"']
)


def _entries_are_sound(parsed_entries: list[Entry]) -> None:
    for entry in parsed_entries:
        assert "*" not in entry.value
        value = entry.value.removeprefix("=") if entry.kind == "pod" else entry.value
        if value.startswith("sha256:"):
            assert len(value) == 71 and entry.published and value == entry.value
        else:
            assert normalise(entry.kind, value) == value
        if entry.kind == "pod" and entry.severity:
            assert entry.severity in ("suspend", "silence", "noop")
            # the label shown is its tokens; what selects it, their keys
            tokens = entry.label.split("; ") if entry.label else []
            keys = (re.sub(r"[ _-]+", "-", token).strip("-") for token in tokens)
            assert entry.labels == tuple(dict.fromkeys(keys))


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=300) | st.text(max_size=200).map(str.encode))
def test_any_bytes_parse_or_are_refused_cleanly(data: bytes) -> None:
    for prefix in (b"", b"#domain,#severity,#public_comment,#digest\n", b"domain\n", b"[", b"{"):
        for format in (None, "domains", "mastodon-json"):
            with contextlib.suppress(ListFormatError):
                _entries_are_sound(
                    parse_list(prefix + data, skip_invalid=True, format=format).entries
                )


_JSON_KEYS = st.sampled_from(
    [
        "mrf_simple",
        "mrf_simple_info",
        "reject",
        "accept",
        "reason",
        "tuple",
        "group",
        "key",
        "value",
        "configs",
        "metadata",
        "federation",
        "pleroma",
        "quarantined_instances",
        "quarantined_instances_info",
        "rejected_instances",
        "links",
        "rel",
        "href",
        "software",
        "name",
        "blocks",
        "domain",
    ]
)
_JSON_LEAVES = st.none() | st.booleans() | st.integers() | st.text(max_size=20)
_JSON_LEAVES |= st.sampled_from([":pleroma", ":mrf_simple", ":reject", "bad.example", "*.w.ex"])
_JSON_TREES = st.recursive(
    _JSON_LEAVES,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(_JSON_KEYS, inner, max_size=4),
    max_leaves=30,
)


@settings(max_examples=300, deadline=None)
@given(_JSON_TREES, st.dictionaries(st.sampled_from(["reject", "media_removal"]), _JSON_TREES))
def test_any_json_near_the_published_shapes_reads_or_is_refused_cleanly(document, simple) -> None:
    """What a hostile server may serve in place of its nodeinfo or configuration: read, entries
    sound, or refused in one sentence; never another exception."""
    configuration = {"group": ":pleroma", "key": ":mrf_simple", "value": []}
    configuration["value"] = [{"tuple": [":" + name, v]} for name, v in simple.items()]
    nodeinfo = {"metadata": {"federation": {"mrf_simple": simple, "mrf_simple_info": document}}}
    for value in (document, nodeinfo, configuration, {"configs": [document, configuration]}):
        with contextlib.suppress(ListFormatError):
            _entries_are_sound(parse_list(json.dumps(value).encode(), skip_invalid=True).entries)


def _domain_csv(header: list[str], rows: list[tuple]) -> str:
    """A domain CSV of these columns; each row's domain, severity, comment and obfuscate."""
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(header)
    for domain, *rest in rows:
        cells = dict(zip(["severity", "public_comment", "obfuscate"], rest, strict=True))
        cells["domain"] = domain
        writer.writerow([cells.get(name, "") for name in header])
    return out.getvalue()


@settings(max_examples=300, deadline=None)
@given(
    st.permutations(["domain", "severity", "public_comment", "obfuscate", "digest", "x"]),
    st.lists(st.tuples(domain_cells, other_cells, other_cells, other_cells), max_size=8),
)
def test_any_domain_csv_rows_give_sound_entries(header: list[str], rows: list[tuple]) -> None:
    try:
        parsed = parse_list(_domain_csv(header, rows).encode(), skip_invalid=True)
    except ListFormatError:
        return
    _entries_are_sound(parsed.entries)
    assert len(parsed.entries) + len(parsed.errors) + parsed.duplicates + parsed.obfuscated <= len(
        rows
    )


def _text_both_ways(data: bytes) -> tuple[tuple, tuple]:
    """A domain CSV's rows as COPY text written by the reading itself (ListReader.text), and by
    formatting the rows it reads; each with what its reading counted."""
    from podmod.lists.versions import CopyRows

    def read(write) -> tuple:
        reader = ListReader(data)
        text = write(reader, CopyRows(prefix="7\t", suffix="\t3\n"))
        counts = (reader.errors, reader.duplicates, reader.obfuscated, reader.canaries)
        return text, counts

    return (
        read(lambda reader, rows: "".join(reader.text(rows))),
        read(lambda reader, rows: "".join(rows.row(*row) for row in reader.rows())),
    )


def test_a_csv_written_as_text_while_read_is_its_rows_formatted() -> None:
    # Over more than one block, with rows read whole (a comment over two lines, refused) whose
    # first lines read alike, a repeat, an obfuscated row and a canary.
    rows = [f"h{i}.example,{['suspend', 'silence'][i % 2]},c{i % 3},false" for i in range(25_000)]
    rows[10] = 'multi.example,suspend,"first part'
    rows[11] = 'of it",false'
    rows[12] = 'other.example,suspend,"first part'
    rows[13] = 'not the same",false'
    rows += ["h5.example,suspend,c2,false", "ex**le.org,noop,,true", "aud.invalid,suspend,,false"]
    data = csv_file("#domain,#severity,#public_comment,#obfuscate", *rows)

    by_text, by_rows = _text_both_ways(data)

    assert by_text == by_rows
    text, (errors, duplicates, obfuscated, canaries) = by_text
    assert text.count("\n") == 25_000 - 4
    assert '7\tpod\th24999.example\t25001\tc0\tc0\tsilence\t{"c0"}\t\t3\n' in text
    assert [error.line for error in errors] == [12, 14]
    assert (duplicates, obfuscated, canaries) == (1, 1, ["aud.invalid"])


@settings(max_examples=300, deadline=None)
@given(
    st.permutations(["domain", "severity", "public_comment", "obfuscate", "digest", "x"]),
    st.lists(st.tuples(domain_cells, other_cells, other_cells, other_cells), max_size=8),
    st.lists(st.text(alphabet='a.,"\n\r\\\t*x', max_size=12), max_size=4),
)
def test_any_domain_csv_written_as_text_while_read_is_its_rows_formatted(
    header: list[str], rows: list[tuple], raw: list[str]
) -> None:
    data = (_domain_csv(header, rows) + "\n".join(raw)).encode()
    try:
        by_text, by_rows = _text_both_ways(data)
    except ListFormatError:
        return
    assert by_text == by_rows


@settings(max_examples=500, deadline=None)
@given(
    st.from_regex(r"[a-z0-9-]{1,12}(\.[a-z0-9-]{1,12}){1,3}", fullmatch=True)
    | st.text(alphabet="abz09.-*_:/A", max_size=70)
)
def test_plain_hosts_read_as_they_are_agree_with_normalise(host: str) -> None:
    try:
        expected = normalise("pod", host)
    except ValueError:
        expected = None
    if len(host) <= 63 and shapes._PLAIN_HOST.fullmatch(host):
        assert expected == host and not host.endswith(".invalid")
    parsed = parse_list(f"domain\n{host}\n".encode(), skip_invalid=True)
    values = [e.value for e in parsed.entries]
    if expected is not None and "*" not in host and not expected.endswith(".invalid"):
        assert values == [expected]


@pytest.mark.parametrize(
    "data",
    [
        csv_file(
            "domain,severity,public_comment",
            "twice.example,noop,first reason",
            "once.example,silence,",
            "Twice.Example.,silence,second reason",
            "twice.example,noop,first reason",
        ),
        b"twice.example,noop\nonce.example,silence\ntwice.example,silence\n",
        json.dumps(
            [
                {"domain": "twice.example", "severity": "noop", "comment": "first reason"},
                {"domain": "once.example", "severity": "silence"},
                {"domain": "TWICE.example", "severity": "silence", "comment": "second reason"},
            ]
        ).encode(),
    ],
    ids=["domain-csv", "domains", "mastodon-json"],
)
def test_a_repeated_domain_adds_its_reasons_and_heavier_severity_to_the_first(data: bytes) -> None:
    parsed = parse_list(data)
    [twice, once] = parsed.entries
    first = 2 if parsed.format == "domain-csv" else 1  # (its first row's line, or JSON item)
    assert (twice.value, twice.line, twice.severity) == ("twice.example", first, "silence")
    assert (once.value, once.line, once.severity) == ("once.example", first + 1, "silence")
    if parsed.format != "domains":
        assert (twice.comment, twice.label, twice.labels) == (
            "first reason; second reason",
            "first reason; second reason",
            ("first-reason", "second-reason"),
        )
    assert parsed.duplicates == (2 if parsed.format == "domain-csv" else 1)


def test_an_entry_keeps_its_first_32_labels_from_a_comment_or_repeated_rows() -> None:
    """A hostile list could give an entry thousands of labels, in one comment or over rows that
    repeat its domain (each merge compared them all: 20,000 such rows took 3.3 s to read)."""
    many = ";".join(f"label{n}" for n in range(100))
    rows = [f"one.example,suspend,{many}"]
    rows += [f"two.example,silence,label{n}" for n in range(3000)]
    parsed = parse_list(csv_file("domain,severity,public_comment", *rows))

    [one, two] = parsed.entries
    first_32 = tuple(f"label{n}" for n in range(32))
    assert one.labels == first_32 and two.labels == first_32
    assert parsed.duplicates == 2999


def test_merged_details_keep_the_first_where_both_would_be_too_long() -> None:
    first = Details("a", "x" * 1990, "silence", ("a",))
    merged = merged_details(first, Details("b" * 99, "another reason", "noop", ("b" * 99,)))
    assert merged == Details("a", "x" * 1990, "silence", ("a", "b" * 99))
    assert merged_details(merged, Details("", "", "suspend")).severity == "suspend"
    assert merged_details(first, first) == first


@pytest.mark.parametrize(
    ("row", "comment", "labels"),
    [
        ("spam, harassment", "spam, harassment", ("spam", "harassment")),
        (
            '""free speech", conspiracy, misinformation"',
            '"free speech", conspiracy, misinformation',
            ("free speech", "conspiracy", "misinformation"),
        ),
        ('"quoted", and not', '"quoted", and not', ("quoted", "and not")),
    ],
    ids=["unquoted-commas", "quotes-inside-quotes", "quoted-then-more"],
)
def test_a_comment_with_commas_nobody_quoted_is_read_whole(
    row: str, comment: str, labels: tuple[str, ...]
) -> None:
    # A hand-edited export: the comment's commas give the row more cells than the header names.
    # Its other cells are the domain, the severity and booleans, so the comment is what lies
    # between them (Ruby's CSV, Mastodon's importer, refuses the whole file at such a row).
    rows = [
        f"first.example,suspend,false,false,{row},false",
        f"second.example,silence,true,false,{row},true,",
        "third.example,suspend,false,false,plain,false",
    ]
    parsed = parse_list(csv_file(MASTODON_HEADER, *rows))
    assert parsed.entries == [
        pod("first.example", 2, "suspend", comment, labels),
        # (its flags where the header says, counted from the end: kept to publish it again)
        pod("second.example", 3, "silence", comment, labels, flags=Flags(True, True, False)),
        pod("third.example", 4, "suspend", "plain", ("plain",)),
    ]


@pytest.mark.parametrize(
    ("header", "row"),
    [
        # Its cells after the comment are not booleans: where the comment ends cannot be told.
        (MASTODON_HEADER, "x.example,suspend,false,false,spam, harassment,maybe"),
        # A quote before the comment: the cells are not where the header says.
        (MASTODON_HEADER, 'x.example,suspend,false,"false",spam, harassment,false'),
        # Another text column beside the comment (FediBlockHole's private_comment).
        ("domain,severity,public_comment,private_comment", "x.example,suspend,spam, harm,a"),
    ],
)
def test_a_row_with_more_cells_than_its_header_is_refused_when_its_comment_cannot_be_told(
    header: str, row: str
) -> None:
    with pytest.raises(ListFormatError, match=r"line 2: the row has [0-9]+ columns; the header"):
        parse_list(csv_file(header, row))


def test_a_quoted_comment_running_over_lines_is_never_read_back_from_its_first_line() -> None:
    # The csv module reads the open quote on to the next line: the row is not one line, and its
    # text is not split again (the next line's row would be lost in a comment).
    data = csv_file(
        "domain,severity,public_comment,obfuscate",
        'x.example,suspend,"a, b,false',
        'y.example",suspend,c,false',
    )
    with pytest.raises(ListFormatError, match=r"line 2: the row has 6 columns; the header names 4"):
        parse_list(data)
