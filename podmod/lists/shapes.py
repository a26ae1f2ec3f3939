"""The domain-list shapes of shared blocklists: Mastodon's and FediBlockHole's CSVs (any column
order), one domain per line, Mastodon's and RapidBlock's JSON. Each row is a `pod` entry with a
severity and labels, read as the lists' authors and Mastodon's importer mean them; obfuscated
domains, canary rows and RapidBlock's rows that block nothing are counted, never entries."""

from __future__ import annotations

import contextlib
import csv
import re
from collections.abc import Callable, Iterator
from operator import itemgetter
from typing import TYPE_CHECKING, Any

from podmod.lists.parse import (
    _BLANK_LINE,
    _CONTROL,
    _FAST_MAX,
    _HEX64,
    _HOST_FAST,
    ACCOUNT_COLUMN,
    CANARY_DOMAIN,
    CANARY_LABEL,
    EXACT_HOST,
    MAX_COMMENT,
    MAX_HOST,
    NO_DETAILS,
    NO_FLAGS,
    TEXT_BLOCK,
    Details,
    Flags,
    ListFormatError,
    Row,
    RowError,
    RowText,
    _check_comment,
    _control_message,
    _header_cells,
    _looks_like_handle,
    _looks_like_host,
    _QuotedRows,
    _show,
    _trimmed,
    _unsafe,
    canary_host,
    hosts_in_line,
    label_keys,
    label_tokens,
    normalise,
)
from podmod.redact import printable

if TYPE_CHECKING:
    from podmod.lists.parse import ListReader

# Mastodon's severities, and what other software calls them (Pleroma's reject; limit, the word in
# Mastodon's own interface); a row of a file without severities is a suspension, as Mastodon
# imports a file without a #severity column (or the list's `severity`: _Domains).
SEVERITIES = {
    "suspend": "suspend",
    "silence": "silence",
    "noop": "noop",
    "limit": "silence",
    "reject": "suspend",
    "": "suspend",
}
# Columns podmod does not use; one may hold a row's comment when the row's cells are not in the
# order its header names them (a published file has rows like that).
BOOLEAN_COLUMNS = ("reject_media", "reject_reports", "obfuscate", "reject_follows")
# Other names publishers give the columns podmod reads, each read as its own name when the header
# has no column of that name: FediBlock-Importer's `block_type` (suspend, silence), `comment`,
# the public comment's name in Mastodon's public API (/api/v1/instance/domain_blocks), and IFTAS
# CARIAD's `observed_domain` and `majority_action` (suspend, silence).
COLUMN_ALIASES = {
    "block_type": "severity",
    "comment": "public_comment",
    "observed_domain": "domain",
    "majority_action": "severity",
}
BOOLEAN_WORDS = frozenset(("true", "false", "t", "f", "yes", "no", "y", "n", "1", "0", ""))
_BOOLEAN_CELLS = frozenset(
    spelling for word in BOOLEAN_WORDS for spelling in (word, word.upper(), word.title())
)
_COMMENTS_KEPT = 10_000  # distinct public comments a list's reading remembers the labels of
_SURROGATE = re.compile("[\ud800-\udfff]")  # (only JSON's \u escapes can write one)

# A public comment as entries carry it: (comment, labels, label, problem, is a canary's).
_Comment = tuple[str, tuple[str, ...], str, "str | None", bool]
# What a row says besides its domain: (nothing but an entry: no problem and no canary, a problem
# with its columns, the entry's details, a problem with its severity or comment, is a canary's,
# digest, its obfuscate column says true).
_Tail = tuple[bool, "str | None", Details, "str | None", bool, str, bool]
_TRUE_CELLS = frozenset(("true", "t", "yes", "y", "1"))
_TAILS_KEPT = 10_000  # distinct texts after the domain a CSV's reading remembers
# An already-normal host, and not a canary's (the common row, accepted as it is).
_PLAIN_HOST = re.compile(_HOST_FAST.pattern + rf"(?<!{re.escape(CANARY_DOMAIN)})")


def read(reader: ListReader, content: Any, start: int) -> Iterator[Row]:
    """The rows of a list in a domain shape (reader.format): `content` is the file's lines
    (rows from lines[start] on) or its JSON value."""
    if reader.format == "domains":
        return _read_domains(reader, content, start)
    if reader.format == "friendica":
        return _read_friendica(reader, content, start)
    if reader.format == "accounts":
        return _read_accounts(reader, content, start)
    if reader.format == "mastodon-json":
        return _read_mastodon_json(reader, content)
    if reader.format == "rapidblock-json":
        return _read_rapidblock_json(reader, content)
    if reader.format == "pleroma-json":
        return _read_pleroma_json(reader, content)
    if reader.format == "lemmy-json":
        return _read_lemmy_json(reader, content)
    return read_csv(reader, content, start)


