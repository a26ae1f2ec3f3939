"""The admin UI in a real headless Chromium (Debian's /usr/bin/chromium, driven by Playwright)
against the app on a real WSGI server: sign in with a Devise password, open the top case, click
Lock account; hostile reported text shows as text and runs nothing."""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import psycopg
import pytest
from flask import Flask
from werkzeug.serving import make_server

from tests.diaspora_pod import DiasporaPod
from tests.helpers import intake_all
from tests.test_web import PASSWORD, make_app  # noqa: F401  (make_app is a fixture)

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
PAYLOAD = (
    "<script>window.__pwned = 1; document.title = 'pwned';</script>"
    "<img src=x onerror=\"window.__pwned = 2; document.title = 'pwned'; alert('pwned')\">"
    " placeholder text that tries to run a script in the admin page"
)


@pytest.fixture
def browser() -> Iterator[object]:
    if not CHROMIUM.exists():
        message = f"{CHROMIUM} is missing: apt-get install chromium (.ci/run installs it)"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(
            executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True
        )
        yield chromium
        chromium.close()


@contextmanager
def serving(app: Flask) -> Iterator[str]:
    """The app on a real WSGI server on 127.0.0.1 and a free port, in a thread."""
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()
        thread.join(10)


@pytest.fixture
def live_server(make_app: Callable[..., Flask]) -> Iterator[str]:  # noqa: F811
    """The app (as configured when the test starts) served: see serving()."""
    with serving(make_app()) as url:
        yield url


def test_a_podmin_signs_in_and_locks_the_top_case_in_chromium(
    browser, live_server, pod: DiasporaPod, config, state: psycopg.Connection
):
    pod.person("podmin", password=PASSWORD, roles=("admin",))  # hashed as Devise does
    spammer = pod.person("spammer")
    hostile_post = pod.post(spammer, PAYLOAD)
    for n in range(3):
        pod.report(pod.person(f"reporter{n}"), "Post", hostile_post, "Placeholder: spam")
    pod.report(pod.person("reporter9"), "Post", pod.post(pod.person("quiet", "far.example")))
    intake_all(config)

    page = browser.new_page()
    dialogs: list[str] = []
    errors: list[str] = []
    page.on("dialog", lambda dialog: (dialogs.append(dialog.message), dialog.dismiss()))
    page.on("pageerror", lambda error: errors.append(str(error)))

    page.goto(live_server + "/")
    assert page.url.startswith(live_server + "/login")
    page.get_by_label("Username", exact=True).fill("podmin")
    page.get_by_label("Password", exact=True).fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(live_server + "/")

    top = page.locator("table.queue tbody tr").first.locator("a")
    assert top.inner_text() == "spammer@pod.example"
    top.click()
    page.wait_for_url(f"{live_server}/cases/*")

    snapshot = page.locator(".signal .snapshot").first.inner_text()
    assert "<script>window.__pwned = 1;" in snapshot and "<img src=x onerror=" in snapshot
    assert page.locator(".snapshot script, .snapshot img").count() == 0
    assert page.evaluate("window.__pwned") is None
    assert "pwned" not in page.title()

    page.get_by_role("button", name="Lock account").click()
    page.wait_for_load_state()
    assert "spammer@pod.example is now locked." in page.locator(".flash").inner_text()
    assert page.get_by_role("button", name="Unlock account").count() == 1

    locked = pod.conn.execute(
        "SELECT locked_at FROM users WHERE id = %s", (spammer.user_id,)
    ).fetchone()["locked_at"]
    assert locked is not None
    state.rollback()
    audit = state.execute(
        "SELECT actor, source, account, details FROM podmod.audit WHERE action = 'lock'"
    ).fetchall()
    assert [(a["actor"], a["source"], a["account"]) for a in audit] == [
        ("podmin@pod.example", "web", "spammer@pod.example")
    ]
    assert audit[0]["details"]["ip"] == "127.0.0.1"
    assert page.evaluate("window.__pwned") is None
    assert dialogs == [] and errors == []


