"""The deliveries page: admins see what was sent, what waits and why a delivery failed; it fits a
390 px phone; moderators are refused."""

from __future__ import annotations

from datetime import timedelta

from podmod.config import load_config
from tests import test_web, test_web_browser
from tests.diaspora_pod import DiasporaPod
from tests.helpers import read_once
from tests.test_notify import configure, outbox, run_deliver
from tests.test_web import PASSWORD, html, post, signed_in
from tests.test_web_browser import PHONE, WIDEST

# The web tests' fixtures, under the names pytest looks for.
make_app = test_web.make_app
app = test_web.app
client = test_web.client
browser = test_web_browser.browser
live_server = test_web_browser.live_server


def failed_webhook(env, pod: DiasporaPod, receiver) -> None:
    """A lock whose webhook the receiver refused with a 500: one row retrying."""
    configure(env, hooks=[(receiver.url, ["account.locked", "account.unlocked"])])
    receiver.answers = [500]
    pod.person("x" * 40 + "-placeholder-account")
    from tests.helpers import podmod

    assert podmod("lock", "x" * 40 + "-placeholder-account", "--reason", "r").exit_code == 0
    assert podmod("unlock", "x" * 40 + "-placeholder-account", "--reason", "r").exit_code == 0
    run_deliver()


def test_an_admin_sees_deliveries_and_the_last_failure_in_one_sentence(
    env, state, pod, receiver, client
):
    pod.person("podmin", password=PASSWORD, roles=("admin",))
    failed_webhook(env, pod, receiver)
    port = receiver.httpd.server_address[1]
    page = html(signed_in(client, "podmin").get("/deliveries"))
    assert "Deliveries" in page
    assert (
        f'webhook to http://127.0.0.1:{port}/…:\n  <span class="error-text">The webhook receiver '
        f"http://127.0.0.1:{port}/… answered HTTP 500: receiver says 500.</span>"
    ) in page
    assert "retrying" in page and "delivered" in page
    assert "token-part" not in page  # a webhook's path may hold its token
    failing = html(client.get("/deliveries?show=failing"))
    assert failing.count("webhook: account.") == 1
    assert len(outbox(state)) == 2


def test_a_moderator_may_not_see_the_deliveries(env, state, pod, client):
    pod.person("moddy", password=PASSWORD, roles=("moderator",))
    response = signed_in(client, "moddy").get("/deliveries")
    assert response.status_code == 403
    assert "Only a pod admin can see podmod&#39;s deliveries" in html(response)
    assert "/deliveries" not in html(client.get("/"))  # no link to it either


def test_a_damaged_page_link_is_one_sentence(env, state, pod, client):
    pod.person("podmin", password=PASSWORD, roles=("admin",))
    response = signed_in(client, "podmin").get("/deliveries?before=12x")
    assert response.status_code == 400
    assert "This page link is damaged" in html(response)


def test_the_deliveries_page_fits_a_390_px_phone(browser, live_server, env, state, pod, receiver):
    pod.person("podmin", password=PASSWORD, roles=("admin",))
    failed_webhook(env, pod, receiver)
    page = browser.new_page(viewport=PHONE)
    page.goto(live_server + "/login")
    page.get_by_label("Username", exact=True).fill("podmin")
    page.get_by_label("Password", exact=True).fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(live_server + "/")
    page.get_by_role("link", name="Deliveries").click()
    page.wait_for_url(live_server + "/deliveries")
    widths = page.evaluate(WIDEST)
    assert widths[0] <= widths[1], f"wider than the phone (scroll width, screen width): {widths}"
    assert "answered HTTP 500" in page.locator(".flash").inner_text()


def retry_rows(state) -> list[dict]:
    return [
        {k: row[k] for k in ("id", "gave_up_at", "done_at", "next_attempt_at", "retrying_since")}
        for row in outbox(state)
    ]


def test_retry_now_makes_a_given_up_delivery_live_for_another_day_and_is_audited(
    env, state, pod, receiver, client
):
    pod.person("podmin", password=PASSWORD, roles=("admin",))
    failed_webhook(env, pod, receiver)
    state.execute(
        "UPDATE podmod.outbox SET gave_up_at = now(), done_at = now(),"
        " retrying_since = now() - interval '1 day', next_attempt_at = now() + interval '1 hour'"
        " WHERE last_error IS NOT NULL RETURNING id"
    )
    state.commit()
    [failed] = [row for row in outbox(state) if row["last_error"]]
    signed_in(client, "podmin")
    assert "Retry now" in html(client.get("/deliveries"))

    response = post(client, f"/deliveries/{failed['id']}/retry", show="failing")
    assert response.status_code == 302
    assert response.headers["Location"].endswith("/deliveries?show=failing")
    page = html(client.get("/deliveries?show=failing"))
    assert f"Delivery {failed['id']} is retried now, and for another day if it fails again." in page
    [row] = [row for row in outbox(state) if row["id"] == failed["id"]]
    assert row["gave_up_at"] is None and row["done_at"] is None
    assert row["next_attempt_at"] <= row["retrying_since"] + timedelta(seconds=1)
    assert row["retrying_since"] > failed["retrying_since"] + timedelta(hours=23)
    [audit] = state.execute(
        "SELECT actor, action, source, details FROM podmod.audit WHERE action = 'delivery_retry'"
    ).fetchall()
    state.rollback()
    assert audit["actor"] == "podmin@pod.example" and audit["source"] == "web"
    assert audit["details"]["outbox_id"] == failed["id"] and audit["details"]["given_up"]

    result = read_once(load_config())  # the reader's next pass enqueues it
    assert result.deliveries_enqueued == [failed["id"]]


def test_retry_now_on_a_delivered_row_or_without_a_token_changes_nothing(
    env, state, pod, receiver, client
):
    pod.person("podmin", password=PASSWORD, roles=("admin",))
    failed_webhook(env, pod, receiver)
    [done] = [row for row in outbox(state) if row["delivered_at"] is not None]
    [failed] = [row for row in outbox(state) if row["delivered_at"] is None]
    before = retry_rows(state)
    signed_in(client, "podmin")

    refused = client.post(f"/deliveries/{failed['id']}/retry")  # no CSRF token
    assert refused.status_code == 400
    response = post(client, f"/deliveries/{done['id']}/retry")
    assert response.status_code == 302
    page = html(client.get("/deliveries"))
    assert f"Delivery {done['id']} was delivered already; nothing to retry." in page
    unknown = post(client, "/deliveries/999999/retry", show="no-such-filter")
    assert unknown.headers["Location"].endswith("/deliveries?show=all")
    assert "There is no delivery 999999." in html(client.get("/deliveries"))
    assert retry_rows(state) == before
    assert (
        state.execute(
            "SELECT count(*) AS n FROM podmod.audit WHERE action = 'delivery_retry'"
        ).fetchone()["n"]
        == 0
    )
    state.rollback()


def test_a_moderator_may_not_retry_a_delivery(env, state, pod, receiver, client):
    pod.person("moddy", password=PASSWORD, roles=("moderator",))
    failed_webhook(env, pod, receiver)
    [failed] = [row for row in outbox(state) if row["delivered_at"] is None]
    before = retry_rows(state)
    response = post(signed_in(client, "moddy"), f"/deliveries/{failed['id']}/retry")
    assert response.status_code == 403
    assert retry_rows(state) == before
