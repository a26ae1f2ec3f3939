"""Configuration: a TOML file and PODMOD_* variables; every bad value is one sentence and exit 2."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from podmod.config import KEYS, load_config
from podmod.errors import ConfigError

DB = "postgresql://podmod@localhost/diaspora_production"


def test_environment_alone_is_enough():
    config = load_config(environ={"PODMOD_DATABASE_URL": DB})
    assert config.database_url == DB
    assert config.state_database_url == DB  # podmod's schema lives in the pod's database
    assert config.redis_url == "redis://127.0.0.1:6379/1"  # never Sidekiq's database 0
    assert config["reader.batch_size"] == 1000


def test_file_values_and_environment_overrides(tmp_path):
    path = tmp_path / "podmod.toml"
    path.write_text(
        f'database_url = "{DB}"\nredis_url = "redis://10.0.0.5:6379/3"\n'
        "[reader]\nbatch_size = 200\ninterval = 2\n"
    )
    config = load_config(path, environ={"PODMOD_READER_BATCH_SIZE": "50"})
    assert config.redis_url == "redis://10.0.0.5:6379/3"
    assert config["reader.batch_size"] == 50
    assert config["reader.interval"] == 2.0
    assert config.source == str(path)


KEY = "RWQf6LRCGA9i53mlYecO4IzT51TGPpvWucNSCh1CBM0QTaLn73Y7GFO3"
LIST = f'database_url = "{DB}"\n[[lists]]\nname = "x"\nurl = "https://l.example/x.csv"\n'


@pytest.mark.parametrize(
    ("content", "environ", "message"),
    [
        ("", {}, "database_url is not set: set PODMOD_DATABASE_URL"),
        (
            f'database_url = "{DB}"\nreader = {{ batch_sise = 5 }}\n',
            {},
            "Unknown key 'reader.batch_sise'",
        ),
        (
            f'database_url = "{DB}"\n',
            {"PODMOD_READER_BATCH_SIZE": "many"},
            "reader.batch_size (from PODMOD_READER_BATCH_SIZE) must be a whole number, not 'many'",
        ),
        (f'database_url = "{DB}"\n[reader]\nbatch_size = 0\n', {}, "must be greater than 0"),
        (
            f'database_url = "{DB}"\n[reader]\nbatch_size = true\n',
            {},
            "must be a whole number, not True",
        ),
        ('database_url = "mysql://x"\n', {}, "must be a PostgreSQL URL"),
        (f'database_url = "{DB}"\nredis_url = "http://x"\n', {}, "must be a Redis URL"),
        (f'database_url = "{DB}"\n[log]\nlevel = "LOUD"\n', {}, "must be one of DEBUG"),
        ('database_url = "unterminated\n', {}, "is not valid TOML"),
        (LIST + 'format = "yaml"\n', {}, "format of list 'x' in"),
        (LIST + 'labels = "spam"\n', {}, 'must be a list of labels, such as ["spam"]'),
        (LIST + 'labels = ["spam; scam"]\n', {}, "which is not one label"),
        (LIST + 'lock_labels = ["spam"]\npolicy = "lock"\n', {}, "applies to a list with policy"),
        (LIST + 'require_canary = "not a host"\n', {}, "require_canary of list 'x'"),
        (
            LIST + "max_new_match_share = 0\n",
            {},
            "max_new_match_share of list 'x' in",
        ),
        (LIST + 'max_removal_share = "half"\n', {}, "must be a share between 0 and 1, such as"),
        (
            f'database_url = "{DB}"\n[list_sync]\nmax_new_match_share = 5\n',
            {},
            "list_sync.max_new_match_share (in",
        ),
        (
            LIST + 'severity = "limit"\n',
            {},
            "severity of list 'x' in",
        ),
        (
            LIST + 'signed_file = "core.csv"\n',
            {},
            "signed_file of list 'x' in",  # no public_key: nothing is signed
        ),
        (
            LIST + f'public_key = "{KEY}"\nsigned_file = "lists/core.csv"\n',
            {},
            "signed_file of list 'x' in",
        ),
        (LIST + f'public_key = "{KEY}"\nsigned_file = ""\n', {}, "signed_file of list 'x'"),
        (
            LIST + 'signature_url = "https://l.example/x.csv.minisig"\n',
            {},
            "signature_url of list 'x' in",  # no public_key: nothing is signed
        ),
        (
            LIST + f'public_key = "{KEY}"\nsignature_url = "http://l.example/x.sig"\n',
            {},
            "signature_url of list 'x' in",
        ),
        (
            LIST + f'public_key = "{KEY}"\nsignature_url = "https://l.example/x.csv"\n',
            {},
            "is the list's own url; set it to the address of the list's .minisig file",
        ),
        (
            f'database_url = "{DB}"\n[web]\napprove_roles = "everyone"\n',
            {},
            "web.approve_roles (in",
        ),
        (  # (moderators alone would leave the pod's admins unable to lock from the web UI)
            f'database_url = "{DB}"\n',
            {"PODMOD_WEB_LOCK_ROLES": "moderator"},
            'web.lock_roles (from PODMOD_WEB_LOCK_ROLES) must be "admin" or "admin,moderator"',
        ),
        (
            f'database_url = "{DB}"\n[web]\napprove_roles = "moderator"\n',
            {},
            'must be "admin" or "admin,moderator"',
        ),
        (
            f'database_url = "{DB}"\n[list_sync]\nproxy = "proxy.example:3128"\n',
            {},
            "must be a proxy's URL such as http://proxy.example:3128 (user:password@ allowed), or"
            " empty for none; it is 'proxy.example:3128'.",
        ),
        (
            f'database_url = "{DB}"\n',
            {"PODMOD_LIST_SYNC_PROXY": "http://proxy.example:3128/path"},
            "list_sync.proxy (from PODMOD_LIST_SYNC_PROXY) must be a proxy's URL with no path",
        ),
        (
            f'database_url = "{DB}"\n[[lists]]\nname = "this-pod"\nurl = "https://l.example/"\n',
            {},
            "is podmod's own list of this pod",
        ),
        (
            f'database_url = "{DB}"\n[[lists]]\nname = "core"\n',
            {},
            "list 'core' in ",  # (then: the file's path)
        ),
        (
            f'database_url = "{DB}"\n[[lists]]\nname = "core"\n',
            {},
            ' has no url; set url = "https://…" to the address of its list file.',
        ),
        (
            f'database_url = "{DB}"\n[[lists]]\nurl = "https://l.example/x.csv"\n',
            {},
            ' has no name; give it one, such as name = "core" (lower-case letters',
        ),
    ],
)
def test_bad_values_are_one_clear_sentence(tmp_path, content, environ, message):
    path = tmp_path / "podmod.toml"
    path.write_text(content)
    with pytest.raises(ConfigError) as error:
        load_config(path, environ=environ)
    assert message in str(error.value)
    assert "\n" not in str(error.value)


@pytest.mark.parametrize(
    ("content", "environ", "shown"),
    [
        (
            "",
            {"PODMOD_DATABASE_URL": "mysql://podmod:placeholder-secret@db.example/pod"},
            "podmod:***@db.example",
        ),
        (
            f'database_url = "{DB}"\nredis_url = "http://:placeholder-secret@redis.example/1"\n',
            {},
            ":***@redis.example",
        ),
        (
            'database_url = "postgres//alice:placeholder-secret@db.example/pod"\n',
            {},
            "postgres//alice:***@db.example",
        ),
        (
            LIST.replace("https://l.example", "ftp://alice:placeholder-secret@l.example"),
            {},
            "alice:***@l.example",
        ),
        (
            f'database_url = "{DB}"\n[list_sync]\nproxy = "socks5://bob:placeholder-secret@p:1"\n',
            {},
            "bob:***@p:1",
        ),
    ],
)
def test_a_bad_url_is_named_without_its_password(tmp_path, content, environ, shown):
    path = tmp_path / "podmod.toml"
    path.write_text(content)
    with pytest.raises(ConfigError) as error:
        load_config(path, environ=environ)
    assert "placeholder-secret" not in str(error.value) and shown in str(error.value)


def test_explicit_config_file_that_does_not_exist_is_an_error(tmp_path):
    with pytest.raises(ConfigError, match="does not exist"):
        load_config(environ={"PODMOD_CONFIG": str(tmp_path / "missing.toml")})


def test_the_command_exits_2_with_one_line_on_a_bad_value(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith("PODMOD_")}
    env["PODMOD_CONFIG"] = str(tmp_path / "podmod.toml")
    (tmp_path / "podmod.toml").write_text(f'database_url = "{DB}"\n[reader]\nbatch_size = -1\n')
    result = subprocess.run(
        [sys.executable, "-m", "podmod.cli", "cases"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1
    assert result.stderr.startswith("podmod: reader.batch_size")


toml_values = st.one_of(
    st.text(max_size=30),
    st.integers(-10, 10**9),
    st.floats(allow_nan=False),
    st.booleans(),
    st.lists(st.integers(), max_size=3),
)


@settings(max_examples=300, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    values=st.dictionaries(
        st.sampled_from([key.name for key in KEYS] + ["bogus", "reader.bogus", "lists"]),
        toml_values,
        max_size=6,
    ),
    environ=st.dictionaries(
        st.sampled_from([key.env for key in KEYS]), st.text(max_size=20), max_size=3
    ),
)
def test_any_configuration_either_loads_or_says_what_is_wrong(tmp_path_factory, values, environ):
    lines = []
    for name, value in values.items():
        table, _, key = name.rpartition(".")
        rendered = _toml(value)
        lines.append(f"[{table}]\n{key} = {rendered}" if table else f"{key} = {rendered}")
    top = [line for line in lines if not line.startswith("[")]
    tables = [line for line in lines if line.startswith("[")]
    text = "\n".join(top + tables) + "\n"
    path = tmp_path_factory.mktemp("fuzz") / "podmod.toml"
    path.write_text(text)
    try:
        config = load_config(path, environ=environ)
    except ConfigError as error:
        message = str(error)
        assert message and "\n" not in message and message.endswith((".", ")"))
        return
    assert config.database_url  # it loaded: the one required key is there


def _toml(value) -> str:
    import json

    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value in (float("inf"), float("-inf")):
        return "inf" if value > 0 else "-inf"
    return json.dumps(value)


def _two_lists(tmp_path, first: str, second: str, *, url: str = "https://l.example/x.csv"):
    path = tmp_path / "podmod.toml"
    path.write_text(
        f'database_url = "{DB}"\n[[lists]]\nname = "a"\nurl = "{url}"\n{first}\n'
        f'[[lists]]\nname = "b"\nurl = "https://L.EXAMPLE/x.csv"\n{second}\n'
    )
    return load_config(path, environ={})


def test_the_same_list_subscribed_twice_is_refused_as_counting_its_matches_twice(tmp_path):
    # (a [[lists]] table copied and renamed, its url left: every match counted twice, and
    # list_sync.threshold = 2 met by one source)
    with pytest.raises(ConfigError) as refused:
        _two_lists(tmp_path, 'policy = "review"', 'policy = "lock"\nlabels = ["spam"]')
    message = str(refused.value)
    assert message.startswith("Lists 'a' and 'b' in ") and "\n" not in message
    assert "both fetch https://L.EXAMPLE/x.csv and both apply its account, pod," in message
    assert "each of their matches would count twice" in message
    with pytest.raises(ConfigError, match="both apply its pod entries"):
        _two_lists(tmp_path, 'kinds = ["pod", "account"]', 'kinds = ["pod"]')


def test_the_same_list_twice_is_allowed_where_the_two_apply_different_entries(tmp_path):
    apart = [
        ('kinds = ["account"]\npolicy = "lock"', 'kinds = ["pod"]'),
        ('labels = ["spam"]\npolicy = "lock"', 'labels = ["hate-speech"]'),
        ('policy = "allow"', ""),  # (an allowlist flags nobody)
        ('policy = "ignore"', ""),
    ]
    for first, second in apart:
        assert [s.name for s in _two_lists(tmp_path, first, second).lists] == ["a", "b"]
    other = _two_lists(tmp_path, "", "", url="https://l.example/y.csv")
    assert len(other.lists) == 2


def test_list_settings_are_normalised_as_entries_are(tmp_path):
    path = tmp_path / "podmod.toml"
    path.write_text(
        LIST + 'format = "domains"\nlabels = ["IFTAS:Hate-Speech", "spam", "Spam"]\n'
        'lock_labels = ["Campaign"]\nrequire_canary = "AUD.invalid"\n'
    )
    [subscription] = load_config(path, environ={}).lists
    assert subscription.format == "domains"
    assert subscription.labels == ("hate-speech", "spam")
    assert subscription.lock_labels == ("campaign",)
    assert subscription.require_canary == "aud.invalid"


def test_the_readmes_neighbouring_servers_lists_are_a_valid_config(tmp_path):
    readme = (Path(__file__).parent.parent / "README.md").read_text()
    after = readme.split("A neighbouring server's own blocks", 1)[1]
    example = after.split("```toml\n", 1)[1].split("```", 1)[0]
    path = tmp_path / "podmod.toml"
    path.write_text(example)

    lists = load_config(path, environ={"PODMOD_DATABASE_URL": DB}).lists

    assert [(s.name, s.public_key, s.policy) for s in lists] == [
        ("neighbour-akkoma", None, "review"),
        ("neighbour-mastodon", None, "review"),
        ("neighbour-friendica", None, "review"),
        ("neighbour-gotosocial", None, "review"),
        ("neighbour-lemmy", None, "review"),
    ]
    assert all(s.url.startswith("https://") for s in lists)


OPEN_PEERS = (
    "asks the server for the servers it federates with (/api/v1/instance/peers without"
    " filter=blocked), not those it blocks: set filter=blocked (filter=suspended on older"
    " GoToSocial), or use /api/v1/instance/domain_blocks, where Mastodon and newer GoToSocial"
    " publish their blocks."
)
FLAT = "asks for bare names (flat=true), which cannot be told from the servers an instance"
ALLOWS = 'asks the server for the servers it allows, not those it blocks: set policy = "allow"'
BLOCKS_ALLOWED = 'asks the server for the servers it blocks, and its policy "allow" would exempt'


@pytest.mark.parametrize(
    ("url", "policy", "refused"),
    [
        ("https://gts.example/api/v1/instance/peers", "review", OPEN_PEERS),  # (Mastodon's too)
        ("https://gts.example/api/v1/instance/peers?filter=", "review", OPEN_PEERS),
        ("https://gts.example/api/v1/instance/peers?filter=open", "allow", OPEN_PEERS),
        ("https://gts.example/api/v1/instance/peers?filter=suspended,open", "review", OPEN_PEERS),
        ("https://gts.example/api/v1/instance/peers/?filter=Blocked,%20OPEN", "lock", OPEN_PEERS),
        ("https://gts.example/social/api/v1/instance/peers?filter=open&x=1", "review", OPEN_PEERS),
        ("https://gts.example/api/v1/instance/peers?filter=blocked&flat=TRUE", "review", FLAT),
        ("https://gts.example/api/v1/instance/peers?filter=allowed", "review", ALLOWS),
        ("https://gts.example/api/v1/instance/domain_allows", "lock", ALLOWS),
        ("https://gts.example/api/v1/instance/domain_blocks", "allow", BLOCKS_ALLOWED),
        ("https://gts.example/api/v1/instance/peers?filter=blocked", "allow", BLOCKS_ALLOWED),
        ("https://gts.example/api/v1/instance/peers?filter=suspended", "review", None),
        ("https://gts.example/api/v1/instance/peers?filter=%20BLOCKED&flat=false", "lock", None),
        ("https://gts.example/api/v1/instance/peers?filter=allowed", "allow", None),
        ("https://gts.example/api/v1/instance/domain_allows", "allow", None),
        ("https://gts.example/api/v1/instance/domain_blocks", "review", None),
        ("https://lists.example/api/v1/instance/peers.csv", "review", None),
    ],
)
def test_a_list_url_asking_a_server_for_other_servers_than_its_policy_means_is_refused(
    tmp_path, url, policy, refused
):
    """GoToSocial names the servers it federates with (open) beside those it blocks when asked
    for `open`, and Mastodon only those; a blocking list subscribed to them, or to a server's
    allowlist, would block every one, and an allowlist subscribed to a server's blocks would
    exempt every server it blocks from every list."""
    path = tmp_path / "podmod.toml"
    path.write_text(
        f'database_url = "{DB}"\n[[lists]]\nname = "gts"\nurl = "{url}"\npolicy = "{policy}"\n'
    )

    if refused:
        with pytest.raises(ConfigError) as error:
            load_config(path, environ={})
        assert str(error.value).startswith(f"url of list 'gts' in {path} {refused}")
    else:
        assert load_config(path, environ={}).lists[0].url == url


def test_signed_file_and_approve_roles_load(tmp_path):
    path = tmp_path / "podmod.toml"
    path.write_text(
        f'database_url = "{DB}"\n[web]\napprove_roles = "admin,moderator"\n'
        f'[[lists]]\nname = "x"\nurl = "https://l.example/x.csv"\npublic_key = "{KEY}"\n'
        'signed_file = "core.csv"\n'
    )
    config = load_config(path, environ={})
    assert config["web.approve_roles"] == "admin,moderator"
    assert config.lists[0].signed_file == "core.csv"
    assert load_config(environ={"PODMOD_DATABASE_URL": DB})["web.approve_roles"] == "admin"
