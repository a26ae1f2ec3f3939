"""The guard on outgoing HTTPS requests: what it refuses before any connection, and that every
address a host has is checked, embedded IPv4 addresses included."""

from __future__ import annotations

import socket
from typing import Any

import pytest

from podmod import netguard


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("https://127.0.0.1:8443\\@8.8.8.8/x.jpg", "backslash"),
        ("https://pod.example\\.evil.example/x.jpg", "backslash"),
        ("http://pod.example/x.jpg", "only https://"),
        ("https://pod.exämple/x.jpg", "other than ASCII"),
        ("https://pod.example\x1b[2J/x.jpg", "control character"),
        ("https://127.0.0.1\n.pod.example/x.jpg", "control character"),
        ("https://pod .example/x.jpg", "a space"),
        ("https://%31%32%37.0.0.1/x.jpg", "is not a host name or an IP address"),
        ("https://pod.example:99999/x.jpg", "host or port cannot be read"),
        ("https://[::1/x.jpg", "host or port cannot be read"),
    ],
)
def test_what_url_parsers_read_differently_is_refused_before_anything_is_resolved(
    url: str, reason: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(socket, "getaddrinfo", lambda *args, **kwargs: pytest.fail("resolved"))
    with pytest.raises(netguard.Refused, match=reason):
        netguard.resolve(netguard.parse(url))


@pytest.mark.parametrize(
    "address",
    [
        "127.0.0.1",
        "10.1.2.3",
        "100.64.0.1",
        "169.254.169.254",
        "224.0.0.1",
        "0.0.0.0",  # noqa: S104
        "::1",
        "::",
        "fe80::1",
        "fc00::1",
        "fec0::1",
        "ff0e::1",
        "::ffff:127.0.0.1",
        "::127.0.0.1",
        "64:ff9b::a9fe:a9fe",
        "64:ff9b:1::808:808",
        "2002:a00:1::1",
        "2001:0:4136:e378:8000:63bf:80ff:fffe",
    ],
)
def test_every_private_address_and_every_ipv6_form_carrying_one_is_refused(address: str) -> None:
    host = f"[{address}]" if ":" in address else address
    with pytest.raises(netguard.Refused, match="is on a private network"):
        netguard.resolve(netguard.parse(f"https://{host}/x.jpg"))


@pytest.mark.parametrize("address", ["8.8.8.8", "2606:4700::1111", "64:ff9b::808:808"])
def test_public_addresses_pass(address: str) -> None:
    host = f"[{address}]" if ":" in address else address
    destination = netguard.resolve(netguard.parse(f"https://{host}:8443/x.jpg"))
    assert destination.addresses == (address,) and destination.port == 8443


def test_one_private_address_among_public_ones_refuses_the_host(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def answers(host: Any, port: Any, *args: Any, **kwargs: Any) -> list[Any]:
        assert host == "photos.example"
        return [
            (socket.AF_INET, socket.SOCK_STREAM, 6, "", ("8.8.8.8", port)),
            (socket.AF_INET6, socket.SOCK_STREAM, 6, "", ("64:ff9b::7f00:1", port, 0, 0)),
        ]

    monkeypatch.setattr(socket, "getaddrinfo", answers)
    with pytest.raises(netguard.Refused) as refused:
        netguard.resolve(netguard.parse("https://photos.example/x.jpg"))
    assert str(refused.value) == (
        "the host photos.example is on a private network (64:ff9b::7f00:1, which carries 127.0.0.1)"
    )


def test_a_user_name_and_a_private_address_pass_only_for_the_trusted_host() -> None:
    target = netguard.parse("https://alice:placeholder@127.0.0.1:8443/core.csv")
    with pytest.raises(netguard.Refused, match="user name or password"):
        netguard.resolve(target)
    assert netguard.resolve(target, trusted=True).addresses == ("127.0.0.1",)
