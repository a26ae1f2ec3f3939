"""The notification settings ([mail], [alerts], [notify], web.public_url, [[webhooks]]): each bad
value is one sentence naming the key and what to do, and a password is never shown."""

from __future__ import annotations

import re

import pytest

from podmod.config import EVENT_TYPES, load_config
from podmod.errors import ConfigError

DB = "postgresql://podmod@localhost/diaspora_production"
GOOD = '[web]\npublic_url = "https://pod.example/podmod"\n'
SECRET = "0123456789abcdef0123"


def load(tmp_path, text: str, **environ: str):
    path = tmp_path / "podmod.toml"
    path.write_text(f'database_url = "{DB}"\n' + text)
    return load_config(path, environ=environ)


def refused(tmp_path, text: str, **environ: str) -> str:
    with pytest.raises(ConfigError) as raised:
        load(tmp_path, text, **environ)
    message = str(raised.value)
    assert not re.search(r"\. [A-Z]", message) and message.endswith("."), message  # one sentence
    return message


def test_the_defaults_send_nothing(tmp_path):
    config = load(tmp_path, "")
    assert config["mail.smtp_url"] == "" and config.webhooks == ()
    assert config["alerts.min_priority"] == 30 and config["alerts.to"] == ()
    assert config["alerts.digest_minutes"] == 0
    assert config["notify.reporters"] is False and config["notify.locked_accounts"] is False


def test_a_full_notification_config_loads(tmp_path):
    config = load(
        tmp_path,
        GOOD + '[mail]\nsmtp_url = "smtp+starttls://user:pass@mail.example:587"\n'
        'from = "podmod <podmod@pod.example>"\n'
        '[alerts]\nmin_priority = 40\nto = ["team@pod.example"]\ndigest_minutes = 5\n'
        "[notify]\nreporters = true\n"
        f'[[webhooks]]\nurl = "https://chat.example/hook"\nsecret = "{SECRET}"\n'
        'events = ["case.alert", "list.held"]\n'
        f'[[webhooks]]\nurl = "http://127.0.0.1:8080/bridge"\nsecret = "{SECRET}"\n',
    )
    assert config["web.public_url"] == "https://pod.example/podmod/"  # a trailing / added
    assert config["alerts.to"] == ("team@pod.example",)
    assert [hook.events for hook in config.webhooks] == [("case.alert", "list.held"), EVENT_TYPES]
    assert SECRET not in repr(config.webhooks)


