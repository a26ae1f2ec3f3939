"""An account named by the address a podmin pastes: a profile's, a post's or a comment's, read
from the pod's own tables; anything else passed on as written."""

from __future__ import annotations

import pytest

from podmod.references import AddressError, account_text
from tests.helpers import podmod


def guid_of(pod, table: str, row_id: int) -> str:
    return pod.conn.execute(f"SELECT guid FROM {table} WHERE id = %s", (row_id,)).fetchone()["guid"]


@pytest.fixture
def accounts(pod):
    local = pod.person("alice")
    remote = pod.person("Faraway", "far.example")
    post = pod.post(remote)
    comment = pod.comment(pod.person("commenter", "other.example"), post)
    return {
        "local": local,
        "remote": remote,
        "post": post,
        "post_guid": guid_of(pod, "posts", post),
        "comment_guid": guid_of(pod, "comments", comment),
        "remote_guid": guid_of(pod, "people", remote.id),
    }


def test_addresses_of_profiles_posts_and_comments_name_their_accounts(pod, accounts):
    remote_guid, post_guid = accounts["remote_guid"], accounts["post_guid"]
    read = {
        # diaspora*'s own pages, on this pod or another
        f"https://pod.example/people/{remote_guid}": "faraway@far.example",
        f"https://other.example/people/{remote_guid}/stream?page=2": "faraway@far.example",
        f"https://pod.example/profiles/{remote_guid}": "faraway@far.example",
        "https://pod.example/u/alice": "alice@pod.example",
        "HTTPS://Far.Example:443/u/Faraway/": "Faraway@far.example",
        "http://pod.example:3000/u/alice": "alice@pod.example:3000",
        "https://far.example/public/faraway.atom": "faraway@far.example",
        f"https://pod.example/posts/{post_guid}": "faraway@far.example",
        f"https://pod.example/p/{post_guid}/interactions": "faraway@far.example",
        f"https://pod.example/posts/{accounts['post']}": "faraway@far.example",
        f"https://pod.example/posts/{post_guid}#{accounts['comment_guid']}": (
            "commenter@other.example"
        ),
        # (diaspora*'s comment links give the post by its number on the pod that shows it)
        f"https://far.example/posts/99#{accounts['comment_guid']}": "commenter@other.example",
        # other software of the diaspora* network, and the fediverse's /@name
        "https://friendica.example/profile/someone": "someone@friendica.example",
        "https://hub.example/channel/someone": "someone@hub.example",
        "https://social.example/@someone/1234": "someone@social.example",
        "https://social.example/@someone@far.example": "someone@far.example",
        "https://[2001:db8::2]:8443/u/someone": "someone@[2001:db8::2]:8443",
        # what is no address stays as written
        "acct:someone@far.example": "someone@far.example",
        "  @someone@far.example ": "@someone@far.example",
        "far.example": "far.example",
        "https://far.example/": "https://far.example/",
        "ftp://far.example/u/x": "ftp://far.example/u/x",
    }
    assert {text: account_text(pod.conn, text) for text in read} == read


@pytest.mark.parametrize(
    ("address", "said"),
    [
        ("https://pod.example/people/0123456789abcdef", "knows no account whose guid is 0123"),
        ("https://pod.example/posts/0123456789abcdef", "This pod has no post 0123456789abcdef"),
        ("https://pod.example/posts/99999999", "This pod has no post 99999999"),
        ("https://far.example/posts/12", "by its number on far.example, which only far.example"),
        ("https://pod.example/posts/abc#0123", "This pod has no comment 0123"),
        ("https://pod.example/about", "is not the address of a profile, a post or a comment"),
        ("https://pod.example/people", "is not the address of a profile, a post or a comment"),
        ("https://pod.example/profile/edit", "is not the address of a profile"),
        ("https://pod.example/people/refresh_search", "is not the address of a profile"),
        ("https://pod.example/u/" + "x" * 300, "is not the address of a profile"),
        ("https://pod.example:99999/u/x", "is not a valid address"),
        ("https://pod.example/people/%00", "is not the address of a profile"),
        ("https://pod.example/posts/a%20b", "is not the address of a profile"),
        ("https://pod.example/posts/abc#%00", "This pod has no comment %00"),
        ("https://social.example/@%00", "is not the address of a profile"),
        ("alice\x00@pod.example", "holds a control character"),
    ],
)
def test_an_address_that_shows_no_account_here_is_one_sentence(pod, accounts, address, said):
    with pytest.raises(AddressError) as refused:
        account_text(pod.conn, address)
    assert said in str(refused.value)
    assert "give" in str(refused.value) or "valid" in str(refused.value)


def test_lists_add_takes_the_address_a_podmin_pastes(pod, state, accounts):
    address = f"https://pod.example/people/{accounts['remote_guid']}"

    added = podmod("lists", "add", address, "--label", "spam", "--reason", "placeholder wave")
    again = podmod("lists", "add", "faraway@far.example", "--reason", "the same account")
    unknown = podmod("lists", "add", "https://pod.example/people/nobody", "--reason", "x")
    page = podmod("lists", "add", "https://far.example/about", "--reason", "x")
    removed = podmod("lists", "remove", "https://far.example/u/faraway", "--reason", "resolved")

    assert added.exit_code == 0, added.output
    assert added.output.startswith(f"{address} shows account:faraway@far.example. Added ")
    assert "on this pod's list already (since version 1)" in again.output
    assert unknown.exit_code == 2 and "knows no account whose guid is nobody" in unknown.output
    assert page.exit_code == 2 and "not the address of a profile" in page.output
    assert removed.exit_code == 0 and "Removed account:faraway@far.example" in removed.output
    audit = state.execute(
        "SELECT action, account, details FROM podmod.audit WHERE action LIKE 'list_%' ORDER BY id"
    ).fetchall()
    assert [(row["action"], row["account"]) for row in audit] == [
        ("list_add", "faraway@far.example"),
        ("list_remove", "faraway@far.example"),
    ]
    assert audit[0]["details"]["from"] == address
    assert audit[1]["details"]["from"] == "https://far.example/u/faraway"
    entries = state.execute("SELECT count(*) AS n FROM podmod.list_entries").fetchone()["n"]
    assert entries == 1  # the one added, then ended: nothing from the refused ones


def test_a_handle_with_a_control_character_is_refused_in_one_sentence(pod, state, accounts):
    refused = podmod("lock", "alice\x00", "--reason", "placeholder")
    assert refused.exit_code == 2, refused.output
    assert "holds a control character; give a handle such as user@pod.example" in refused.output


def test_lock_takes_a_local_profiles_address(pod, state, accounts):
    locked = podmod("lock", "https://pod.example/u/alice", "--reason", "placeholder")

    assert locked.exit_code == 0, locked.output
    assert locked.output.strip() == "alice@pod.example is now locked."
    row = pod.conn.execute("SELECT locked_at FROM users WHERE username = 'alice'").fetchone()
    assert row["locked_at"] is not None


def test_a_pod_entry_on_this_pods_own_host_says_it_flags_none_of_its_accounts(pod, state, accounts):
    own = podmod("lists", "add", "https://pod.example/", "--reason", "placeholder")
    parent = podmod("lists", "add", ".example", "--reason", "placeholder")
    other = podmod("lists", "add", "far.example", "--reason", "placeholder")

    note = "(pod.example is this pod: a pod entry never flags this pod's own accounts)"
    assert own.exit_code == 0 and f"0 new matches {note}." in own.output, own.output
    assert note in parent.output and "a whole top-level domain" in parent.output
    assert other.exit_code == 0 and "this pod" not in other.output.split(": ", 1)[1]
