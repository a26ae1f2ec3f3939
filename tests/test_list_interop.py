"""podmod's lists beside the tools that write and read the same files (Mastodon, GoToSocial,
FediBlockHole, kmyblue, Fediseer, Misskey): what their rows say is read as they mean it, and what
`podmod lists publish` writes says again what its source said — a domain the source hid stays
hidden, its media and report rejections and public comment as written, no noop becomes a block —
while what podmod stores of a list is the same as before."""

from __future__ import annotations

import json

import pytest

from podmod.lists import publish, versions
from podmod.lists.parse import Flags, ListFormatError, ListReader, parse_list

MASTODON_HEADER = "#domain,#severity,#reject_media,#reject_reports,#public_comment,#obfuscate"


def mastodon_file(*rows: str) -> bytes:
    return "\n".join([MASTODON_HEADER, *rows, ""]).encode()


def rows_of(rendered: publish.Rendered) -> list[str]:
    return rendered.body.decode().splitlines()


# A Mastodon export as a podmin republishes it: one domain its source hid, a media-only rule, a
# bare record, a silence with its media rejected, a noop exemption under it, and public comments
# as Mastodon admins write them.
EXPORT = mastodon_file(
    "hidden.example,suspend,true,true,harassment,true",
    "record.example,noop,false,false,a record,false",
    "media.example,noop,true,false,media only,false",
    "quiet.example,silence,true,false,unmoderated,false",
    "sub.quiet.example,noop,false,false,,false",
    'one.example,suspend,false,false,"Harassment, Spam",false',
    "two.example,suspend,false,false,iftas:hate-speech;spam,false",
    'three.example,suspend,false,false,"Receipts: https://receipts.example/post/1",false',
    "five.example,suspend,false,false,-,false",
    'six.example,silence,false,false,"=a formula, a neighbour\'s words",false',
)


def republished(*rows: str) -> list[str]:
    """The rows `podmod lists publish --format mastodon` writes of these rows of EXPORT."""
    written = rows_of(publish.render_mastodon(parse_list(EXPORT)))
    return [row for row in written if row.split(",")[0] in rows]


def test_a_domain_its_source_hid_stays_hidden_for_whoever_imports_it() -> None:
    # D1: Mastodon shows an #obfuscate row starred on its /about page and API, and imports the
    # flag; GoToSocial too.
    rendered = publish.render_mastodon(parse_list(EXPORT))

    assert republished("hidden.example") == ["hidden.example,suspend,true,true,harassment,true"]
    assert rendered.hidden == 1


def test_public_comments_are_republished_as_their_source_wrote_them() -> None:
    # D2: not the label podmod makes of them (lower-case, a namespace or `Word:` cut, `;`).
    assert republished("one.example", "two.example", "three.example", "quiet.example") == [
        "quiet.example,silence,true,false,unmoderated,false",
        'one.example,suspend,false,false,"Harassment, Spam",false',
        "two.example,suspend,false,false,iftas:hate-speech;spam,false",
        "three.example,suspend,false,false,Receipts: https://receipts.example/post/1,false",
    ]


def test_public_comments_carry_no_spreadsheet_apostrophe() -> None:
    # D3: Mastodon and GoToSocial show the comment as written; only podmod's reader undoes it.
    assert republished("five.example", "six.example") == [
        "five.example,suspend,false,false,-,false",
        'six.example,silence,false,false,"=a formula, a neighbour\'s words",false',
    ]


def test_a_noop_that_limits_nothing_is_left_out_and_counted() -> None:
    # D4: as Mastodon's own export (DomainBlock.with_limitations); GoToSocial's settings import
    # and Mastodon's user import read no severity, and would block it.
    rendered = publish.render_mastodon(parse_list(EXPORT))

    assert republished("record.example", "sub.quiet.example") == []
    assert rendered.left_out == {publish.NOOP_MASTODON: 2}
    assert len(rows_of(rendered)) == 1 + 8


def test_media_and_report_rejections_are_republished() -> None:
    # D5: a Mastodon "reject media" rule stays one, the one noop Mastodon's export writes.
    assert republished("hidden.example", "media.example", "quiet.example") == [
        "hidden.example,suspend,true,true,harassment,true",
        "media.example,noop,true,false,media only,false",
        "quiet.example,silence,true,false,unmoderated,false",
    ]


def test_what_podmods_mastodon_file_says_reads_back_as_it_was_read() -> None:
    source = parse_list(EXPORT)
    again = parse_list(publish.render_mastodon(source).body)

    kept = [e for e in source.entries if e.value not in ("record.example", "sub.quiet.example")]
    assert [(e.value, e.severity, e.comment, e.labels, e.flags) for e in again.entries] == [
        (e.value, e.severity, e.comment, e.labels, e.flags) for e in kept
    ]


