"""Sending one mail through the SMTP server of `mail.smtp_url` (smtp://, smtps://,
smtp+starttls://, user:password@ allowed); every failure is one sentence naming the server, never
its password."""

from __future__ import annotations

import smtplib
import socket
import ssl
from dataclasses import dataclass
from email.message import EmailMessage
from urllib.parse import unquote, urlsplit

from podmod.config import Config
from podmod.errors import DeliveryFailed
from podmod.redact import printable

TIMEOUT = 30.0  # seconds for connecting and for each SMTP command
DEFAULT_PORTS = {"smtp": 25, "smtps": 465, "smtp+starttls": 587}


@dataclass(frozen=True)
class SmtpServer:
    scheme: str
    host: str
    port: int
    user: str | None
    password: str | None = None

    @classmethod
    def from_url(cls, url: str) -> SmtpServer:
        parts = urlsplit(url)
        return cls(
            scheme=parts.scheme,
            host=parts.hostname or "",
            port=parts.port or DEFAULT_PORTS[parts.scheme],
            user=unquote(parts.username) if parts.username else None,
            password=unquote(parts.password) if parts.password is not None else None,
        )

    @property
    def where(self) -> str:
        return f"{self.scheme}://{self.host}:{self.port}"


def _reply(error: smtplib.SMTPResponseException) -> str:
    said = error.smtp_error
    text = said.decode("utf-8", "replace") if isinstance(said, bytes) else str(said)
    return printable(f"{error.smtp_code} {text}".strip())[:200]


def _open(server: SmtpServer) -> smtplib.SMTP:
    """A connection, TLS as the scheme says, signed in when the URL names a user."""
    context = ssl.create_default_context()
    if server.scheme == "smtps":
        client: smtplib.SMTP = smtplib.SMTP_SSL(
            server.host, server.port, timeout=TIMEOUT, context=context
        )
    else:
        client = smtplib.SMTP(server.host, server.port, timeout=TIMEOUT)
    try:
        client.ehlo()
        if server.scheme == "smtp+starttls":
            client.starttls(context=context)
            client.ehlo()
        if server.user is not None:
            client.login(server.user, server.password or "")
    except BaseException:
        client.close()
        raise
    return client


def _failure(server: SmtpServer, error: Exception) -> DeliveryFailed:
    """One sentence for what went wrong, with what to do."""
    where = server.where
    if isinstance(error, smtplib.SMTPAuthenticationError):
        return DeliveryFailed(
            f"The SMTP server {where} refused the user name or password in mail.smtp_url "
            f"({_reply(error)}); correct them."
        )
    if isinstance(error, smtplib.SMTPNotSupportedError):
        return DeliveryFailed(
            f"The SMTP server {where} does not offer {str(error) or 'what podmod asked for'}; use "
            "another scheme in mail.smtp_url (smtp://, smtps:// or smtp+starttls://)."
        )
    if isinstance(error, smtplib.SMTPRecipientsRefused):
        [(address, (code, text))] = list(error.recipients.items())[:1]
        reply = printable(f"{code} {text.decode('utf-8', 'replace')}")[:200]
        return DeliveryFailed(
            f"The SMTP server {where} refused the address {address} ({reply}).",
            permanent=500 <= code < 600,
        )
    if isinstance(error, smtplib.SMTPSenderRefused):
        return DeliveryFailed(
            f"The SMTP server {where} refused the sender {error.sender} ({_reply(error)}); check "
            "mail.from.",
            permanent=False,
        )
    if isinstance(error, smtplib.SMTPResponseException):
        return DeliveryFailed(f"The SMTP server {where} answered {_reply(error)}.")
    if isinstance(error, ssl.SSLError | ssl.CertificateError):
        return DeliveryFailed(
            f"TLS with the SMTP server {where} failed ({printable(str(error))[:200]}); check the "
            "host name and scheme in mail.smtp_url."
        )
    if isinstance(error, socket.timeout | TimeoutError):
        return DeliveryFailed(
            f"The SMTP server {where} did not answer within {TIMEOUT:.0f} s; check that it is "
            "running and mail.smtp_url is right."
        )
    if isinstance(error, smtplib.SMTPException | OSError):
        reason = printable(getattr(error, "strerror", None) or str(error) or type(error).__name__)
        return DeliveryFailed(
            f"Cannot reach the SMTP server {where} ({reason[:200]}); check that it is running "
            "and mail.smtp_url is right."
        )
    raise error


def send(config: Config, message: EmailMessage) -> None:
    """Hand one composed mail to the SMTP server, or raise DeliveryFailed."""
    server = SmtpServer.from_url(config["mail.smtp_url"])
    try:
        client = _open(server)
        try:
            client.send_message(message)
        finally:
            try:
                client.quit()
            except (smtplib.SMTPException, OSError):
                client.close()
    except Exception as error:
        raise _failure(server, error) from None


def check_server(config: Config) -> str:
    """Connect and sign in as a delivery would, sending nothing (for `podmod check`)."""
    server = SmtpServer.from_url(config["mail.smtp_url"])
    try:
        client = _open(server)
        client.quit()
    except Exception as error:
        raise _failure(server, error) from None
    signed_in = f", signed in as {server.user}" if server.user else ""
    return f"{server.where} answers{signed_in}"
