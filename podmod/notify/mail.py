"""Composing podmod's mail: a text and an HTML part from Jinja templates, with Message-ID, Date,
From, To and `Auto-Submitted: auto-generated`.

Templates are looked up first in `mail.templates_dir`, then among the built-in ones
(podmod/notify/templates): `<name>.subject.txt`, `<name>.txt` and `<name>.html`. Their strings are
English, translated by the message catalog of the recipient's users.language
(`catalogs/<language>.toml` in mail.templates_dir, then podmod/notify/catalogs).
"""

from __future__ import annotations

import functools
import re
import tomllib
from dataclasses import dataclass, field
from email.message import EmailMessage
from email.utils import format_datetime
from importlib import resources
from pathlib import Path
from typing import Any

import jinja2
from markupsafe import Markup

from podmod.config import Config, mail_address
from podmod.errors import DeliveryFailed

DEFAULT_LANGUAGE = "en"
LANGUAGE = re.compile(r"[a-z]{2,3}(-[A-Za-z0-9]{2,8})?")  # "de", "pt-BR": never a path


@dataclass(frozen=True)
class Catalog:
    """English text to another language: `"msgid" = "translation"`; a plural's msgid is its
    singular and its translation a pair [singular, plural] (the first is for exactly one)."""

    language: str
    messages: dict[str, Any] = field(default_factory=dict)

    def gettext(self, text: str) -> str:
        found = self.messages.get(text)
        return found if isinstance(found, str) else text

    def ngettext(self, singular: str, plural: str, number: int) -> str:
        found = self.messages.get(singular)
        if isinstance(found, list) and len(found) == 2:
            return found[0] if number == 1 else found[1]
        return singular if number == 1 else plural

    def separators(self) -> tuple[str, str]:
        """How the language groups thousands and marks decimals, from the translation of
        NUMBER_SAMPLE ("1.000,5" in German); English's (",", ".") without one."""
        marks = [mark for mark in re.split(r"\d+", self.gettext(NUMBER_SAMPLE)) if mark]
        return (marks[0], marks[-1]) if len(marks) == 2 else (",", ".")


# The catalog's key for how numbers are written: `"1,000.5" = "1.000,5"` (README, "Adding a
# language").
NUMBER_SAMPLE = "1,000.5"
# A count in a message (`%(num)d`): written with the language's thousands separator.
_COUNT = re.compile(r"%\((\w+)\)d")


def number_text(value: float, separators: tuple[str, str] = (",", "."), places: int = 0) -> str:
    """A number as the mail's language writes it: "12,000" in English, "12.000" in German."""
    grouped = f"{value:,.{places}f}"
    thousands, decimal = separators
    return grouped.translate(str.maketrans({",": thousands, ".": decimal}))


def share_number(share: float, separators: tuple[str, str] = (",", ".")) -> str:
    """A share's number (without its % sign) as versions.share_text rounds it: "12", and below
    1% to two places ("0.05")."""
    return number_text(share * 100, separators, 0 if share >= 0.01 or share == 0 else 2)


def _catalog_text(templates_dir: str | None, language: str) -> str | None:
    if templates_dir:
        own = Path(templates_dir) / "catalogs" / f"{language}.toml"
        if own.is_file():
            return own.read_text(encoding="utf-8")
    built_in = resources.files("podmod.notify").joinpath("catalogs", f"{language}.toml")
    return built_in.read_text(encoding="utf-8") if built_in.is_file() else None


@functools.lru_cache(maxsize=32)
def catalog(templates_dir: str | None, language: str) -> Catalog | None:
    """The catalog of `language` ("de"), or None when there is none."""
    if language == DEFAULT_LANGUAGE or not LANGUAGE.fullmatch(language):
        return None
    text = _catalog_text(templates_dir, language)
    if text is None:
        return None
    try:
        return Catalog(language, tomllib.loads(text))
    except tomllib.TOMLDecodeError as error:
        raise DeliveryFailed(
            f"The message catalog {language}.toml is not valid TOML ({error}); correct it."
        ) from None


def choose_language(templates_dir: str | None, wanted: str | None) -> str:
    """The language to write in for a users.language such as "de", "pt-BR" or "de_DE": the
    catalog of exactly that, else of its first part, else English."""
    if not wanted:
        return DEFAULT_LANGUAGE
    exact = wanted.strip().replace("_", "-")
    for language in (exact, exact.split("-")[0].lower()):
        if language == DEFAULT_LANGUAGE or catalog(templates_dir, language) is not None:
            return language
    return DEFAULT_LANGUAGE