# A shell pattern's class of characters (`[ab]`, `[0-9]`): not a defanged dot (`pod[.]example`)
# nor an IPv6 address (`[2001:db8::1]`).
_CHARACTER_CLASS = re.compile(r"\[[^\[\].:]+\]")  # (no `[` inside: linear on `[[[[…`)
_GLOB = re.compile(r"[*?\[\]]")  # (a character of a shell pattern)


class _Domains:
    """What every domain shape does with a row once its cells are read: the domain normalised (or
    known by its digest, or counted as obfuscated), the severity and public comment checked,
    canaries set aside, repeats counted."""

    def __init__(
        self,
        reader: ListReader,
        *,
        unit: str = "line",
        spreadsheet: bool = False,
        exact: bool = False,
    ):
        self.reader = reader
        self.unit = unit
        self.spreadsheet = spreadsheet  # CSV: undo csv_safe() on comments
        # a domain written plainly names that host alone (EXACT_HOST); `*.pod.example` the
        # domain and its subdomains
        self.exact = exact
        self.seen = reader.seen["pod"]
        self.severities = dict(SEVERITIES)  # and each spelling met, such as "Suspend"
        self.severities[""] = reader.severity  # (a row that names none: the list's setting)
        self.comments: dict[str, _Comment] = {}
        # one Details for each (label, comment, severity, labels, flags) met
        self.details: dict[tuple[str, str, str, tuple[str, ...], Flags], Details] = {}
        self.dotted: list[tuple[int, str, _Tail]] = []  # rows read last (dotted_rows())

    def error(self, line: int, message: str) -> None:
        self.reader.errors.append(RowError(line, message, self.unit))

    def tail(
        self,
        severity: str,
        comment: str,
        digest: str = "",
        tags: list[str] | None = None,
        obfuscated: bool = False,
        flags: Flags = NO_FLAGS,
    ) -> _Tail:
        """What a row's severity, public comment (RapidBlock: reason and tags), digest and
        obfuscate flag say; `flags` the rest of what it says (Flags, with `obfuscated`)."""
        level = self.severities.get(severity)
        if level is None:
            level = self.severities.get(severity.strip().lower(), "")
            if level:
                self.severities[severity] = level
        if tags is not None:
            known = self._tagged(comment, tags)
        else:
            known = self.comments.get(comment) or self._comment(comment)
        text, labels, label, problem, canary = known
        if not level:
            problem = f"the severity {_show(severity.strip())} is not suspend, silence or noop"
        if obfuscated:
            flags = flags._replace(obfuscate=True)
        clean = not problem and not canary
        details = self.details.get((label, text, level, labels, flags))
        if details is None:
            details = Details(label, text, level, labels, "", flags)
            if len(self.details) < _COMMENTS_KEPT:
                self.details[label, text, level, labels, flags] = details
        return clean, None, details, problem, canary, digest, obfuscated

    def add(self, line: int, domain: str, tail: _Tail) -> Row | None:
        """The row of one row of the file, or None for one that is none (counted, or an error, or
        a domain written with a leading dot, kept for dotted_rows())."""
        if domain.lstrip().startswith((".", "*.")):
            self.dotted.append((line, domain, tail))
            return None
        return self._add(line, domain, tail)

    def dotted_rows(self) -> Iterator[Row]:
        """The rows whose domain was written with a leading dot or wildcard (`.cf`, `*.cf`),
        read once the others are: a domain also written plainly (`cf`) is that row's, as in
        Mastodon, where `.cf` and `*.cf` name no host; alone, it is the domain the author means
        (with everything under it, as every pod entry)."""
        rows, self.dotted = self.dotted, []
        for line, domain, tail in rows:
            entry = self._add(line, domain, tail, merge=False, wildcard=True)
            if entry is not None:
                yield entry

    def _add(
        self, line: int, domain: str, tail: _Tail, *, merge: bool = True, wildcard: bool = False
    ) -> Row | None:
        _, columns_problem, details, problem, canary, digest, obfuscated = tail
        if columns_problem:
            self.error(line, columns_problem)
            return None
        published = ""
        if len(domain) <= _FAST_MAX and _PLAIN_HOST.fullmatch(domain):
            value = domain
        else:
            found = self.domain(line, domain, digest, obfuscated)
            if found is None:
                return None
            value, published = found
            canary = canary or canary_host(value) is not None
        if canary:
            self.reader.canary(published or canary_host(value) or value)
            return None
        if problem:
            self.error(line, problem)
            return None
        if published:
            details = details._replace(published=published)
        elif self.exact and not wildcard:
            value = EXACT_HOST + value
        if value in self.seen:
            if merge:
                self.reader.repeated("pod", value, details)
            else:  # (a dotted row beside its plain one: the plain row's, as Mastodon reads them)
                self.reader.duplicates += 1
            return None
        self.seen[value] = details
        return "pod", value, line, details

    def domain(
        self, line: int, domain: str, digest: str, obfuscated: bool = False
    ) -> tuple[str, str] | None:
        """(value, published) of a domain that is not already a plain host name; None when it is
        obfuscated (counted) or invalid (an error). A leading `*.` is a wildcard (normalise()
        reads it as the domain), unless the row says it is obfuscated."""
        text = domain.strip()
        if not text:
            self.error(line, "the domain is empty")
            return None
        if "*" in text and (obfuscated or not text.startswith("*.") or "*" in text[2:]):
            # Obfuscated: nobody can be matched by its text, but Mastodon's digest (the SHA-256
            # of the real domain) matches it. Mastodon's obfuscation keeps a domain's ends (its
            # first and last quarters): a `*` at either end, in a row not marked obfuscated, is
            # a pattern (`*end.example`, `name.*`), which names no host either.
            code = digest.strip()
            if _HEX64.fullmatch(code):
                # (its text is kept to be shown, as a host name's length at most, and without the
                # control characters a page or a terminal would act on: it never refuses a list)
                return "sha256:" + code.lower(), printable(text)[:MAX_HOST]
            if not obfuscated and (text.startswith("*") or text.endswith("*")):
                self.reader.patterns += 1
            else:
                self.reader.obfuscated += 1
            return None
        if ("?" in text and "/" not in text) or _CHARACTER_CLASS.search(text):
            # Friendica's other wildcards (`spam?.example`, `[ab]spam.example`: its published
            # blocklist is of shell patterns) name no host either: a pattern, not an error that
            # would refuse the whole list. (`?` in a URL is its query; `pod[.]example` defanged.)
            self.reader.patterns += 1
            return None
        if _CONTROL.search(text):
            self.error(line, _control_message("domain", text))
            return None
        try:
            return normalise("pod", text), ""
        except ValueError as error:
            self.error(line, str(error))
            return None

    def _comment(self, raw: str) -> _Comment:
        text = raw.strip()
        if text.lower() == "null":
            text = ""  # (a missing comment, as some exporters write it)
        if self.spreadsheet:
            text = _unsafe(text)
        labelled = text
        if len(text) > MAX_COMMENT:
            # Cut, not refused: what the row is for is its entry (a real server's reason, several
            # merged into one, ran to 2,664 characters). Its labels are those the cut leaves
            # whole: the one it cuts through would be a label nobody gave (`harass…`).
            cut = MAX_COMMENT - 1
            labelled = text[:cut]
            if text[cut] not in ";,":
                labelled = labelled[: max(labelled.rfind(";"), labelled.rfind(","), 0)]
            text = text[:cut] + "…"
        known = _labelled(text, label_tokens(labelled))
        if len(self.comments) < _COMMENTS_KEPT:
            self.comments[raw] = known
        return known

    def _tagged(self, reason: str, tags: list[str]) -> _Comment:
        """RapidBlock's reason as the comment, its tags as the labels."""
        text = reason.strip()
        return _labelled(text, label_tokens(";".join(tag.replace(",", " ") for tag in tags)))