LONG_NAME = "a" * 40 + "-placeholder-account"
# The page's scroll width and screen width, and the elements that stick out (not inside a box that
# scrolls), to say what is too wide.
WIDEST = """() => {
  const width = document.documentElement.clientWidth;
  const inScroller = (el) => el.closest(".scroll") !== null;
  const sticksOut = (el) => !inScroller(el) && (el.getBoundingClientRect().right > width + 1
    || el.getBoundingClientRect().left + el.scrollWidth > width + 1);
  const out = [...document.body.querySelectorAll("*")]
    .filter((el) => sticksOut(el) && ![...el.children].some(sticksOut))
    .slice(0, 5)
    .map((el) => el.tagName.toLowerCase() + (el.className ? "." + el.className : "")
      + " " + Math.round(el.getBoundingClientRect().right));
  return [document.documentElement.scrollWidth, width, ...out];
}"""
PHONE = {"width": 390, "height": 844}


def test_every_page_fits_a_390_px_phone_without_scrolling_sideways(
    browser,
    make_app,  # noqa: F811  (the fixture)
    pod: DiasporaPod,
    config,
    state: psycopg.Connection,
    env,
    tmp_path,
):
    """Each page at 390 px: the page itself never scrolls sideways (a wide table may scroll in its
    own box); long handles, links and reported text wrap."""
    from tests.helpers import podmod
    from tests.test_lists import ListFiles

    pod.person("podmin", password=PASSWORD, roles=("admin",))
    author = pod.person(LONG_NAME)
    text = "placeholder " + "x" * 120 + " https://far.example/" + "path/" * 30
    post = pod.post(author, text)
    for n in range(2):
        pod.report(pod.person(f"reporter{n}"), "Post", post, "Placeholder: " + "spam " * 30)
    remote = pod.person("b" * 30 + "-remote", "a-long-subdomain.of.far-away-pod.example")
    pod.report(pod.person("reporter9"), "Post", pod.post(remote, "placeholder"), "spam")
    lists = ListFiles(tmp_path, Path(env["PODMOD_CONFIG"]))
    lists.write("core", [f"account,{remote.handle},{'label' * 12},{'comment ' * 20}"])
    lists.subscribe("core")
    held = [pod.person("c" * 40 + f"-held{n}").handle for n in range(2)]  # (over max_locks)
    lists.list_sync["max_locks"] = 1
    lists.write("lockme", [f"account,{handle},{'label' * 12},," for handle in held])
    lists.subscribe("lockme", policy="lock")
    assert podmod("lists", "sync").exit_code == 4  # (lockme's locks held back)
    intake_all(config)
    state.rollback()
    cases = {
        row["account"]: row["id"]
        for row in state.execute("SELECT id, account FROM podmod.cases WHERE status = 'open'")
    }

    with serving(make_app()) as live_server:  # (configured with the lists)
        pages = phone_widths(browser, live_server, cases, author, remote, held[0])
    too_wide = {path: widths for path, widths in pages.items() if widths and widths[0] > widths[1]}
    assert too_wide == {}, f"pages wider than the phone (scroll width, screen width): {too_wide}"


def phone_widths(browser, live_server: str, cases: dict, author, remote, held: str) -> dict:
    """Each page's widths (WIDEST) at 390 px, signed in as podmin."""
    page = browser.new_page(viewport=PHONE)
    page.goto(live_server + "/login")
    pages = {"/login": None}
    page.get_by_label("Username", exact=True).fill("podmin")
    page.get_by_label("Password", exact=True).fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(live_server + "/")
    for path in (
        "/",
        "/?status=all",
        f"/cases/{cases[author.handle]}",
        f"/cases/{cases[remote.handle]}",
        f"/cases/{cases[held]}",  # (its lock held back with its list's)
        "/lists",
        "/lists/core/versions/1",
        "/lists/lockme/locks",
        "/audit",
        "/dashboard",
        "/cases/999999",
        # (an address that shows no account: its sentence and the empty queue name it whole)
        "/?q=https://a-long-subdomain.of.far-away-pod.example/people/" + "0123456789abcdef" * 2,
    ):
        page.goto(live_server + path)
        pages[path] = page.evaluate(WIDEST)
        screenshot(page, "phone" + path)
        if path == "/lists":
            # What is held is told outside the table's scrolling box, so it wraps whole on screen.
            notices = page.locator("div.flash.held")
            assert notices.count() == 1, page.content()
            box = notices.first.bounding_box()
            pages["/lists: held locks notice"] = [round(box["x"] + box["width"]), PHONE["width"]]
    return pages


