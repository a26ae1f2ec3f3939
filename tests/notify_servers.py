"""Real servers on loopback for the notification tests: an SMTP server (aiosmtpd) that records
what it accepts, and an HTTP webhook receiver that checks each body's signature."""

from __future__ import annotations

import hashlib
import hmac
import http.server
import json
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from email import message_from_bytes, policy
from email.message import EmailMessage
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword

SMTP_USER, SMTP_PASSWORD = "podmod", "right-password"
WEBHOOK_SECRET = "a-test-secret-of-enough-length"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class _Recorder:
    def __init__(self, server: SmtpServer) -> None:
        self.server = server

    async def handle_DATA(self, server, session, envelope) -> str:
        self.server.arrived.set()
        if self.server.hold is not None:
            self.server.hold.wait(60)
        message = message_from_bytes(envelope.content, policy=policy.default)
        self.server.messages.append(message)
        return "250 accepted"


class SmtpServer:
    """aiosmtpd on 127.0.0.1:`port`, with AUTH (podmod / right-password) allowed without TLS;
    stop() and start() again on the same port."""

    def __init__(self) -> None:
        self.port = free_port()
        self.messages: list[EmailMessage] = []
        self.arrived = threading.Event()
        self.hold: threading.Event | None = None  # set: DATA waits for it before accepting
        self.controller: Controller | None = None

    def _authenticate(self, server, session, envelope, mechanism, auth_data) -> AuthResult:
        ok = (
            isinstance(auth_data, LoginPassword)
            and auth_data.login == SMTP_USER.encode()
            and auth_data.password == SMTP_PASSWORD.encode()
        )
        return AuthResult(success=ok, handled=False)

    def start(self) -> None:
        self.controller = Controller(
            _Recorder(self),
            hostname="127.0.0.1",
            port=self.port,
            authenticator=self._authenticate,
            auth_require_tls=False,
        )
        self.controller.start()

    def stop(self) -> None:
        if self.controller is not None:
            self.controller.stop()
            self.controller = None

    def url(self, password: str = SMTP_PASSWORD) -> str:
        return f"smtp://{SMTP_USER}:{password}@127.0.0.1:{self.port}"


@dataclass
class Delivery:
    headers: dict[str, str]
    body: bytes
    signed: bool
    at: float = field(default_factory=time.time)  # when it arrived

    @property
    def json(self) -> dict[str, Any]:
        return json.loads(self.body)


@dataclass
class WebhookReceiver:
    """An HTTP server on 127.0.0.1 answering each POST with the next of `answers` (then 200),
    recording every request and whether its X-Hub-Signature is right."""

    answers: list[int] = field(default_factory=list)
    deliveries: list[Delivery] = field(default_factory=list)
    secret: str = WEBHOOK_SECRET
    arrived: threading.Event = field(default_factory=threading.Event)
    hold: threading.Event | None = None  # set: a POST is recorded, then waits for it to answer

    def __post_init__(self) -> None:
        receiver = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                expected = (
                    "sha256=" + hmac.new(receiver.secret.encode(), body, hashlib.sha256).hexdigest()
                )
                signed = hmac.compare_digest(self.headers.get("X-Hub-Signature", ""), expected)
                receiver.deliveries.append(Delivery(dict(self.headers), body, signed))
                receiver.arrived.set()
                if receiver.hold is not None:
                    receiver.hold.wait(60)
                status = receiver.answers.pop(0) if receiver.answers else 200
                self.send_response(status)
                self.end_headers()
                self.wfile.write(b"receiver says " + str(status).encode())

            def log_message(self, format: str, *args: object) -> None:
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}/hook/token-part"

    def close(self) -> None:
        if self.hold is not None:
            self.hold.set()
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def smtp_server() -> Iterator[SmtpServer]:
    server = SmtpServer()
    server.start()
    yield server
    if server.hold is not None:
        server.hold.set()
    server.stop()


@pytest.fixture
def receiver() -> Iterator[WebhookReceiver]:
    served = WebhookReceiver()
    yield served
    served.close()
