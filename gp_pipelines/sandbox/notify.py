"""Stand-ins for the notification channels (tests, demo): an SMTP server and a webhook that record what arrives.

- `SmtpCaptureServer`: a real SMTP server on 127.0.0.1 (aiosmtpd, in a background thread). Optional login
  (`credentials=(user, password)`, AUTH PLAIN/LOGIN over the plain connection, as a local relay would allow);
  `fail_next(n)` answers the next n messages with a temporary error (451).
- `WebhookCaptureServer`: a Starlette app over uvicorn recording every POSTed JSON body with its headers;
  `fail_next(n, status)` answers the next n requests with an error status.

Both bind in `start()` (`port=0` picks a free port), stop in `stop()`, and work as context managers.
"""

from __future__ import annotations

import json
import socket
import threading
from dataclasses import dataclass, field
from email import message_from_bytes
from email import policy as email_policy
from typing import Any, Self

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, AuthResult, Envelope, LoginPassword, Session
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from .threaded import StartStop, ThreadedAppServer

# --------------------------------------------------------------------------------------------------- SMTP


@dataclass(frozen=True)
class CapturedEmail:
    mail_from: str
    recipients: tuple[str, ...]
    subject: str
    body: str
    headers: dict[str, str]
    login: str | None  # the user that authenticated, if any


class _CaptureHandler:
    def __init__(self, server: SmtpCaptureServer) -> None:
        self._server = server

    async def handle_DATA(self, smtp: SMTP, session: Session, envelope: Envelope) -> str:
        return self._server._receive(session, envelope)


class _BoundController(Controller):
    """aiosmtpd's threaded controller on a socket we bound ourselves: `port=0` works, with no race for the port."""

    def __init__(self, handler: Any, sock: socket.socket, **smtp_options: Any) -> None:
        host, port = sock.getsockname()[:2]
        super().__init__(handler, hostname=host, port=port, **smtp_options)
        self._sock = sock

    def _create_server(self):
        return self.loop.create_server(self._factory_invoker, sock=self._sock, ssl=self.ssl_context)


class SmtpCaptureServer(StartStop):
    """Records every message it is sent in `messages`."""

    def __init__(self, port: int = 0, *, credentials: tuple[str, str] | None = None) -> None:
        self.port = port
        self.credentials = credentials
        self.messages: list[CapturedEmail] = []
        self._lock = threading.Lock()
        self._failures_left = 0
        self._controller: _BoundController | None = None

    @property
    def host(self) -> str:
        return "127.0.0.1"

    def fail_next(self, count: int) -> None:
        """Answer the next `count` messages with 451 (a temporary failure: the sender should retry)."""
        with self._lock:
            self._failures_left = count

    def start(self) -> Self:
        if self._controller is not None:
            return self
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", self.port))
        self.port = sock.getsockname()[1]
        options: dict[str, Any] = {"ready_timeout": 10.0}
        if self.credentials is not None:
            options.update(authenticator=self._authenticate, auth_require_tls=False)
        self._controller = _BoundController(_CaptureHandler(self), sock, **options)
        self._controller.start()
        return self

    def stop(self) -> None:
        if self._controller is not None:
            self._controller.stop()
            self._controller = None


    def _authenticate(
        self, smtp: SMTP, session: Session, envelope: Envelope, mechanism: str, auth_data: Any
    ) -> AuthResult:
        if isinstance(auth_data, LoginPassword) and self.credentials is not None:
            login, password = auth_data.login.decode(), auth_data.password.decode()
            if (login, password) == self.credentials:
                return AuthResult(success=True, auth_data=login)
        return AuthResult(success=False, handled=False)

    def _receive(self, session: Session, envelope: Envelope) -> str:
        with self._lock:
            if self._failures_left > 0:
                self._failures_left -= 1
                return "451 4.3.0 Temporary failure (sandbox fault)"
        content = envelope.original_content or envelope.content
        raw = content if isinstance(content, bytes) else str(content).encode()
        message = message_from_bytes(raw, policy=email_policy.default)
        body_part = message.get_body(preferencelist=("plain",))
        captured = CapturedEmail(
            mail_from=envelope.mail_from or "",
            recipients=tuple(envelope.rcpt_tos),
            subject=str(message.get("Subject", "")),
            body=body_part.get_content() if body_part is not None else "",
            headers={name: str(value) for name, value in message.items()},
            login=session.auth_data if session.authenticated else None,
        )
        with self._lock:
            self.messages.append(captured)
        return "250 Message accepted for delivery"


# --------------------------------------------------------------------------------------------------- webhook


@dataclass(frozen=True)
class CapturedRequest:
    path: str
    headers: dict[str, str]
    body: Any  # the parsed JSON, or the text when it was not JSON
    status: int  # what the server answered
    extra: dict[str, Any] = field(default_factory=dict)


class WebhookCaptureServer(ThreadedAppServer):
    """Records every POST in `requests` (failed ones too); `delivered` are those answered with 2xx."""

    label = "webhook capture"

    def __init__(self, port: int = 0) -> None:
        self.requests: list[CapturedRequest] = []
        self._lock = threading.Lock()
        self._failures: list[int] = []
        app = Starlette(routes=[Route("/{path:path}", self._receive, methods=["POST"])])
        super().__init__(app, port)

    @property
    def url(self) -> str:
        return f"{self.root_url}/hook"

    @property
    def delivered(self) -> list[CapturedRequest]:
        with self._lock:
            return [request for request in self.requests if request.status < 300]

    def fail_next(self, count: int, status: int = 500) -> None:
        """Answer the next `count` requests with `status` (500: a retry may help; 4xx: it will not)."""
        with self._lock:
            self._failures = [status] * count

    async def _receive(self, request: Request) -> JSONResponse:
        raw = await request.body()
        try:
            body: Any = json.loads(raw)
        except ValueError:
            body = raw.decode(errors="replace")
        with self._lock:
            status = self._failures.pop(0) if self._failures else 200
            self.requests.append(
                CapturedRequest(path=request.url.path, headers=dict(request.headers), body=body, status=status)
            )
        return JSONResponse({"ok": status < 300}, status_code=status)