@functools.lru_cache(maxsize=32)
def environment(templates_dir: str | None, language: str) -> jinja2.Environment:
    loaders: list[jinja2.BaseLoader] = [jinja2.PackageLoader("podmod.notify", "templates")]
    if templates_dir:
        loaders.insert(0, jinja2.FileSystemLoader(templates_dir))
    env = jinja2.Environment(
        loader=jinja2.ChoiceLoader(loaders),
        autoescape=jinja2.select_autoescape(["html"]),
        undefined=jinja2.StrictUndefined,
        extensions=["jinja2.ext.i18n"],
        keep_trailing_newline=True,
    )
    found = catalog(templates_dir, language) or Catalog(DEFAULT_LANGUAGE)
    separators = found.separators()

    def formatted(context: Any, text: str, variables: dict[str, Any]) -> str:
        # (as Jinja's newstyle gettext: the message is the template's or its catalog's, and
        # Markup's % escapes the values in HTML; each count written as the language writes
        # numbers)
        for name in _COUNT.findall(text):
            value = variables.get(name)
            if isinstance(value, int) and not isinstance(value, bool):
                variables[name] = number_text(value, separators)
        text = _COUNT.sub(r"%(\1)s", text)
        return (Markup(text) if context.eval_ctx.autoescape else text) % variables  # noqa: S704

    @jinja2.pass_context
    def gettext(context: Any, text: str, **variables: Any) -> str:
        return formatted(context, found.gettext(text), variables)

    @jinja2.pass_context
    def ngettext(context: Any, singular: str, plural: str, num: int, **variables: Any) -> str:
        variables.setdefault("num", num)
        return formatted(context, found.ngettext(singular, plural, num), variables)

    env.newstyle_gettext = True  # type: ignore[attr-defined]
    env.globals.update(gettext=gettext, ngettext=ngettext)
    env.filters["number"] = lambda value: number_text(value, separators)
    env.filters["share"] = lambda value: share_number(value, separators)
    return env


def render(config: Config, name: str, language: str, context: dict[str, Any]) -> dict[str, str]:
    """The subject, text and html of template `name` in `language`."""
    env = environment(config["mail.templates_dir"], language)
    parts = {}
    for part, suffix in (("subject", ".subject.txt"), ("text", ".txt"), ("html", ".html")):
        try:
            parts[part] = env.get_template(name + suffix).render(context)
        except jinja2.TemplateError as error:
            raise DeliveryFailed(
                f"The mail template {name}{suffix} cannot be used ({error}); correct it "
                "(mail.templates_dir) or remove it to use the built-in one."
            ) from None
    parts["subject"] = " ".join(parts["subject"].split())  # one line, whatever the template did
    return parts


def domain_of(config: Config) -> str:
    """The domain of mail.from, for Message-IDs."""
    return (mail_address(config["mail.from"]) or "podmod.invalid").rpartition("@")[2]


def compose(config: Config, row: dict[str, Any]) -> EmailMessage:
    """The mail of one outbox row: the same Message-ID and Date on every attempt."""
    language = choose_language(config["mail.templates_dir"], row["language"])
    context = {**row["payload"], "language": language}
    if row["event_type"] == "digest":
        from podmod.notify.alerts import digest_payload  # (alerts imports this module)

        # A staff's mail an older podmod queued has none of the parts added since (withdrawn
        # versions, held locks, stale lists): it has none of them to tell, not a broken template.
        context = {**digest_payload(config, []), **context}
    parts = render(config, row["event_type"], language, context)
    message = EmailMessage()
    try:
        message["Subject"] = parts["subject"]
        message["From"] = config["mail.from"]
        message["To"] = row["target"]
        message["Date"] = format_datetime(row["created_at"])
        message["Message-ID"] = row["message_id"]
        message["Auto-Submitted"] = "auto-generated"
        message["X-Auto-Response-Suppress"] = "All"
        if row["payload"].get("opt_out_url"):  # a reporter's mail: one-click opt-out, RFC 8058
            message["List-Unsubscribe"] = f"<{row['payload']['opt_out_url']}>"
            message["List-Unsubscribe-Post"] = "List-Unsubscribe=One-Click"
    except ValueError as error:  # a line break in an address from the pod's database
        raise DeliveryFailed(
            f"The mail to {row['target']!r} cannot be written ({error}).", permanent=True
        ) from None
    message.set_content(parts["text"])
    message.add_alternative(parts["html"], subtype="html")
    message["Content-Language"] = language  # (set_content drops Content-* headers)
    return message