def _labelled(comment: str, tokens: tuple[str, ...]) -> _Comment:
    """A comment with the labels its publisher gave: shown as they were written (`tokens`,
    label_tokens()), selected by their keys; checked, and whether it marks a canary."""
    labels = label_keys(tokens)
    return comment, labels, "; ".join(tokens), _check_comment(comment), CANARY_LABEL in labels


class _Columns:
    """A domain CSV's header: where each column podmod reads is."""

    def __init__(self, header: list[str]) -> None:
        self.width = len(header)
        names = [name.lstrip("#") for name in header]
        names = [
            COLUMN_ALIASES[name]
            if name in COLUMN_ALIASES and COLUMN_ALIASES[name] not in names
            else name
            for name in names
        ]
        columns: dict[str, int] = {}
        for index, name in enumerate(names):
            columns.setdefault(name, index)
        self.domain = columns["domain"]
        empty = self.width  # the index of the empty cell put after each row, for missing columns
        self.pick = itemgetter(
            self.domain,
            columns.get("severity", empty),
            columns.get("public_comment", empty),
            columns.get("digest", empty),
        )
        self.flags = _picker([columns[name] for name in BOOLEAN_COLUMNS if name in columns])
        self.obfuscate = columns.get("obfuscate", empty)
        self.reject_media = columns.get("reject_media", empty)
        self.reject_reports = columns.get("reject_reports", empty)
        self.severity = columns.get("severity")  # (None: the file names no severities)
        # A comment holding commas nobody quoted (`spam, harassment`, or quotes inside quotes the
        # csv module splits at) gives its row more cells than the header names. When the comment
        # is the only text of the row, between columns that hold none (the domain, the severity;
        # booleans alone after it), as in Mastodon's export, the row is read with its comment
        # whole: the cells around it are where the header says, counted from each end.
        comment = columns.get("public_comment")
        plain = {"domain", "severity", *BOOLEAN_COLUMNS}
        self.loose_comment = (
            comment
            if comment is not None
            and plain.issuperset(names[:comment])
            and set(BOOLEAN_COLUMNS).issuperset(names[comment + 1 :])
            else None
        )
        # Rows repeat all but their domain (severities, booleans, a few comments): when the
        # domain is the first cell, the text after it is read once for every row that has it.
        self.tails: dict[str, _Tail] = {}

    def row_like(self, line: str) -> bool:
        """A line without quotes reads as a row of its own: its domain cell names a host."""
        cells = line.split(",")
        return len(cells) > self.domain and _looks_like_host(cells[self.domain].strip())

    def read(
        self, cells: list[str], domains: _Domains, raw: str | None = None
    ) -> tuple[str, _Tail]:
        """A row's domain cell and what the rest of it says (`raw`: the row's text, when it is
        one line, for a comment with commas in it)."""
        width = self.width
        if len(cells) != width:
            cells = _trimmed(cells)
            if len(cells) > width:
                whole = self.comment_whole(raw) if raw is not None else None
                if whole is None:
                    problem = f"the row has {len(cells)} columns; the header names {width}"
                    return "", (False, problem, NO_DETAILS, None, False, "", False)
                cells = whole
            cells += [""] * (width - len(cells))
        cells.append("")
        domain, severity, comment, digest = self.pick(cells)
        if comment.strip().lower() in BOOLEAN_WORDS:
            comment = _misplaced_comment(self.flags(cells) if self.flags is not None else ())
        obfuscated = cells[self.obfuscate].strip().lower() in _TRUE_CELLS
        flags = Flags(
            reject_media=cells[self.reject_media].strip().lower() in _TRUE_CELLS,
            reject_reports=cells[self.reject_reports].strip().lower() in _TRUE_CELLS,
        )
        return domain, domains.tail(severity, comment, digest, obfuscated=obfuscated, flags=flags)

    def comment_whole(self, raw: str) -> list[str] | None:
        """The cells of a row with more of them than the header names, its comment read whole
        (`loose_comment`); None when that cannot be told: the header has other text columns, or
        the cells around the comment are not what their columns hold (a quote before it, other
        than booleans after it)."""
        comment = self.loose_comment
        if comment is None:
            return None
        parts = raw.split(",")
        while len(parts) > self.width and not parts[-1].strip():
            parts.pop()  # (trailing commas)
        if len(parts) <= self.width:
            return None
        end = len(parts) - (self.width - comment - 1)
        before, after = parts[:comment], parts[end:]
        if any('"' in cell for cell in before) or not _BOOLEAN_CELLS.issuperset(
            cell.strip() for cell in after
        ):
            return None
        text = ",".join(parts[comment:end]).strip()
        if len(text) > 1 and text[0] == text[-1] == '"':
            text = text[1:-1]
        return [*before, text, *after]

    def row(
        self,
        line: int,
        raw: str,
        first: str,
        rest: str,
        domains: _Domains,
        quoted: _QuotedRows,
    ) -> tuple[str, _Tail]:
        """The domain and tail of a row whose tail is not remembered: `first` is its text up to
        the first comma, `rest` the text after."""
        if self.domain == 0:
            tail = self.tails.get(rest) or self.after(rest, domains)
            if tail is not None and '"' in first:
                # FediBlockHole quotes every cell: "pod.example" is read as pod.example.
                inner = first[1:-1]
                if len(first) > 1 and first[0] == first[-1] == '"' and '"' not in inner:
                    return inner, tail
            elif tail is not None:
                return first, tail
        if '"' not in raw:
            return self.read(raw.split(","), domains, raw)
        cells = quoted.read(line, raw)
        if cells is None:
            return "", (False, quoted.problem, NO_DETAILS, None, False, "", False)
        return self.read(cells, domains, raw if quoted.lines == 1 else None)

    def after(self, rest: str, domains: _Domains) -> _Tail | None:
        """What the cells after the first say (the text after its first comma), remembered for
        the rows after with the same text; None when the row must be read whole (a quoted cell
        that runs on past the line, or quotes the csv module reads leniently)."""
        if '"' in rest:
            try:
                cells = next(csv.reader([rest], strict=True), [])
            except csv.Error:
                return None
        else:
            cells = rest.split(",")
        tail = self.read(["", *cells], domains, "," + rest)[1]
        if len(self.tails) < _TAILS_KEPT:
            self.tails[rest] = tail
        return tail


