"""podmod on the complete schemas of the diaspora* versions it supports (tests/fixtures: made by
running each version's own migrations, every table and index a real pod has): 0.7.18.2, the oldest
release line still running; 0.9.1.0, the current release; and develop. Each test here is one of
the suite's, collected again with `pod_url` a database of that schema: intake, the reviewed sync,
content scanning, lists, the case page and its lock click, and the whole flow as the role
deploy/grants.sql creates."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from tests.conftest import database_from, database_url
from tests.test_intake import (  # noqa: F401 (collected again here)
    test_report_of_a_comment_goes_to_the_comment_author_not_the_post_author,
    test_report_of_a_post_opens_a_case_for_its_author_with_a_snapshot,
    test_reports_reviewed_in_diaspora_leave_the_queue_and_are_audited,
    test_reshare_report_is_the_resharers_case_and_keeps_the_root_text,
)
from tests.test_least_privilege import (  # noqa: F401
    podmod_role,
    test_the_whole_flow_runs_as_the_least_privilege_role,
)
from tests.test_scan import (  # noqa: F401
    lists,
    test_a_new_post_with_a_listed_phrase_becomes_a_content_signal_on_its_authors_case,
    test_comments_and_profile_fields_are_scanned,
    test_hashtags_match_from_diasporas_taggings_and_from_text,
)
from tests.test_web import (  # noqa: F401
    admin,
    app,
    client,
    local_case,
    make_app,
    test_locking_from_the_case_page_sets_locked_at_and_logs_it,
    test_the_case_page_shows_account_signals_content_and_history,
)

SCHEMAS = Path(__file__).parent / "fixtures"
VERSIONS = ("0.7.18.2", "0.9.1.0", "develop")


@pytest.fixture(scope="session")
def version_templates(services: dict[str, str]) -> Iterator[dict[str, str]]:
    """A template database per diaspora* version, loaded from its schema once."""
    names = {}
    with psycopg.connect(services["postgres"], autocommit=True) as server:
        for version in VERSIONS:
            name = f"podmod_diaspora_{version.replace('.', '_')}_{uuid.uuid4().hex[:6]}"
            server.execute(f"CREATE DATABASE {name}")
            names[version] = name
    for version, name in names.items():
        sql = (SCHEMAS / f"diaspora-{version}.sql").read_text()
        with psycopg.connect(database_url(services["postgres"], name), autocommit=True) as conn:
            conn.execute(sql)
    yield names
    with psycopg.connect(services["postgres"], autocommit=True) as server:
        for name in names.values():
            server.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


@pytest.fixture(params=VERSIONS)
def pod_url(request, services: dict[str, str], version_templates: dict[str, str]) -> Iterator[str]:
    """A fresh database of this diaspora* version's complete schema (the suite's pod_url)."""
    with database_from(services["postgres"], version_templates[request.param]) as url:
        yield url


def test_each_test_here_runs_on_the_complete_schema_of_its_version(pod, request):
    """The override took: the database has every table of that version, not the suite's subset
    (chat_* and services went in 0.9)."""
    version = request.node.callspec.params["pod_url"]
    tables = {
        row["table_name"]
        for row in pod.conn.execute(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = 'public'"
        )
    }
    assert len(tables) >= 45, sorted(tables)  # the suite's own pod has 16
    assert ("chat_contacts" in tables) == (version == "0.7.18.2")
    columns = {
        row["column_name"]
        for row in pod.conn.execute(
            "SELECT column_name FROM information_schema.columns WHERE table_name = 'posts'"
        )
    }
    assert ("tweet_id" in columns) == (version != "develop")