def test_lock_and_close_in_chromium_lands_on_the_next_case(
    browser, live_server, pod: DiasporaPod, config, state: psycopg.Connection
):
    pod.person("podmin", password=PASSWORD, roles=("admin",))
    spammer = pod.person("spammer")
    spam = pod.post(spammer, "A placeholder post.")
    for n in range(2):
        pod.report(pod.person(f"reporter{n}"), "Post", spam, "Placeholder: spam")
    pod.report(pod.person("reporter9"), "Post", pod.post(pod.person("quiet", "far.example")))
    intake_all(config)
    cases = {
        row["account"]: row["id"]
        for row in state.execute("SELECT id, account FROM podmod.cases").fetchall()
    }
    state.rollback()

    page = browser.new_page()
    page.goto(live_server + "/login")
    page.get_by_label("Username", exact=True).fill("podmin")
    page.get_by_label("Password", exact=True).fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(live_server + "/")
    page.locator("table.queue tbody tr").first.locator("a").click()
    page.wait_for_url(f"{live_server}/cases/{cases['spammer@pod.example']}")

    page.get_by_role("button", name="Lock and close").click()

    page.wait_for_url(f"{live_server}/cases/{cases['quiet@far.example']}")
    flash = page.locator(".flash").inner_text()
    assert "spammer@pod.example is now locked and case" in flash
    back = page.get_by_role("link", name=f"Back to case {cases['spammer@pod.example']}")
    back.click()
    page.wait_for_url(f"{live_server}/cases/{cases['spammer@pod.example']}")
    assert "closed: locked" in page.locator("h1").inner_text()
    locked = pod.conn.execute(
        "SELECT locked_at FROM users WHERE id = %s", (spammer.user_id,)
    ).fetchone()["locked_at"]
    assert locked is not None


def screenshot(page, name: str) -> None:
    """With SCREENSHOTS=DIR, the page as Chromium shows it, to look at by eye."""
    directory = os.environ.get("SCREENSHOTS")
    if directory:
        safe = "".join(c if c.isalnum() or c in "-_" else "_" for c in name.strip("/")) or "root"
        page.screenshot(path=str(Path(directory) / f"{safe}.png"), full_page=True)


def test_a_podmin_checks_a_lists_held_locks_and_locks_them_all_in_chromium(
    browser,
    make_app,  # noqa: F811  (the fixture)
    pod: DiasporaPod,
    env,
    tmp_path,
    state: psycopg.Connection,
):
    from tests.helpers import podmod
    from tests.test_lists import ListFiles

    pod.person("podmin", password=PASSWORD, roles=("admin",))
    held = [pod.person(f"campaign{n}").handle for n in range(3)]
    lists = ListFiles(tmp_path, Path(env["PODMOD_CONFIG"]))
    lists.list_sync["max_locks"] = 2
    lists.write("lockme", [f"account,{handle},placeholder,," for handle in held])
    lists.subscribe("lockme", policy="lock")
    assert podmod("lists", "sync").exit_code == 4

    with serving(make_app()) as live_server:  # (configured with the list)
        errors = check_and_lock_in_chromium(browser, live_server, held)

    assert errors == []
    locked = pod.conn.execute(
        "SELECT username FROM users WHERE locked_at IS NOT NULL ORDER BY username"
    ).fetchall()
    assert [row["username"] for row in locked] == ["campaign0", "campaign1", "campaign2"]
    state.rollback()
    [confirmation] = state.execute(
        "SELECT actor, details FROM podmod.audit WHERE action = 'list_locks_confirm'"
    ).fetchall()
    assert confirmation["actor"] == "podmin@pod.example"
    assert confirmation["details"]["ip"] == "127.0.0.1"


def signed_in_page(browser, live_server: str) -> tuple[object, list[str]]:
    """A new page signed in as podmin, and the list its script errors are added to."""
    page = browser.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.goto(live_server + "/login")
    page.get_by_label("Username", exact=True).fill("podmin")
    page.get_by_label("Password", exact=True).fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(live_server + "/")
    return page, errors