def test_podmods_own_format_leaves_out_and_counts_what_its_source_hid() -> None:
    # podmod's format has no obfuscate column: written plainly, a domain would be named to the
    # world by a list that only republishes it; --format mastodon keeps it, hidden.
    rendered = publish.render(parse_list(EXPORT))

    assert "hidden.example" not in rendered.body.decode()
    assert rendered.left_out == {publish.HIDDEN_BY_SOURCE: 1, publish.NOOP_AS_BLOCK: 3}
    # (and its spreadsheet safety stays, which its reader undoes)
    assert "pod,five.example,,'-" in rows_of(rendered)
    assert parse_list(rendered.body).entries[-1].comment == "=a formula, a neighbour's words"


def test_an_entry_of_podmods_format_is_published_to_mastodon_with_its_label() -> None:
    # podmod's label is the category (`campaign`), its comment a note (`locked 2026-12-01`, as
    # publish --from-decisions writes): the label is the public comment, else the comment.
    source = parse_list(
        b"kind,value,label,comment\n"
        b"pod,labelled.example,campaign,locked 2026-12-01\n"
        b"pod,noted.example,,-note\n"
    )

    assert rows_of(publish.render_mastodon(source))[1:] == [
        "labelled.example,suspend,false,false,campaign,false",
        "noted.example,suspend,false,false,-note,false",
    ]


def test_rapidblocks_tags_are_the_public_comment_of_a_block_without_a_reason() -> None:
    document = {"blocks": {"tagged.example": {"isBlocked": True, "reason": "", "tags": ["spam"]}}}

    rendered = publish.render_mastodon(parse_list(json.dumps(document).encode()))

    assert rows_of(rendered)[1:] == ["tagged.example,suspend,false,false,spam,false"]


def test_a_pleroma_policys_media_and_report_removals_are_published_as_mastodons() -> None:
    federation = {
        "mrf_simple": {
            "reject": ["both.example"],
            "media_removal": ["both.example", "pics.example"],
            "report_removal": ["noise.example"],
        }
    }

    rendered = publish.render_mastodon(parse_list(json.dumps(federation).encode()))

    assert rows_of(rendered)[1:] == [
        "both.example,suspend,true,false,,false",
        "pics.example,noop,true,false,,false",
    ]
    assert rendered.left_out == {publish.NOOP_MASTODON: 1}  # (reports alone: no limitation)


def test_domains_format_is_one_suspended_domain_per_line_read_back_as_the_same_entries() -> None:
    source = parse_list(
        EXPORT.decode().replace(MASTODON_HEADER, MASTODON_HEADER + "\ntk,suspend,,,,").encode()
        + b"port.example:8443,suspend,false,false,,false\n"
    )

    rendered = publish.render_domains(source)
    again = parse_list(rendered.body)

    assert rows_of(rendered) == [
        "one.example",
        "two.example",
        "three.example",
        "five.example",
        "tk",  # (a domain of one label last: the first line of a list of domains has a dot)
    ]
    assert again.format == "domains"
    suspended = {e.value for e in source.entries if e.severity == "suspend"}
    assert {(e.kind, e.value, e.severity) for e in again.entries} == {
        ("pod", value, "suspend") for value in suspended - {"hidden.example", "port.example:8443"}
    }
    assert rendered.left_out == {
        publish.HIDDEN_BY_SOURCE: 1,
        publish.NOT_SUSPENDED: 5,
        publish.NOT_A_DOMAIN: 1,
    }


@pytest.mark.parametrize(
    ("item", "severity"),
    [
        ({"severity": "silence", "severity_ex": "noop"}, "noop"),
        ({"severity": "suspend", "severity_ex": "suspend"}, "suspend"),
        ({"severity": "silence", "severity_ex": "bogus"}, "silence"),  # (not valid: severity's)
        ({"severity": "silence", "severity_ex": None}, "silence"),
        ({"severity": "silence"}, "silence"),
    ],
)
def test_kmyblues_severity_ex_is_the_severity_it_means(item: dict, severity: str) -> None:
    # kmyblue's public API writes a noop rule as `severity: silence`, the real one in
    # `severity_ex` (its REST::DomainBlockSerializer).
    document = [{"domain": "quiet.example", "comment": "media only", **item}]

    [entry] = parse_list(json.dumps(document).encode()).entries

    assert entry.severity == severity


