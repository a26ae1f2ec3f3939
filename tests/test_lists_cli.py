"""The `podmod lists` commands as a podmin meets them: every refusal is one sentence (a missing
password, an output that cannot be written, a version or limit out of range), `--json` is JSON
alone, a list server's words never drive the terminal, and a publisher's comment never costs the
signature its time and file — against real PostgreSQL, lists served from disk."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from podmod.lists import minisign
from tests.helpers import podmod
from tests.test_lists import HEADER, ListFiles, sync

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def lists(env, state, tmp_path) -> ListFiles:
    directory = tmp_path / "lists"
    directory.mkdir()
    return ListFiles(directory, Path(env["PODMOD_CONFIG"]))


@pytest.fixture
def key(tmp_path) -> Path:
    """An unencrypted secret key made by `podmod lists keygen`, its .pub beside it."""
    made = podmod("lists", "keygen", "--dir", str(tmp_path / "keys"))
    assert made.exit_code == 0, made.output
    return tmp_path / "keys" / "podmod.key"


def publishing(source: Path, secret_key: Path, output: Path, *options: str) -> list[str]:
    return [
        "lists",
        "publish",
        "--from-csv",
        str(source),
        "--secret-key",
        str(secret_key),
        "--output",
        str(output),
        *options,
    ]


def a_source(tmp_path: Path) -> Path:
    source = tmp_path / "source.csv"
    source.write_text(HEADER + "account,spammer@far.example,spam,\n")
    return source


def one_sentence(output: str) -> str:
    """The refusal a podmin reads: one line on stderr, no traceback."""
    assert "Traceback" not in output, output
    [line] = output.strip().splitlines()
    assert line.startswith("podmod: ") and line.endswith("."), line
    return line.removeprefix("podmod: ")


def test_keygen_with_a_password_variable_that_is_not_set_writes_no_key(env, tmp_path, monkeypatch):
    monkeypatch.delenv("PODMOD_NO_SUCH_PASSWORD", raising=False)
    keys = tmp_path / "keys"

    made = podmod(
        "lists", "keygen", "--dir", str(keys), "--password-env", "PODMOD_NO_SUCH_PASSWORD"
    )

    assert made.exit_code == 1
    assert one_sentence(made.output) == (
        "The environment variable PODMOD_NO_SUCH_PASSWORD (the key's password) is not set."
    )
    assert not keys.exists() or list(keys.iterdir()) == []


def test_a_key_that_exists_or_is_encrypted_says_which_option_to_give(env, tmp_path, monkeypatch):
    keys = tmp_path / "keys"
    monkeypatch.setenv("PODMOD_KEY_PASSWORD", "placeholder password")
    made = podmod("lists", "keygen", "--dir", str(keys), "--password-env", "PODMOD_KEY_PASSWORD")
    assert made.exit_code == 0, made.output

    again = podmod("lists", "keygen", "--dir", str(keys))
    without = podmod(*publishing(a_source(tmp_path), keys / "podmod.key", tmp_path / "o.csv"))

    assert one_sentence(again.output) == (
        f"{keys / 'podmod.key'} already exists and podmod never overwrites a secret key; give"
        " another --name or --dir for a new one."
    )
    assert one_sentence(without.output) == (
        f"The secret key {keys / 'podmod.key'} is encrypted: give --password-env VAR, VAR an"
        " environment variable holding its password."
    )


@pytest.mark.parametrize("where", ["missing directory", "proc", "signature path a directory"])
def test_publishing_where_it_cannot_write_is_one_sentence_and_writes_nothing(
    env, tmp_path, key, where
):
    output = {
        "missing directory": tmp_path / "no" / "such" / "dir" / "e.csv",
        "proc": Path("/proc/e.csv"),
        "signature path a directory": tmp_path / "out" / "e.csv",
    }[where]
    if where == "signature path a directory":
        (tmp_path / "out" / "e.csv.minisig").mkdir(parents=True)

    published = podmod(*publishing(a_source(tmp_path), key, output))

    assert published.exit_code == 1, published.output
    said = one_sentence(published.output)
    assert said.startswith("Cannot write "), said
    assert "so nothing was written" in said, said
    assert not output.exists()
    if where == "signature path a directory":
        assert [p.name for p in output.parent.iterdir()] == ["e.csv.minisig"]


# A neighbour's Mastodon export, republished: a domain it hid, a noop that limits nothing, a
# media-only rule, a silence, an account (no domain list holds one).
EXPORT = (
    "#domain,#severity,#reject_media,#reject_reports,#public_comment,#obfuscate\n"
    "hidden.example,suspend,false,false,harassment,true\n"
    "record.example,noop,false,false,a record,false\n"
    "media.example,noop,true,false,media only,false\n"
    "quiet.example,silence,false,false,,false\n"
    "plain.example,suspend,false,false,-,false\n"
)


@pytest.mark.parametrize(
    ("output_format", "summary", "rows"),
    [
        (
            "mastodon",
            "(4 entries, mastodon format; 1 left out: 1 noop without reject_media, which block"
            " nothing (Mastodon's own export leaves them out, and importers that read no severity"
            " would block them); 1 kept hidden (#obfuscate), as their source had them)",
            [
                "#domain,#severity,#reject_media,#reject_reports,#public_comment,#obfuscate",
                "hidden.example,suspend,false,false,harassment,true",
                "media.example,noop,true,false,media only,false",
                "quiet.example,silence,false,false,,false",
                "plain.example,suspend,false,false,-,false",
            ],
        ),
        (
            "podmod",
            "(2 entries, podmod format; 3 left out: 1 obfuscated by their source, which this"
            " format cannot keep hidden (--format mastodon keeps them, marked #obfuscate); 2 noop,"
            " which this format would write as blocks)",
            ["kind,value,label,comment", "pod,quiet.example,,", "pod,plain.example,,'-"],
        ),
        (
            "domains",
            "(1 entry, domains format; 4 left out: 1 obfuscated by their source, which this"
            " format cannot keep hidden (--format mastodon keeps them, marked #obfuscate); 3"
            " silences and noops (a list of domains has no severity, and its importers block"
            " every domain in it))",
            ["plain.example"],
        ),
    ],
)
def test_publish_says_what_each_format_leaves_out_and_keeps_hidden(
    env, tmp_path, key, output_format, summary, rows
):
    source = tmp_path / "export.csv"
    source.write_text(EXPORT)
    output = tmp_path / f"{output_format}.txt"

    published = podmod(*publishing(source, key, output, "--format", output_format))

    assert published.exit_code == 0, published.output
    assert f"wrote {output} {summary} and {output}.minisig" in published.output, published.output
    assert output.read_text().splitlines() == rows


def test_publishing_no_suspended_domain_as_domains_warns_of_an_empty_file(env, tmp_path, key):
    published = podmod(
        *publishing(a_source(tmp_path), key, tmp_path / "d.txt", "--format", "domains")
    )

    assert published.exit_code == 0, published.output
    assert "(0 entries, domains format; 1 left out: 1 accounts, content or ports" in (
        published.output
    )
    assert "warning: no domain written: the file is empty" in published.output
    assert (tmp_path / "d.txt").read_bytes() == b""


def test_a_version_or_limit_out_of_range_is_a_sentence_not_a_traceback(lists, pod):
    lists.write("core", ["account,one@far.example,,"])
    lists.subscribe("core")
    assert sync()[0] == 0

    huge = podmod("lists", "diff", "core", "--version", "99999999999")
    negative = podmod("lists", "diff", "core", "--limit", "-1")

    assert huge.exit_code == 2
    assert one_sentence(huge.output) == (
        "List 'core' has no version 99999999999; see `podmod lists show`."
    )
    assert negative.exit_code == 2 and "Traceback" not in negative.output
    assert "Invalid value for '--limit': -1 is not in the range 0<=x<=2147483647." in (
        negative.output
    )


def test_a_list_without_that_version_says_which_it_lacks(lists, pod):
    lists.write("core", ["account,one@far.example,,"])
    lists.subscribe("core")
    lists.subscribe("html", signed=False, url=(lists.directory / "missing.csv").as_uri())
    assert sync()[0] == 1  # html fails: never synced

    never = podmod("lists", "diff", "html")
    zero = podmod("lists", "diff", "core", "--version", "0")

    assert never.exit_code == 2 and zero.exit_code == 2
    assert one_sentence(never.output) == (
        "List 'html' has no version yet; see `podmod lists show`."
    )
    assert one_sentence(zero.output) == "List 'core' has no version 0; see `podmod lists show`."


def test_lists_diff_takes_the_version_as_lists_approve_does(lists, pod):
    # `podmod lists diff core 2`, then `podmod lists approve core 2`: one way to name a version.
    lists.write("core", ["account,one@far.example,,"])
    lists.subscribe("core")
    assert sync()[0] == 0
    lists.write("core", ["account,one@far.example,,", "account,two@far.example,,"])
    assert sync()[0] == 0

    positional = podmod("lists", "diff", "core", "1")
    option = podmod("lists", "diff", "core", "--version", "1")
    both = podmod("lists", "diff", "core", "1", "--version", "2")

    assert positional.exit_code == 0 and positional.output == option.output
    assert positional.output.startswith("core version 1 (applied): +1 -0\n"), positional.output
    assert both.exit_code == 2 and "Name one version: 1 or --version 2, not both." in both.output


def run_podmod(*args: str) -> subprocess.CompletedProcess[str]:
    """`podmod ARGS` in a process of its own, as cron runs it."""
    return subprocess.run(
        [sys.executable, "-m", "podmod.cli", *args],
        cwd=ROOT,
        env=os.environ.copy(),
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_sync_json_is_json_alone_on_stdout_and_each_result_is_said_once(lists, pod):
    lists.write("core", ["account,one@far.example,,"])
    lists.subscribe("core")

    as_json = run_podmod("lists", "sync", "--json")
    lists.write("core", ["account,one@far.example,,", "account,two@far.example,,"])
    told = run_podmod("lists", "sync")

    assert as_json.returncode == 0, as_json.stdout + as_json.stderr
    [outcome] = json.loads(as_json.stdout)
    assert outcome["name"] == "core" and outcome["version"] == 1, outcome
    assert told.returncode == 0, told.stdout + told.stderr
    [line] = told.stdout.splitlines()
    assert line.startswith("core: version 2 applied"), told.stdout
    # The log line, with where the time went, is on stderr (cron's log file gets both).
    assert " INFO podmod.lists list core: version 2 applied" in told.stderr, told.stderr


def test_a_publishers_comment_keeps_the_signed_time_and_file(lists, pod, tmp_path, key):
    output = lists.directory / "shared.csv"

    published = podmod(*publishing(a_source(tmp_path), key, output, "--trusted-comment", "weekly"))

    assert published.exit_code == 0, published.output
    comment = output.with_name("shared.csv.minisig").read_text().splitlines()[2]
    fields = comment.removeprefix("trusted comment: ").split("\t")
    assert fields[0].startswith("timestamp:") and fields[1:] == [
        "file:shared.csv",
        "hashed",
        "weekly",
    ]
    signed = minisign.TrustedComment.parse(comment.removeprefix("trusted comment: "))
    assert signed.timestamp is not None and signed.file == "shared.csv"
    public_key = key.with_suffix(".pub").read_text().splitlines()[1]
    lists.subscribe("shared", signed=False, public_key=public_key)
    code, said = sync()
    assert code == 0 and "shared: version 1 applied" in said, said
    assert "signed without a timestamp" not in podmod("lists", "show").output
    if shutil.which("minisign"):
        checked = subprocess.run(
            ["minisign", "-V", "-P", public_key, "-m", str(output)],
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert checked.returncode == 0, checked.stdout + checked.stderr
        assert "\tweekly" in checked.stdout


@pytest.mark.parametrize("comment", ["weekly\tfile:other.csv", "weekly\nlist", "red \x1b[31m"])
def test_a_trusted_comment_with_a_tab_or_control_character_is_refused(env, tmp_path, key, comment):
    output = tmp_path / "shared.csv"

    published = podmod(*publishing(a_source(tmp_path), key, output, "--trusted-comment", comment))

    assert published.exit_code == 1
    assert one_sentence(published.output) == (
        "A trusted comment cannot hold a tab, a line break or another control character "
        "(minisign separates its fields with tabs); write it as plain text on one line."
    )
    assert list(tmp_path.glob("shared.csv*")) == []


def test_a_signature_whose_timestamp_is_not_a_time_is_refused_as_malformed(lists, pod, state):
    lists.write(
        "core",
        ["account,one@far.example,,"],
        trusted_comment="timestamp:12a\tfile:core.csv\thashed",
    )
    lists.subscribe("core")

    code, output = sync()

    assert code == 1, output
    assert (
        "core: FAILED: List 'core' was refused: The signature file is malformed (its trusted "
        "comment's timestamp '12a' is not decimal unix seconds up to the year 9999); ask the "
        "list's maintainers to sign it again." in output
    ), output
    assert state.execute("SELECT count(*) AS n FROM podmod.list_versions").fetchone()["n"] == 0


def test_a_list_servers_escape_sequences_never_reach_the_terminal(lists, pod):
    lists.write(
        "core",
        ["account,one@far.example,,"],
        trusted_comment="timestamp:1700000000\tfile:\x1b]0;pwned\x07\x1b[31mcore.csv\thashed",
    )
    lists.subscribe("core")

    code, synced = sync()
    shown = podmod("lists", "show").output

    assert code == 1 and "core: FAILED: List 'core' was refused: its signature is for" in synced
    assert "\x1b" not in synced and "\x07" not in synced, repr(synced)
    escaped = r"its signature is for the file '\x1b]0;pwned\x07\x1b[31mcore.csv', not core.csv"
    assert "last error" in shown and escaped in shown, shown
    assert "\x1b" not in shown and "\x07" not in shown, repr(shown)


def test_an_oversized_signature_is_named_as_such_not_as_the_list_size_setting(lists, pod):
    path = lists.write("core", ["account,one@far.example,,"])
    path.with_name("core.csv.minisig").write_bytes(b"x" * 200_000)
    lists.list_sync = {"max_bytes": 50_000_000}
    lists.subscribe("core")

    code, output = sync()

    assert code == 1, output
    assert (
        "The signature of list 'core' could not be fetched from "
        f"{path.with_name('core.csv.minisig').as_uri()}: the file is larger than 10 kB (the most "
        "a signature file may be: a minisign signature is a few hundred bytes)" in output
    ), output
    assert "list_sync.max_bytes" not in output