def check_and_lock_in_chromium(browser, live_server: str, held: list[str]) -> list[str]:
    """Sign in as podmin, follow the lists page's link to lockme's held locks, check that the
    page names `held`, lock them all (the box ticked only on the second try); the page's
    script errors."""
    page, errors = signed_in_page(browser, live_server)
    page.goto(live_server + "/lists")
    screenshot(page, "desktop-lists")
    page.get_by_role("link", name="Check them and lock them").click()
    page.wait_for_url(live_server + "/lists/lockme/locks")
    shown = page.locator("table.held-locks tbody tr td:first-child").all_inner_texts()
    assert shown == held
    screenshot(page, "desktop-lists-lockme-locks")

    page.get_by_role("button", name="Lock them all").click()  # (the box not ticked yet)
    assert page.url == live_server + "/lists/lockme/locks"  # (the browser asks for the box)
    page.get_by_label("I have checked them: lock these 3 accounts").check()
    page.get_by_role("button", name="Lock them all").click()
    page.wait_for_url(live_server + "/lists")
    assert "lockme: 3 accounts locked." in page.locator(".flash").inner_text()
    screenshot(page, "desktop-lists-after")
    return errors


def test_a_podmin_pastes_a_posts_address_into_this_pods_list_in_chromium(
    browser, live_server, pod: DiasporaPod, state: psycopg.Connection
):
    pod.person("podmin", password=PASSWORD, roles=("admin",))
    author = pod.person("campaigner", "far.example")
    post_guid = pod.conn.execute(
        "SELECT guid FROM posts WHERE id = %s", (pod.post(author),)
    ).fetchone()["guid"]
    page, errors = signed_in_page(browser, live_server)
    page.goto(live_server + "/lists")

    form = page.locator("form.pod-list").first
    form.get_by_label("Account or pod").fill(f"https://pod.example/posts/{post_guid}")
    form.get_by_label("Label").fill("spam")
    form.get_by_role("button", name="Add to this pod's list").click()  # (no reason yet)
    assert page.url == live_server + "/lists"  # (the browser asks for the reason)
    form.get_by_label("Why").fill("placeholder reason")
    form.get_by_role("button", name="Add to this pod's list").click()
    page.wait_for_load_state()

    assert "shows account:campaigner@far.example. Added" in page.locator(".flash").inner_text()
    row = page.locator("table.pod-list tbody tr").first
    assert row.locator("td").first.inner_text() == "account:campaigner@far.example"
    screenshot(page, "desktop-lists-this-pod")
    row.get_by_label("Why remove it").fill("placeholder resolved")
    row.get_by_role("button", name="Remove").click()
    page.wait_for_load_state()
    assert "Removed account:campaigner@far.example" in page.locator(".flash").inner_text()
    assert errors == []
    state.rollback()
    actions = state.execute(
        "SELECT action, details->>'from' AS from_address FROM podmod.audit"
        " WHERE action LIKE 'list_%' ORDER BY id"
    ).fetchall()
    assert [(a["action"], a["from_address"]) for a in actions] == [
        ("list_add", f"https://pod.example/posts/{post_guid}"),
        ("list_remove", None),
    ]


# Where a piece of others' words ends on the line of what follows it, and where that begins (a
# Range over the text from the first character of `start` up to `end`, and over `end` or the
# element `after`): a right-to-left override (U+202E) in the words, not isolated, turns what
# follows it around too, up to the end of its paragraph, and puts it to their left.
WORDS_AND_AFTER = """([root, start, end, after]) => {
    const box = document.querySelector(root);
    const walker = document.createTreeWalker(box, NodeFilter.SHOW_TEXT);
    const texts = [];
    while (walker.nextNode()) texts.push(walker.currentNode);
    const from = texts.find((node) => node.data.includes(start));
    const words = document.createRange();
    words.setStart(from, from.data.indexOf(start));
    let next;
    if (after) {
        const last = texts.filter((node) => box.querySelector(after).contains(node))[0];
        words.setEnd(last, 0);
        next = box.querySelector(after).getBoundingClientRect();
    } else {
        const rest = texts.slice(texts.indexOf(from));
        const to = rest.find((node) => node.data.includes(end));
        const skip = to === from ? from.data.indexOf(start) : 0;
        const at = to.data.indexOf(end, skip);
        words.setEnd(to, at);
        const quote = document.createRange();
        quote.setStart(to, at);
        quote.setEnd(to, at + end.length);
        next = quote.getBoundingClientRect();
    }
    // (the words' boxes on the line of what follows them: the words may wrap onto it)
    const middle = (next.top + next.bottom) / 2;
    const line = Array.from(words.getClientRects()).filter(
        (shown) => shown.width > 0 && shown.top <= middle && middle <= shown.bottom
    );
    return {words_right: Math.max(...line.map((shown) => shown.right)), next_left: next.left};
}"""