def read_csv(
    reader: ListReader, lines: list[str], start: int, text: RowText | None = None
) -> Iterator[Any]:
    """Mastodon's export (#domain,#severity,…) or FediBlockHole's CSV (domain,severity,…): the
    columns in any order, unknown ones ignored. Its rows, or with `text` their text in blocks of
    TEXT_BLOCK rows (ListReader.text)."""
    header_line = lines[start - 1].strip()
    columns = _Columns(_header_cells(header_line))
    domains = _Domains(reader, spreadsheet=True)
    if columns.severity is not None:
        # An empty cell under a severity column is not the list's severity (that is of files
        # without the column) but a block of nothing, noop: FediBlockHole reads it as no
        # limitation, and Mastodon's import skips the row (its severity enum validates it).
        # Refused, it would fail every sync of a list that synced before, for rows that block
        # nothing where their authors' own tools read them.
        domains.severities[""] = "noop"
    plain = _PLAIN_HOST.fullmatch
    seen = domains.seen
    tails = columns.tails
    domain_first = columns.domain == 0
    numbered = enumerate(lines[start:], start + 1)
    quoted = _QuotedRows(numbered, lines, columns.row_like)
    # With `text`: for the text after a plain row's domain whose tail was remembered by it, the
    # text around the domain and the row's details (one lookup gives a common row all it needs).
    around: dict[str, tuple[str, str, Details]] = {}
    fast_max = _FAST_MAX
    block: list[str] = []
    for line, raw in numbered:
        domain, _, rest = raw.partition(",")
        known = around.get(rest)
        if known is not None and len(domain) <= fast_max and plain(domain):
            # The common row, its tail seen before: a plain host with nothing to say but an entry.
            before, after, details = known
            if domain in seen:
                reader.repeated("pod", domain, details)
                continue
            seen[domain] = details
            block.append(f"{before}{domain}\t{line}{after}")
            if len(block) >= TEXT_BLOCK:
                yield "".join(block)
                block = []
            continue
        tail = tails.get(rest) if domain_first else None
        remembered = tail is not None
        if tail is None or '"' in domain:
            domain, tail = columns.row(line, raw, domain, rest, domains, quoted)
            remembered = False
        if tail[0] and len(domain) <= fast_max and plain(domain):
            # A plain host with nothing to say but an entry (the rest of add()).
            count = len(seen)
            seen.setdefault(domain, tail[2])
            if len(seen) == count:
                reader.repeated("pod", domain, tail[2])
            elif text is None:
                yield "pod", domain, line, tail[2]
            else:
                before, after = text.plain("pod", tail[2])
                if remembered and len(around) < _TAILS_KEPT:
                    around[rest] = (before, after, tail[2])
                block.append(f"{before}{domain}\t{line}{after}")
        elif raw.strip() == header_line:
            continue  # (the header again: two exports put end to end)
        elif domain.strip() or not _BLANK_LINE.fullmatch(raw):  # (blank rows are skipped)
            entry = domains.add(line, domain, tail)
            if entry is None:
                continue
            if text is None:
                yield entry
            else:
                block.append(text.row(*entry))
        if len(block) >= TEXT_BLOCK:
            yield "".join(block)
            block = []
    for entry in domains.dotted_rows():
        if text is None:
            yield entry
        else:
            block.append(text.row(*entry))
    if block:
        yield "".join(block)


