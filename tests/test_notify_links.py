"""Signed links in mails: made and checked with the install's one key, for one purpose, expiring."""

from __future__ import annotations

import time
from datetime import timedelta

import pytest

from podmod.notify import links


def test_a_token_gives_back_its_subject_for_its_purpose_only(state):
    token = links.sign(state, "appeal", "someone@pod.example")
    state.commit()
    assert links.check(state, "appeal", token) == "someone@pod.example"
    with pytest.raises(links.LinkInvalid):
        links.check(state, "opt-out", token)  # made for an appeal, not an opt-out
    assert links.check(state, "opt-out", links.sign(state, "opt-out", 42)) == 42


def test_a_changed_or_cut_token_is_refused_with_a_sentence(state):
    token = links.sign(state, "appeal", "someone@pod.example")
    for bad in (token[:-3], token.replace(token[2], "x" if token[2] != "x" else "y", 1), "", "a.b"):
        with pytest.raises(links.LinkInvalid) as refused:
            links.check(state, "appeal", bad)
        assert "not one this pod sent" in str(refused.value)


def test_every_process_agrees_on_the_key_and_a_new_key_voids_old_links(state):
    token = links.sign(state, "appeal", "someone@pod.example")
    state.commit()
    first = links.signing_key(state)
    assert links.signing_key(state) == first and len(first) == links.KEY_BYTES
    state.execute("DELETE FROM podmod.link_key")
    state.commit()
    with pytest.raises(links.LinkInvalid):
        links.check(state, "appeal", token)


def test_an_old_token_expires(state):
    token = links.sign(state, "appeal", "someone@pod.example")
    time.sleep(2.1)  # itsdangerous dates tokens to the second
    with pytest.raises(links.LinkExpired) as expired:
        links.check(state, "appeal", token, max_age=timedelta(seconds=1))
    assert "no longer works" in str(expired.value)
    assert links.check(state, "appeal", token, max_age=timedelta(days=30)) == "someone@pod.example"


def test_an_unknown_purpose_is_a_programming_error(state):
    with pytest.raises(ValueError):
        links.sign(state, "anything", "x")