def test_a_direction_override_in_others_words_stays_in_them_in_chromium(
    browser, live_server, pod: DiasporaPod, config, state: psycopg.Connection
):
    """A remote handle and a reporter's reason are others' words. A right-to-left override in
    them must turn only them around: the case's status badge stays right of the handle, and the
    closing quote right of the reason, in the queue and on the case page."""
    pod.person("podmin", password=PASSWORD, roles=("admin",))
    spoofer = pod.person("spoof\u202eer", "far.example")
    reason = "Placeholder \u202ereason"
    pod.report(pod.person("reporter"), "Post", pod.post(spoofer, "Placeholder post."), reason)
    intake_all(config)
    page, errors = signed_in_page(browser, live_server)

    queue_row = "table.queue tbody tr"
    quoted = page.evaluate(WORDS_AND_AFTER, [queue_row, "Placeholder", "\u201d", None])
    page.locator(queue_row).first.locator("a").click()
    page.wait_for_url(f"{live_server}/cases/*")
    heading = page.evaluate(WORDS_AND_AFTER, ["h1", "spoof", None, ".badge"])

    for seen in (quoted, heading):
        assert seen["next_left"] >= seen["words_right"] - 1, (quoted, heading)
    assert errors == []


def test_a_podmin_judges_a_held_entry_by_its_sample_and_confirms_it_in_chromium(
    browser,
    make_app,  # noqa: F811  (the fixture)
    pod: DiasporaPod,
    config,
    env,
    tmp_path,
):
    """The lists page shows a few matches of a held content entry beside Confirm it: hostile post
    text shows as text and runs nothing, and the notice fits a phone."""
    from tests.test_lists import ListFiles
    from tests.test_scan import publish, settle
    from tests.test_scan_breadth import HOSTILE

    pod.person("podmin", password=PASSWORD, roles=("admin",))
    for n in range(120):
        author = pod.person(f"writer{n}" + "-long" * 6 * (n == 119), "far.example")
        pod.post(author, HOSTILE if n >= 117 else f"A placeholder note number {n}.")
    lists = ListFiles(tmp_path, Path(env["PODMOD_CONFIG"]))
    publish(lists, "words", ["phrase,placeholder note,,"])
    settle()

    with serving(make_app()) as live_server:
        page, errors = signed_in_page(browser, live_server)
        page.goto(live_server + "/lists")
        held = page.locator("div.flash.held")
        assert "held for approval" in held.inner_text()
        sample = held.locator("ul.sample li")
        assert sample.count() == 5
        texts = sample.all_inner_texts()
        assert "writer119" + "-long" * 6 + "@far.example" in texts[0], texts
        assert "<script>window.__pwned = 1</script> placeholder note evil spam" in texts[0], texts
        assert held.locator("script, img").count() == 0
        assert page.evaluate("window.__pwned") is None and errors == []
        link = sample.first.get_by_role("link", name="on the pod")
        assert "/posts/" in link.get_attribute("href")
        screenshot(page, "desktop-lists-held-entry")
        page.set_viewport_size(PHONE)
        widths = page.evaluate(WIDEST)
        screenshot(page, "phone-lists-held-entry")
        assert not widths or widths[0] <= widths[1], widths

        page.get_by_role("button", name="Confirm it").click()
        page.wait_for_url(live_server + "/lists")
        assert "words: phrase:placeholder note confirmed" in page.locator(".flash").inner_text()
        assert page.locator("ul.sample").count() == 0