def test_environment_variables_set_the_mail_keys(tmp_path):
    config = load(
        tmp_path,
        GOOD,
        PODMOD_MAIL_SMTP_URL="smtps://mail.example",
        PODMOD_MAIL_FROM="podmod@pod.example",
        PODMOD_ALERTS_TO="a@pod.example, b@pod.example",
    )
    assert config["alerts.to"] == ("a@pod.example", "b@pod.example")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            '[mail]\nsmtp_url = "http://user:secret-pass@mail.example"\nfrom = "p@pod.example"\n',
            "mail.smtp_url (in {path}) must be an SMTP URL such as smtp://127.0.0.1:25, "
            "smtps://user:password@mail.example:465 or smtp+starttls://mail.example:587 (or empty "
            "for no mail); it is 'http://user:***@mail.example'.",
        ),
        (
            '[mail]\nsmtp_url = "smtp://mail.example:port"\nfrom = "p@pod.example"\n',
            "mail.smtp_url (in {path}) has a port that is not a number from 0 to 65535; it is "
            "'smtp://mail.example:port'.",
        ),
        (
            '[mail]\nsmtp_url = "smtp://mail.example"\n',
            "mail.smtp_url is set but mail.from is not: set mail.from (PODMOD_MAIL_FROM) to the "
            "address podmod's mail comes from, such as podmod@pod.example, in {path}.",
        ),
        (
            '[mail]\nfrom = "not an address"\n',
            "mail.from (in {path}) must be a mail address such as podmod@pod.example or "
            "\"podmod <podmod@pod.example>\"; it is 'not an address'.",
        ),
        (
            '[alerts]\nto = ["team@pod.example", "nobody"]\n',
            "alerts.to (in {path}) holds 'nobody', which is not a mail address such as "
            "\"admin@pod.example\"; it is ['team@pod.example', 'nobody'].",
        ),
        (
            '[alerts]\nto = "team@pod.example"\n',
            None,  # a single string from the file is a list of one: accepted
        ),
        (
            "[alerts]\nto = [1]\n",
            'alerts.to (in {path}) must be a list of strings, such as ["admin@pod.example"], '
            "not [1].",
        ),
        (
            "[alerts]\nmin_priority = 0\n",
            "alerts.min_priority (in {path}) must be greater than 0; it is 0.",
        ),
        (
            "[alerts]\ndigest_minutes = -5\n",
            "alerts.digest_minutes (in {path}) must be 0 or more; it is -5.",
        ),
        (
            '[notify]\nreporters = "maybe"\n',
            "notify.reporters (in {path}) must be true or false, not 'maybe'.",
        ),
        (
            '[web]\npublic_url = "pod.example/podmod"\n',
            "web.public_url (in {path}) must be podmod's own address, such as "
            "https://pod.example/podmod/ (or empty); it is 'pod.example/podmod'.",
        ),
    ],
)
def test_a_bad_notification_value_is_one_sentence(tmp_path, text, expected):
    path = tmp_path / "podmod.toml"
    if expected is None:
        assert load(tmp_path, GOOD + text)["alerts.to"] == ("team@pod.example",)
        return
    prefix = "" if text.startswith("[web]") else GOOD
    assert refused(tmp_path, prefix + text) == expected.format(path=path)


def test_mail_or_webhooks_without_a_public_url_are_refused(tmp_path):
    message = refused(
        tmp_path, '[mail]\nsmtp_url = "smtp://127.0.0.1"\nfrom = "podmod@pod.example"\n'
    )
    assert message.startswith("Mail or webhooks are configured but web.public_url is not")


@pytest.mark.parametrize(
    ("hook", "expected"),
    [
        (
            f'url = "http://chat.example/hook"\nsecret = "{SECRET}"\n',
            "url of [[webhooks]] number 1 in {path} must use https:// (plain http:// is allowed "
            "only to loopback, such as a chat bridge on 127.0.0.1); it is "
            "'http://chat.example/hook'.",
        ),
        (
            f'url = "ftp://127.0.0.1/hook"\nsecret = "{SECRET}"\n',
            "url of [[webhooks]] number 1 in {path} must be an https:// address (http:// only to "
            "loopback); it is 'ftp://127.0.0.1/hook'.",
        ),
        (
            'url = "https://chat.example/hook"\nsecret = "short"\n',
            "secret of [[webhooks]] number 1 in {path} must be a string of 16 or more characters "
            "that the receiver also knows (e.g. `openssl rand -hex 32`).",
        ),
        (
            f'url = "https://chat.example/hook"\nsecret = "{SECRET}"\nevents = ["case.new"]\n',
            "events of [[webhooks]] number 1 in {path} names the unknown event 'case.new'; use "
            "some of case.alert, account.locked, account.unlocked, list.held, list.failing, "
            "list.stale, appeal.received, appeal.decided.",
        ),
        (
            f'url = "https://chat.example/hook"\nsecret = "{SECRET}"\nevents = []\n',
            "events of [[webhooks]] number 1 in {path} must be a list of event names, such as "
            '["case.alert"].',
        ),
        (
            f'url = "https://chat.example/hook"\nsecret = "{SECRET}"\nsecrets = "x"\n',
            "Unknown key 'secrets' in [[webhooks]] number 1 in {path}; allowed: url, secret, "
            "events.",
        ),
    ],
)
def test_a_bad_webhook_is_one_sentence_without_its_secret(tmp_path, hook, expected):
    path = tmp_path / "podmod.toml"
    message = refused(tmp_path, GOOD + "[[webhooks]]\n" + hook)
    assert message == expected.format(path=path)
    assert SECRET not in message