def _picker(indexes: list[int]) -> Callable[[list[str]], tuple[str, ...]] | None:
    """The cells at these indexes, always as a tuple (itemgetter gives one index's cell bare)."""
    if not indexes:
        return None
    if len(indexes) == 1:
        only = indexes[0]
        return lambda cells: (cells[only],)
    return itemgetter(*indexes)


def _misplaced_comment(flags: tuple[str, ...]) -> str:
    """The comment of a row whose public_comment cell is empty or holds a boolean: the text of
    its one boolean cell that holds other text, when a header names the columns out of the rows'
    order (one of Oliphant's exports names public_comment fifth, and its rows carry it third and
    `false` fifth); else none (a `false` is never the comment)."""
    texts = [cell for cell in flags if cell.strip().lower() not in BOOLEAN_WORDS]
    return texts[0] if len(texts) == 1 else ""


def _line_cells(lines: list[str], start: int, cuts: int) -> Iterator[tuple[int, list[str]]]:
    """Each row's line number and cells, in a file of a row on every line from lines[start]: cut
    at its first `cuts` commas, its trailing commas and spaces dropped; blank lines and # comments
    skipped. A line with quotes is read as the csv module reads it (quotes it cannot read, as
    before it read any, left in the cells)."""
    for line, raw in enumerate(lines[start:], start + 1):
        text = raw.strip().rstrip(", \t")
        if not text or text.startswith("#"):
            continue
        cells = text.split(",", cuts)
        if '"' in text:
            with contextlib.suppress(csv.Error):
                cells = next(csv.reader([text], strict=True), [""])
        yield line, cells


