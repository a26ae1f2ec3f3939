"""Posting one event to a webhook receiver: a JSON body signed as Mastodon's webhooks are,
`X-Hub-Signature: sha256=<hex HMAC-SHA256 of the body with the secret>`."""

from __future__ import annotations

import hashlib
import hmac
import json
from typing import Any
from urllib.parse import urlsplit

from podmod.config import Config, WebhookConfig
from podmod.errors import DeliveryFailed
from podmod.redact import printable

TIMEOUT = (5.0, 10.0)  # seconds to connect, and to wait for the answer
ANSWER_BYTES = 1024  # of a receiver's answer, read and quoted at most
USER_AGENT = "podmod-webhooks"


def body_bytes(payload: dict[str, Any]) -> bytes:
    """The exact bytes signed and sent."""
    return json.dumps(payload, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def signature(secret: str, body: bytes) -> str:
    """The X-Hub-Signature header's value for `body`."""
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def receiver_name(url: str) -> str:
    """A receiver as pages and logs show it: scheme, host and port (its path may hold a token)."""
    parts = urlsplit(url)
    port = f":{parts.port}" if parts.port else ""
    return f"{parts.scheme}://{parts.hostname}{port}/…"


def _without_path(text: str, url: str) -> str:
    """An error's text with the receiver's path and query hidden (requests quotes them: "Max
    retries exceeded with url: /hook/<token>"), as receiver_name hides them."""
    parts = urlsplit(url)
    secret = parts.path + (f"?{parts.query}" if parts.query else "")
    text = printable(text)
    return text.replace(secret, "/…") if len(secret) > 1 else text


def find_webhook(config: Config, url: str) -> WebhookConfig:
    for hook in config.webhooks:
        if hook.url == url:
            return hook
    raise DeliveryFailed(
        f"The webhook {receiver_name(url)} is no longer in the config ([[webhooks]]); nothing "
        "was sent.",
        permanent=True,
    )


def post(config: Config, url: str, payload: dict[str, Any], *, delivery: int) -> int:
    """POST the event to the receiver at `url`; its HTTP status when it is 2xx, else raise
    DeliveryFailed. Redirects are not followed; at most ANSWER_BYTES of the answer are read."""
    hook = find_webhook(config, url)
    body = body_bytes(payload)
    headers = {
        "Content-Type": "application/json",
        "User-Agent": USER_AGENT,
        "X-Hub-Signature": signature(hook.secret, body),
        "X-Podmod-Event": payload["type"],
        "X-Podmod-Delivery": str(delivery),
    }
    where = receiver_name(url)
    import requests  # (5 MiB: loaded by the worker that sends, not by the web app that lists)

    try:
        with requests.post(
            url, data=body, headers=headers, timeout=TIMEOUT, allow_redirects=False, stream=True
        ) as answer:
            excerpt = answer.raw.read(ANSWER_BYTES, decode_content=True) or b""
            status = answer.status_code
    except requests.Timeout:
        raise DeliveryFailed(
            f"The webhook receiver {where} did not answer within {TIMEOUT[1]:.0f} s."
        ) from None
    except requests.exceptions.SSLError as error:
        reason = _without_path(str(error), url)[:200]
        raise DeliveryFailed(f"TLS with the webhook receiver {where} failed ({reason}).") from None
    except requests.RequestException as error:
        reason = _without_path(str(error.__context__ or error), url)[:200]
        raise DeliveryFailed(
            f"Cannot reach the webhook receiver {where} ({reason}); check that it is running "
            "and its url in [[webhooks]]."
        ) from None
    if 200 <= status < 300:
        return status
    said = printable(excerpt.decode("utf-8", "replace")).strip()[:200]
    raise DeliveryFailed(
        f"The webhook receiver {where} answered HTTP {status}{': ' + said if said else ''}.",
        status=status,
    )