@pytest.mark.parametrize(
    "line",
    ["one.example,two.example", "one.example, two.example,three.example", "one.example,two.ex,"],
)
def test_a_line_of_hosts_is_an_entry_for_each(line: str) -> None:
    # Fediseer's ?csv=true answers {"csv": "one.example,two.example"}: saved as a file, every
    # host on its line is a block (two of them once read as a domain and its reason).
    parsed = parse_list(f"{line}\nfour.example\n".encode())

    assert parsed.format == "domains"
    hosts = [host.strip() for host in line.split(",") if host]
    assert [(e.value, e.line, e.comment, e.severity) for e in parsed.entries] == [
        *((host, 1, "", "suspend") for host in hosts),
        ("four.example", 2, "", "suspend"),
    ]


def test_a_domain_and_its_reason_stays_friendicas_reading() -> None:
    parsed = parse_list(b'one.example,spam bots\n*.two.example,"spam, bots"\n')

    assert [(e.value, e.comment) for e in parsed.entries] == [
        ("one.example", "spam bots"),
        ("two.example", "spam, bots"),
    ]
    forced = parse_list(b"one.example,two.example\n", format="friendica")
    assert [(e.value, e.comment) for e in forced.entries] == [("=one.example", "two.example")]


@pytest.mark.parametrize(
    "answer",
    [
        {"csv": "one.example,two.example", "total": 2},
        {"domains": ["one.example", "two.example"], "total": 2},
        {
            "instances": [
                {"domain": "one.example", "censure_reasons": ["spam"], "censure_count": 1}
            ],
            "total": 1,
        },
        {"domains": []},
    ],
    ids=["csv", "domains", "instances", "none"],
)
def test_fediseers_answers_are_refused_naming_fediseer(answer: dict) -> None:
    data = json.dumps(answer).encode()

    with pytest.raises(ListFormatError, match=r"^The list is Fediseer's answer \(\{\"csv\""):
        parse_list(data)
    with pytest.raises(ListFormatError, match=r"^The list is Fediseer's answer, not a JSON array"):
        parse_list(data, format="mastodon-json")


def test_an_empty_severity_cell_is_read_as_each_shapes_authors_read_it() -> None:
    def severities(data: bytes, setting: str | None = None) -> list[tuple[str, str]]:
        reader = ListReader(data, severity=setting)
        return [(value, details.severity) for _, value, _, details in reader.rows()]

    # FediBlockHole: an empty severity is noop, a block of nothing (its SeverityLevel.NONE).
    fediblockhole = b"domain,severity,public_comment\ndelta.example,,\nepsilon.example\n"
    assert severities(fediblockhole) == [("delta.example", "noop"), ("epsilon.example", "noop")]
    assert severities(fediblockhole, "silence")[0] == ("delta.example", "noop")
    # Mastodon: its import skips the row (DomainBlock's severity enum validates it): a block of
    # nothing too, never a refusal of the whole file.
    mastodon = mastodon_file("delta.example,,false,false,,false", "zeta.example,suspend,,,,")
    parsed = parse_list(mastodon)
    assert [(e.value, e.severity) for e in parsed.entries] == [
        ("delta.example", "noop"),
        ("zeta.example", "suspend"),
    ]
    assert parsed.errors == []
    # No severity column at all: the list's setting (a suspension unless it says).
    assert severities(b"#domain,#public_comment\ndelta.example,\n") == [
        ("delta.example", "suspend")
    ]
    assert severities(b"domain\ndelta.example\n", "silence") == [("delta.example", "silence")]


def test_the_flags_change_nothing_podmod_stores() -> None:
    # What a row says only for republishing (obfuscate, reject_media, reject_reports) is never
    # stored: the same rows with and without it give the same COPY text.
    def copy_text(data: bytes) -> str:
        return "".join(ListReader(data).text(versions.CopyRows(prefix="1\t", suffix="\t1\n")))

    plain = [
        f"h{n}.example,{['suspend', 'noop'][n % 2]},false,false,c{n % 3},false" for n in range(30)
    ]
    flagged = [
        row.replace("false,false,c", "true,true,c").removesuffix("false") + "true" for row in plain
    ]
    assert copy_text(mastodon_file(*flagged)) == copy_text(mastodon_file(*plain))
    reader = ListReader(mastodon_file(*flagged, flagged[0].replace(",true,true,", ",false,false,")))
    [entry, *_] = reader.parsed(list(reader)).entries
    assert entry.flags == Flags(True, True, True)


def test_a_repeated_row_keeps_its_domain_hidden_if_either_row_hides_it() -> None:
    parsed = parse_list(
        mastodon_file(
            "twice.example,suspend,false,false,spam,false",
            "twice.example,suspend,true,false,spam,true",
        )
    )

    [entry] = parsed.entries
    assert entry.flags == Flags(obfuscate=True, reject_media=True)
    assert publish.render_mastodon(parsed).body.decode().splitlines()[1] == (
        "twice.example,suspend,true,false,spam,true"
    )