def _read_domains(reader: ListReader, lines: list[str], start: int) -> Iterator[Row]:
    """One domain per line, each a suspension (or the list's `severity`) unless its own follows
    after a comma (`pod.example,silence`; cells after it, a header-less export's, ignored); or,
    in a file whose first cell after a domain is not a severity, its reason (Friendica's published
    blocklist: `pattern,reason`), the public comment of a row of two cells. A line whose cells
    all name hosts (Fediseer's `csv`, saved as a file) is an entry for each. Blank lines and #
    comments skipped."""
    domains = _Domains(reader)
    tails = {"": domains.tail("", "")}  # by the severity as written (none: a suspension)
    reasons: bool | None = None  # (decided by the first row with a cell after its domain)
    for line, cells in _line_cells(lines, start, 2):
        domain = cells[0]
        second = cells[1] if len(cells) > 1 else ""  # (cells after it, as in Mastodon, ignored)
        hosts = hosts_in_line(cells) if "." in second else None
        if hosts is not None:  # (a line of hosts, Fediseer's csv: each an entry, none a reason)
            for host in hosts:
                entry = domains.add(line, host, tails[""])
                if entry is not None:
                    yield entry
            continue
        if reasons is None and second.strip():
            reasons = len(cells) == 2 and second.strip().lower() not in SEVERITIES
        if reasons and len(cells) == 2 and second.strip().lower() not in SEVERITIES:
            tail = domains.tail("", second)
        else:
            tail = tails.get(second)
            if tail is None:
                tail = domains.tail(second, "")
                if len(tails) < _COMMENTS_KEPT:
                    tails[second] = tail
        entry = domains.add(line, domain, tail)
        if entry is not None:
            yield entry
    yield from domains.dotted_rows()


def _read_friendica(reader: ListReader, lines: list[str], start: int) -> Iterator[Row]:
    """Friendica's published blocklist (`/blocklist/domain/download`) read as Friendica matches
    it, with format = "friendica": a shell pattern and its reason on each line (PHP's fputcsv).
    A domain written plainly names that host alone (EXACT_HOST), as Friendica's pattern does;
    `*.pod.example` and `*pod.example` are the domain and its subdomains (Friendica's first leaves
    the domain itself out, its second also names `otherpod.example`: podmod covers what of each
    it can name); other patterns (`*bots*`, `spam?.example`, `*com`) name no host. The second
    cell is the reason, whatever it says, and the list's severity each row's. Blank and # lines
    skipped."""
    domains = _Domains(reader, exact=True)
    for line, cells in _line_cells(lines, start, 1):
        pattern = cells[0].strip()
        name = pattern[1:].removeprefix(".")  # (after `*` or `*.`)
        if pattern.startswith("*") and "." in name and not _GLOB.search(name):
            pattern = "*." + name  # (`*pod.example`: the domain and its subdomains, as `*.`)
        entry = domains.add(line, pattern, domains.tail("", ",".join(cells[1:])))
        if entry is not None:
            yield entry
    yield from domains.dotted_rows()


def _account_row_like(line: str, column: int | None) -> bool:
    """A line without quotes of an accounts CSV reads as a row of its own: its Account address
    cell names an account."""
    cells = line.split(",")
    return column is not None and len(cells) > column and _looks_like_handle(cells[column].strip())


def _read_accounts(reader: ListReader, lines: list[str], start: int) -> Iterator[Row]:
    """One account per line, as Mastodon exports an account's blocks (`user@pod.example`, maybe
    with a leading @; cells after a comma ignored), or Mastodon's CSV of accounts with a header
    (its mutes or follows: the `Account address` column read, the others ignored); blank
    lines and # comments skipped. No row names a severity: each has the list's (a suspension,
    unless its `severity` setting says)."""
    seen = reader.seen["account"]
    details = Details(severity=reader.severity)
    header_line = lines[start].strip() if start < len(lines) else ""
    header = _header_cells(header_line)
    column = header.index(ACCOUNT_COLUMN) if ACCOUNT_COLUMN in header else None
    first = start if column is None else start + 1
    numbered = enumerate(lines[first:], first + 1)
    quoted = _QuotedRows(numbered, lines, lambda text: _account_row_like(text, column))
    for line, raw in numbered:
        text = raw.strip().rstrip(", \t")
        if not text or text.startswith("#") or (column is not None and text == header_line):
            continue  # (and the header again: two exports put end to end)
        if column is None:
            handle = text.partition(",")[0]
        else:
            cells = quoted.read(line, raw) if '"' in raw else raw.split(",")
            if cells is None:
                reader.errors.append(RowError(line, quoted.problem))
                continue
            if len(cells) <= column or not cells[column].strip():
                reader.errors.append(RowError(line, "the row has no Account address cell"))
                continue
            handle = cells[column]
        if _CONTROL.search(handle):
            reader.errors.append(RowError(line, _control_message("account", handle.strip())))
            continue
        try:
            value = normalise("account", handle)
        except ValueError as error:
            reader.errors.append(RowError(line, str(error)))
            continue
        if value in seen:
            reader.repeated("account", value, details)
            continue
        seen[value] = details
        yield "account", value, line, details


