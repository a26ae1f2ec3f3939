"""Content matches on the case page: what matched where, and the **Not a match** button (CSRF
checked, through actions.mark_not_a_match)."""

from __future__ import annotations

from tests import test_scan, test_web
from tests.test_scan import content_signals, publish, settle
from tests.test_web import HOSTILE, case_id_of, html, post, signed_in

# fixtures
lists = test_scan.lists
make_app, app, client, admin = test_web.make_app, test_web.app, test_web.client, test_web.admin


def test_the_case_page_shows_a_content_match_and_not_a_match_retracts_it(
    lists, pod, state, client, admin
):
    author = pod.person("poster", "far.example")
    pod.post(author, "An offer: placeholder lambda " + HOSTILE)
    publish(lists, "words", ["phrase,placeholder lambda,placeholder-label,"])
    settle()
    case_id = case_id_of(state, "poster@far.example")
    [signal] = content_signals()
    signed_in(client, "podmin")

    page = html(client.get(f"/cases/{case_id}"))
    assert "Content match" in page and "phrase:placeholder lambda" in page
    assert "placeholder-label" in page and "Not a match" in page
    assert '<a href="/lists/words/versions/1">version 1</a>, entry' in page, page
    assert "<script>window.__pwned" not in page and "&lt;script&gt;" in page

    refused = client.post(
        f"/cases/{case_id}/signals/{signal['id']}/not-a-match", data={"csrf_token": "wrong"}
    )
    assert refused.status_code == 400
    assert not content_signals()[0]["retracted"]

    done = post(
        client,
        f"/cases/{case_id}/signals/{signal['id']}/not-a-match",
        reason="a quotation",
        whole_account="yes",
    )
    assert done.status_code == 302
    [after] = content_signals()
    assert after["retracted"] and after["retracted_by"] == "podmin@pod.example"
    page = html(client.get(f"/cases/{case_id}", follow_redirects=True))
    assert "marked not a match" in page and "Not a match</button>" not in page
    state.rollback()
    [decision] = state.execute(
        "SELECT actor, reason FROM podmod.decisions WHERE action = 'not_a_match'"
    ).fetchall()
    assert decision == {"actor": "podmin@pod.example", "reason": "a quotation"}


def test_a_signal_of_another_case_is_not_found(lists, pod, state, client, admin):
    first, second = pod.person("one", "far.example"), pod.person("two", "far.example")
    pod.post(first, "placeholder mu")
    pod.post(second, "placeholder mu")
    publish(lists, "words", ["phrase,placeholder mu,,"])
    settle()
    signals = {s["person_id"]: s["id"] for s in content_signals()}
    signed_in(client, "podmin")

    response = post(
        client,
        f"/cases/{case_id_of(state, 'one@far.example')}/signals/{signals[second.id]}/not-a-match",
    )

    assert response.status_code == 404
    assert not any(s["retracted"] for s in content_signals())


def test_each_queue_row_says_why_in_words_with_its_newest_report(lists, pod, client, admin):
    """Each row: the terms of its priority in words, its content matches, and its newest report's
    reason with the start of the reported text (issue #13, "The queue says why")."""
    local = pod.person("busy")
    old = pod.post(local, "An old placeholder post.")
    pod.report(pod.person("early"), "Post", old, "Old placeholder reason.")
    newest = pod.post(local, "Placeholder lambda\nsecond   line " + "x" * 200)
    for name in ("second", "third"):
        pod.report(pod.person(name), "Post", newest, "Newest reason.")
    publish(lists, "core", ["account,busy@pod.example,spam,"], policy="review")
    publish(lists, "words", ["phrase,placeholder lambda,,"])
    settle()
    signed_in(client, "podmin")

    page = html(client.get("/"))
    row = page[page.index("busy@pod.example") :]
    row = row[: row.index("</tr>")]
    assert "3 reporters · list core · phrase match · local" in row, row
    # (the reason between quotes, isolated from them: a direction override in it stays in it)
    assert "“<bdi>Newest reason.</bdi>”" in row and "Placeholder lambda second line xxx" in row
    assert "x" * 200 not in row and "…" in row
    assert "Old placeholder reason" not in row
    assert ">1</span></td>" in row  # one content match, in its own column


def test_counts_agree_with_their_nouns():
    from podmod.web.formatting import counted

    assert [counted(n, "list match") for n in (0, 1, 2)] == [
        "0 list matches",
        "1 list match",
        "2 list matches",
    ]
    assert counted(1_200, "reporter") == "1,200 reporters"
