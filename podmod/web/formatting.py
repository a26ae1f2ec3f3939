"""Jinja filters for the pages: ages, UTC times, hosts of handles, numbers, how a case ended, and
links to the pod."""

from __future__ import annotations

import itertools
import json
import re
from datetime import UTC, datetime
from typing import Any

from flask import Flask
from markupsafe import Markup, escape

from podmod.redact import printable
from podmod.store import outcome
from podmod.web.services import services
from podmod.words import counted


def age(moment: datetime | None, now: datetime | None = None) -> str:
    """'3d', '5h', '12m', '40s' since `moment`; '-' for none."""
    if moment is None:
        return "-"
    now = now or datetime.now(UTC)
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    seconds = (now - moment).total_seconds()
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{int(seconds // size)}{unit}"
    return f"{max(int(seconds), 0)}s"


def when(moment: datetime | None) -> str:
    """A UTC time as '2024-05-01 14:03 UTC'; 'never' for none."""
    if moment is None:
        return "never"
    if moment.tzinfo is not None:
        moment = moment.astimezone(UTC)
    return moment.strftime("%Y-%m-%d %H:%M UTC")


def host(handle: str | None) -> str:
    """The pod part of a handle: 'pod.example' of 'alice@pod.example'."""
    if not handle or "@" not in handle:
        return ""
    return handle.split("@", 1)[1]


def number(value: int | None) -> str:
    return f"{value or 0:,}"


ENTRY_KIND_WORDS = {
    "phrase": "phrase match",
    "hashtag": "hashtag match",
    "url": "link match",
    "pdq": "photo match",
    "sha256": "photo match",
}


def why(case: dict[str, Any], facts: dict[str, Any] | None) -> str:
    """What lifts a case in the queue, in words: 'appealed · 3 reporters · list core · phrase
    match · local' (the terms of its priority, README "Priority")."""
    facts = facts or {}
    parts = ["appealed"] if facts.get("appealed") else []
    # (reviewed reports count for nothing in an open case's priority: its reporters are named
    # while one of them waits; a closed case keeps who reported it)
    if case["reporter_count"] and (case["pending_report_count"] or case["status"] != "open"):
        parts.append(counted(case["reporter_count"], "reporter"))
    elif case["pending_report_count"]:
        parts.append(counted(case["pending_report_count"], "pending report"))
    lists = facts.get("lists") or []
    if lists:
        parts.append(("list " if len(lists) == 1 else "lists ") + ", ".join(lists))
    kinds = dict.fromkeys(
        ENTRY_KIND_WORDS.get(kind, f"{kind} match") for kind in facts.get("content_kinds") or []
    )
    parts += kinds
    if case["local"]:
        parts.append("local")
    return " · ".join(parts)


def snippet(text: str | None, length: int = 120) -> str:
    """The start of a text on one line, for a table cell."""
    if not text:
        return ""
    flat = " ".join(text.split())
    return flat if len(flat) <= length else flat[: length - 1].rstrip() + "…"


# Details the page shows elsewhere (the ip under "From where") or that are podmod's and diaspora*'s
# own row numbers, which tell a moderator nothing.
HIDDEN_DETAILS = ("ip", "user_id", "person_id", "case_id", "signal_id", "report_id")


# Unicode's first strong isolate and pop directional isolate: `<bdi>` inside a line of text.
ISOLATE, END_ISOLATE = "\u2068", "\u2069"


def details_text(details: dict[str, Any] | None, skip: tuple[str, ...] = HIDDEN_DETAILS) -> str:
    """An audit row's details as short 'key: value' text (escaped by the template), each value
    but a number isolated (FSI … PDI, without format characters of its own, so none ends the
    isolate early): a label or a reason written right to left turns only itself around, never
    the line's keys and the values after it."""
    if not details:
        return ""
    parts = []
    for key, value in details.items():
        if key in skip:
            continue
        shown = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
        shown = printable(shown)
        if len(shown) > 200:
            shown = shown[:200] + "…"
        if isinstance(value, (str, list, dict)):  # (a number or true is podmod's own)
            shown = f"{ISOLATE}{shown}{END_ISOLATE}"
        parts.append(f"{key.replace('_', ' ')}: {shown}")
    return "; ".join(parts)


# A command or setting as podmod's sentences name it for a terminal: `podmod lists show`.
_CODE_SPAN = re.compile(r"`([^`\n]{1,300})`")


def commands(text: str) -> Markup:
    """One of podmod's sentences for a page (a sync's error, a hold's reason, a flash message):
    escaped, each command or setting it names between backticks, as the terminal shows it, set
    as code."""
    parts = _CODE_SPAN.split(str(text))  # (outside, inside, outside, …)
    return Markup("").join(
        Markup("<code>{}</code>").format(part) if inside else escape(part)
        for inside, part in zip(itertools.cycle((False, True)), parts, strict=False)
    )


def case_state(case: dict[str, Any]) -> str:
    """'open', or how the case ended: 'closed: locked', 'closed: dismissed', ..."""
    ended = outcome(case["status"], case["resolution"])
    return "open" if ended is None else f"closed: {ended}"


def pod_link(path: str) -> str:
    """A link to a page of diaspora* itself (web.pod_url, or the same host)."""
    base = services().config["web.pod_url"].rstrip("/")
    return base + path


def init_app(app: Flask) -> None:
    app.jinja_env.filters.update(
        age=age,
        when=when,
        host=host,
        number=number,
        counted=counted,
        snippet=snippet,
        details_text=details_text,
        printable=printable,
        case_state=case_state,
        commands=commands,
    )
    app.jinja_env.globals.update(pod_link=pod_link, why=why)