def _text(item: dict[str, Any], name: str) -> str | None:
    """A JSON text field: "" when absent or null; None (not text) when it is anything else."""
    value = item.get(name)
    if value is None:
        return ""
    if isinstance(value, str) and not _SURROGATE.search(value):
        return value
    return None


# A JSON boolean true, as exporters write it (FediBlockHole's JSON has it as text).
_TRUE_JSON = (True, "true", "True")

# GoToSocial's /api/v1/instance/peers (with a filter) marks each blocked server with the moment
# it was blocked; a server it names without one is open, a peer it federates with.
_PEER_BLOCKS = {"suspended_at": "suspend", "silenced_at": "silence"}


def _peers_answer(items: list[Any]) -> bool:
    """Whether a JSON list is GoToSocial's answer of its peers: some item says when it was
    suspended or silenced (the others it names are open)."""
    return any(
        isinstance(item, dict) and not _PEER_BLOCKS.keys().isdisjoint(item) for item in items
    )


# Mastodon's severities as its API writes them, for kmyblue's `severity_ex` (_read_mastodon_json).
_API_SEVERITIES = frozenset(("suspend", "silence", "noop"))


def _read_mastodon_json(reader: ListReader, items: list[Any]) -> Iterator[Row]:
    """Mastodon's admin API domain blocks (public_comment), its public API's (comment),
    FediBlockHole's export of them, or GoToSocial's exports and its /api/v1/instance/peers answer
    (an item with no suspended_at or silenced_at is an open peer, counted in `unblocked`);
    private_comment is never read. kmyblue (a Mastodon fork) writes a noop as `severity:
    silence` in its public API and the real one in `severity_ex`, which is read instead."""
    domains = _Domains(reader, unit="item")
    peers = _peers_answer(items)
    for number, item in enumerate(items, 1):
        if not isinstance(item, dict):
            domains.error(number, 'the item is not an object such as {"domain": "pod.example", …}')
            continue
        # (in GoToSocial's peers answer: the severity of a blocked peer, whose name has a `*`
        # only where the server obfuscated it; an open peer is no entry)
        blocked = next((level for key, level in _PEER_BLOCKS.items() if item.get(key)), "")
        if peers and not blocked and item.get("severity") is None:
            reader.unblocked += 1
            continue
        comment_field = "public_comment" if item.get("public_comment") is not None else "comment"
        fields = {}
        for name in ("domain", "severity", comment_field, "digest"):
            fields[name] = _text(item, name)
            if fields[name] is None and name != "digest":
                domains.error(number, f"the {name} is not text")
                break
        else:
            extended = item.get("severity_ex")
            if isinstance(extended, str) and extended.strip().lower() in _API_SEVERITIES:
                fields["severity"] = extended
            tail = domains.tail(
                fields["severity"] or blocked,
                fields[comment_field] or "",
                fields["digest"] or "",
                obfuscated=item.get("obfuscate") in _TRUE_JSON
                or (bool(blocked) and "*" in (fields["domain"] or "")),
                flags=Flags(
                    reject_media=item.get("reject_media") in _TRUE_JSON,
                    reject_reports=item.get("reject_reports") in _TRUE_JSON,
                ),
            )
            entry = domains.add(number, fields["domain"] or "", tail)
            if entry is not None:
                yield entry
    yield from domains.dotted_rows()


def _read_rapidblock_json(reader: ListReader, value: dict[str, Any]) -> Iterator[Row]:
    """RapidBlock v1: {"blocks": {"host": {"isBlocked": true, "reason": "…", "tags": […]}}}, each
    block a suspension (or the list's `severity`); isBlocked false blocks nothing (counted in
    `unblocked`)."""
    domains = _Domains(reader, unit="item")
    for number, (host, block) in enumerate(value["blocks"].items(), 1):
        if not isinstance(block, dict):
            domains.error(number, f'the block of {_show(host)} is not an object {{"isBlocked": …}}')
            continue
        blocked = block.get("isBlocked")
        if blocked is False:
            reader.unblocked += 1
            continue
        if blocked is not True:
            domains.error(number, f"isBlocked of {_show(host)} is not true or false")
            continue
        reason = _text(block, "reason")
        tags = block.get("tags") or []
        if reason is None:
            domains.error(number, f"the reason of {_show(host)} is not text")
        elif not isinstance(tags, list) or not all(
            isinstance(tag, str) and not _SURROGATE.search(tag) for tag in tags
        ):
            domains.error(number, f"the tags of {_show(host)} are not a list of texts")
        elif _SURROGATE.search(host):
            domains.error(number, "the host holds a lone \\u surrogate escape")
        else:
            entry = domains.add(number, host, domains.tail("", reason, tags=tags))
            if entry is not None:
                yield entry
    yield from domains.dotted_rows()


