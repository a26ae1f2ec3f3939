"""The naive baselines of the web figures: the queue page, the case page and the lock as the obvious
SQL would do them, in a Flask app of the tutorial's pattern; and a bare Flask app under waitress,
the floor of the web process's memory. Nothing here runs in production.

Run as `python -m podmod.bench.web_naive flask PORT` for the bare app whose memory
podmod.bench.web measures (it imports little on purpose).
"""

from __future__ import annotations

import sys
from typing import Any

import psycopg
from psycopg.rows import dict_row

NAIVE_QUEUE_PAGE_SQL = """
SELECT c.id, c.account, c.local,
       count(*) FILTER (WHERE s.kind = 'report' AND NOT s.reviewed) AS pending,
       count(DISTINCT s.reporter_user_id) AS reporters,
       count(*) FILTER (WHERE s.kind = 'list' AND s.retracted_at IS NULL) AS list_matches,
       max(s.occurred_at) AS last_signal_at
FROM podmod.cases c JOIN podmod.signals s ON s.case_id = c.id
WHERE c.status = 'open'
GROUP BY c.id
ORDER BY 10 * count(*) FILTER (WHERE s.kind = 'report' AND NOT s.reviewed)
         + 5 * count(DISTINCT s.reporter_user_id)
         + 30 * count(*) FILTER (WHERE s.kind = 'list' AND s.retracted_at IS NULL) DESC,
         max(s.occurred_at) DESC, c.id DESC
OFFSET %s LIMIT 50
"""


def queue_page(conn: psycopg.Connection, offset: int) -> list[Any]:
    """One queue page: priority computed from the signals on each request, paged by OFFSET."""
    return conn.execute(NAIVE_QUEUE_PAGE_SQL, (offset,)).fetchall()


def case_page(conn: psycopg.Connection, case_id: int) -> dict[str, Any]:
    """One case page: the case, then each signal, then each reported item, one query each."""
    db = conn.cursor(row_factory=dict_row)
    case = db.execute("SELECT * FROM podmod.cases WHERE id = %s", (case_id,)).fetchone()
    signals = []
    for (signal_id,) in conn.execute(
        "SELECT id FROM podmod.signals WHERE case_id = %s ORDER BY id", (case_id,)
    ).fetchall():
        row = db.execute("SELECT * FROM podmod.signals WHERE id = %s", (signal_id,)).fetchone()
        table = "comments" if row["item_type"] == "Comment" else "posts"
        item = db.execute(f"SELECT text FROM {table} WHERE id = %s", (row["item_id"],)).fetchone()
        signals.append((row, item))
    person = db.execute("SELECT * FROM people WHERE id = %s", (case["person_id"],)).fetchone()
    posts = db.execute(
        "SELECT * FROM posts WHERE author_id = %s ORDER BY created_at DESC LIMIT 20",
        (case["person_id"],),
    ).fetchall()
    return {"case": case, "signals": signals, "person": person, "posts": posts}


def lock(conn: psycopg.Connection, case_id: int, person_id: int, actor: str) -> None:
    """Lock an account: three autocommitted writes."""
    conn.execute(
        "UPDATE users SET locked_at = now() FROM people"
        " WHERE people.owner_id = users.id AND people.id = %s",
        (person_id,),
    )
    conn.execute(
        "INSERT INTO podmod.decisions (case_id, person_id, action, actor, source)"
        " VALUES (%s, %s, 'lock', %s, 'bench')",
        (case_id, person_id, actor),
    )
    conn.execute(
        "INSERT INTO podmod.audit (actor, action, source, case_id)"
        " VALUES (%s, 'lock', 'bench', %s)",
        (actor, case_id),
    )


QUEUE_TEMPLATE = """<table>{% for row in rows %}<tr>
<td><a href="/cases/{{ row[0] }}">{{ row[1] }}</a></td>
<td>{{ row[3] }}</td><td>{{ row[4] }}</td><td>{{ row[5] }}</td><td>{{ row[6] }}</td>
</tr>{% endfor %}</table>"""

CASE_TEMPLATE = """<h1>{{ page.case.account }}</h1><p>{{ page.person.diaspora_handle }}</p>
<ul>{% for signal, item in page.signals %}<li>{{ signal.kind }} {{ signal.reason }}
{{ signal.snapshot }} {{ item.text if item else '' }}</li>{% endfor %}</ul>
<ul>{% for post in page.posts %}<li>{{ post.text }}</li>{% endfor %}</ul>"""


def create_app(database_url: str):
    """The web baseline: the Flask tutorial's pattern (a connection opened for each request) with
    the naive queries above, rendered by autoescaped Jinja templates. No sign-in, no CSRF, no
    session: every advantage goes to the baseline."""
    from flask import Flask, g, redirect, render_template_string, request

    app = Flask(__name__)

    def db() -> psycopg.Connection:
        if "db" not in g:
            g.db = psycopg.connect(database_url, autocommit=True)
        return g.db

    @app.teardown_appcontext
    def close(_error: BaseException | None) -> None:
        conn = g.pop("db", None)
        if conn is not None:
            conn.close()

    @app.get("/")
    def queue() -> str:
        offset = request.args.get("offset", 0, type=int)
        return render_template_string(QUEUE_TEMPLATE, rows=queue_page(db(), offset))

    @app.get("/cases/<int:case_id>")
    def case(case_id: int) -> str:
        return render_template_string(CASE_TEMPLATE, page=case_page(db(), case_id))

    @app.post("/cases/<int:case_id>/lock")
    def lock_case(case_id: int):
        person_id = request.form.get("person_id", type=int)
        lock(db(), case_id, person_id, "bench")
        return redirect(f"/cases/{case_id}")

    return app


def run_bare_flask(port: int) -> None:
    """The floor for the web UI's memory: a Flask app with one page under waitress."""
    import waitress
    from flask import Flask

    app = Flask(__name__)
    app.add_url_rule("/", "index", lambda: "<p>placeholder</p>")
    waitress.serve(app, host="127.0.0.1", port=port, threads=4, _quiet=True)


if __name__ == "__main__":
    command, *args = sys.argv[1:]
    if command == "flask":
        run_bare_flask(int(args[0]))
    else:
        raise SystemExit(f"unknown baseline process {command!r}")