# Pleroma's and Akkoma's MRF SimplePolicy (mrf_simple), each policy read as the Mastodon severity
# nearest to what it does to the other server's people: `reject` (and the instance-level
# `rejected_instances`) refuses all they send, a suspension; posts kept off the public timelines or
# to followers only, a silence; the others (media, avatars, banners, backgrounds, reports, deletes;
# and `quarantined_instances`, kept from private posts) hold back what a server sends, not its
# people: noop, kept as a record. `accept` is the server's allowlist, no block: never read.
PLEROMA_POLICIES = {
    "reject": "suspend",
    "followers_only": "silence",
    "federated_timeline_removal": "silence",
    "media_removal": "noop",
    "media_nsfw": "noop",
    "report_removal": "noop",
    "avatar_removal": "noop",
    "banner_removal": "noop",
    "background_removal": "noop",
    "reject_deletes": "noop",
}


# The Pleroma policies that are Mastodon's reject_media and reject_reports, kept for `lists
# publish` to write (a domain under several policies has the flags of each).
_PLEROMA_FLAGS = {
    "media_removal": Flags(reject_media=True),
    "report_removal": Flags(reject_reports=True),
}


def _pleroma_blocks(policy: dict[str, Any]) -> Iterator[tuple[str, str, Any, Any]]:
    """(policy, severity, its domains, their reasons) of a federation policy, heaviest
    first: a domain under several policies is read by its heaviest, the others merged into it."""
    simple = policy.get("mrf_simple") or {}
    info = policy.get("mrf_simple_info") or {}
    if not isinstance(simple, dict) or not isinstance(info, dict):
        raise ListFormatError(
            "The list's mrf_simple or mrf_simple_info is not an object of policies; fix the list."
        )
    rejected = policy.get("rejected_instances") or {}
    if isinstance(rejected, dict):  # (domain: {"reason": …})
        yield "rejected_instances", "suspend", list(rejected), rejected
    else:
        yield "rejected_instances", "suspend", rejected, {}
    for name, severity in PLEROMA_POLICIES.items():
        yield name, severity, simple.get(name) or [], info.get(name) or {}
    quarantined = policy.get("quarantined_instances_info") or {}
    reasons = quarantined.get("quarantined_instances") if isinstance(quarantined, dict) else None
    yield "quarantined_instances", "noop", policy.get("quarantined_instances") or [], reasons or {}


def _read_pleroma_json(reader: ListReader, policy_published: dict[str, Any]) -> Iterator[Row]:
    """The federation policy a Pleroma or Akkoma server publishes (in its nodeinfo, with MRF
    transparency on): the domains of each mrf_simple policy, of rejected_instances and of
    quarantined_instances, with the severity PLEROMA_POLICIES gives the policy and the reason
    mrf_simple_info gives the domain as its public comment. As Pleroma matches them, a domain
    written plainly covers that host alone (EXACT_HOST), `*.pod.example` the domain and its
    subdomains. Items are numbered across the policies in the order read (PLEROMA_POLICIES')."""
    domains = _Domains(reader, unit="item", exact=True)
    reader.hides_blocks = policy_published.get("exclusions") is True
    number = 0
    for policy, severity, listed, reasons in _pleroma_blocks(policy_published):
        if not isinstance(listed, list) or not isinstance(reasons, dict):
            where = f"mrf_simple.{policy}" if policy in PLEROMA_POLICIES else policy
            raise ListFormatError(
                f"The list's {where} is not a list of domains with their reasons; fix the list."
            )
        for domain in listed:
            number += 1
            if not isinstance(domain, str) or _SURROGATE.search(domain):
                domains.error(number, f"the {policy} item {_show(str(domain))} is not a domain")
                continue
            reason = reasons.get(domain)
            comment = _text(reason, "reason") if isinstance(reason, dict) else ""
            if comment is None:
                domains.error(number, f"the reason {policy} gives {_show(domain)} is not text")
                continue
            flags = _PLEROMA_FLAGS.get(policy, NO_FLAGS)
            entry = domains.add(number, domain, domains.tail(severity, comment, flags=flags))
            if entry is not None:
                yield entry
    yield from domains.dotted_rows()


def _read_lemmy_json(reader: ListReader, blocked: list[Any]) -> Iterator[Row]:
    """The instances a Lemmy (0.18, 0.19) or PieFed server's /api/v3/federated_instances says it
    blocks (parse._lemmy_blocked), each a suspension (or the list's `severity`), as Lemmy
    defederates them whole."""
    domains = _Domains(reader, unit="item")
    for number, instance in enumerate(blocked, 1):
        domain = _text(instance, "domain") if isinstance(instance, dict) else None
        if not domain:
            domains.error(number, 'the blocked item is not an object such as {"domain": …}')
            continue
        entry = domains.add(number, domain, domains.tail("", ""))
        if entry is not None:
            yield entry
    yield from domains.dotted_rows()
