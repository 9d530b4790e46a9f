"""Notifications to people: email over SMTP and/or a JSON webhook (Slack/Teams relays, incident tools).

`Notifier.from_config(config.notifications, os.environ)` builds the channels; secrets (SMTP login, a webhook
URL that embeds a token, a bearer token) come from the environment variables the config names, never from the
config itself, and are never logged or put into error texts.

`notify(subject, body, key=..., conn=...)` sends on every configured channel, retrying each a couple of times
quickly. With a connection it records the notification in `automation.notifications` (call
`ensure_automation_schema` first) and sends each key once: a key already delivered (or recorded with no
channel configured) is not sent again; a key whose every channel failed is sent again by the next call.
Notifying never raises into the caller: failures are logged, recorded and returned in the result.
"""

from __future__ import annotations

import logging
import os
import smtplib
import ssl
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from email.message import EmailMessage
from email.utils import formatdate, make_msgid
from typing import Any, ClassVar

import httpx
import psycopg

from gp_pipelines.automation.outbox import describe_error
from gp_pipelines.automation.schema import AUTOMATION_SCHEMA
from gp_pipelines.config import NotificationsConfig
from gp_pipelines.connectors.http import DeadlineExceeded, http_client

NOTIFICATIONS_TABLE = f"{AUTOMATION_SCHEMA}.notifications"
KEY_HEADER = "X-GP-Notification-Key"
# A claim older than this whose sender never reported back (it crashed mid-send) may be sent again.
_IN_FLIGHT_GRACE = "10 minutes"

_log = logging.getLogger(__name__)


class NotificationConfigError(ValueError):
    """The notification config names an environment variable that is not set."""


class _ChannelError(Exception):
    """A channel's own description of a failure (its text is safe to record as it is)."""


class _DoNotRetry(_ChannelError):
    """A channel answered in a way a quick retry cannot change (bad credentials, a refused request)."""


@dataclass(frozen=True)
class NotificationResult:
    key: str
    delivered: tuple[str, ...] = ()  # channels that accepted it
    errors: Mapping[str, str] = field(default_factory=dict)  # channel -> error after its last attempt
    deduplicated: bool = False  # the key had been notified before: nothing sent
    recorded: bool = False  # written to automation.notifications

    @property
    def ok(self) -> bool:
        return not self.errors


@dataclass(frozen=True)
class EmailChannel:
    name: ClassVar[str] = "email"
    host: str
    port: int
    sender: str
    recipients: tuple[str, ...]
    starttls: bool = True
    username: str | None = None
    password: str | None = field(default=None, repr=False)

    def send(self, subject: str, body: str, key: str, timeout: float) -> None:
        message = EmailMessage()
        message["Subject"] = subject
        message["From"] = self.sender
        message["To"] = ", ".join(self.recipients)
        message["Date"] = formatdate(localtime=False)
        message["Message-ID"] = make_msgid(domain="gp-pipelines")
        message[KEY_HEADER] = key
        message.set_content(body)
        implicit_tls = self.port == 465  # SMTPS: TLS from the first byte, no STARTTLS
        smtp_class = smtplib.SMTP_SSL if implicit_tls else smtplib.SMTP
        try:
            with smtp_class(self.host, self.port, timeout=timeout) as smtp:
                if self.starttls and not implicit_tls:
                    smtp.starttls(context=ssl.create_default_context())
                if self.username:
                    smtp.login(self.username, self.password or "")
                smtp.send_message(message)
        except (smtplib.SMTPAuthenticationError, smtplib.SMTPRecipientsRefused, smtplib.SMTPSenderRefused) as exc:
            reply = getattr(exc, "smtp_error", b"")
            reply = reply.decode(errors="replace") if isinstance(reply, bytes) else str(reply or "")
            code = getattr(exc, "smtp_code", "")
            raise _DoNotRetry(f"{type(exc).__name__}: {code} {reply}".strip()[:300] + " (not retried)") from exc


@dataclass(frozen=True)
class WebhookChannel:
    name: ClassVar[str] = "webhook"
    url: str = field(repr=False)  # may embed a token (url_env)
    bearer_token: str | None = field(default=None, repr=False)
    # The whole POST, reply included; `timeout` (from the Notifier) bounds each network operation.
    deadline_seconds: float = 20.0

    def send(self, subject: str, body: str, key: str, timeout: float) -> None:
        headers = {"User-Agent": "gp_pipelines-notify"}
        if self.bearer_token:
            headers["Authorization"] = f"Bearer {self.bearer_token}"
        try:
            with http_client(timeout=timeout, deadline=self.deadline_seconds) as client:
                response = client.post(self.url, json={"subject": subject, "body": body, "key": key}, headers=headers)
        except DeadlineExceeded as exc:
            # Its message names the URL's path, which may be the secret (Slack-style hook URLs).
            raise _ChannelError(
                f"DeadlineExceeded: no complete answer from the webhook within the {exc.deadline:g} s deadline"
            ) from None
        except httpx.HTTPError as exc:
            # httpx's texts can quote the URL; name the failure without it.
            raise _ChannelError(f"{type(exc).__name__}: {str(exc).replace(self.url, '<webhook url>')}") from None
        if response.status_code < 300:
            return
        message = f"HTTP {response.status_code} from the webhook"
        if 400 <= response.status_code < 500 and response.status_code not in (408, 425, 429):
            raise _DoNotRetry(message + " (not retried)")
        raise _ChannelError(message)


Channel = EmailChannel | WebhookChannel


class Notifier:
    """Sends notifications on the configured channels; with no channel it logs and records only."""

    def __init__(
        self,
        *,
        email: EmailChannel | None = None,
        webhook: WebhookChannel | None = None,
        attempts: int = 3,
        retry_delay_seconds: float = 0.5,
        timeout_seconds: float = 10.0,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self._channels: tuple[Channel, ...] = tuple(channel for channel in (email, webhook) if channel is not None)
        self.attempts = max(1, attempts)
        self.retry_delay_seconds = retry_delay_seconds
        self.timeout_seconds = timeout_seconds
        self._sleep = sleep

    @classmethod
    def from_config(
        cls,
        config: NotificationsConfig | None,
        environ: Mapping[str, str] | None = None,
        **options: Any,
    ) -> Notifier:
        """Channels from the config, secrets from `environ` (default: the process environment). Raises
        `NotificationConfigError` naming a variable that is not set (never its value)."""
        env = os.environ if environ is None else environ
        email = webhook = None
        if config is not None and config.email is not None:
            cfg = config.email
            email = EmailChannel(
                host=cfg.smtp_host,
                port=cfg.smtp_port,
                sender=cfg.sender,
                recipients=tuple(cfg.recipients),
                starttls=cfg.starttls,
                username=_from_env(env, cfg.username_env, "notifications.email.username_env"),
                password=_from_env(env, cfg.password_env, "notifications.email.password_env"),
            )
        if config is not None and config.webhook is not None:
            cfg = config.webhook
            webhook = WebhookChannel(
                url=cfg.url or _from_env(env, cfg.url_env, "notifications.webhook.url_env"),
                bearer_token=_from_env(env, cfg.bearer_token_env, "notifications.webhook.bearer_token_env"),
            )
        return cls(email=email, webhook=webhook, **options)

    @property
    def channels(self) -> tuple[str, ...]:
        return tuple(channel.name for channel in self._channels)

    def notify(
        self, subject: str, body: str, *, key: str, conn: psycopg.Connection | None = None
    ) -> NotificationResult:
        """Send once per `key` (when `conn` is given); never raises."""
        claimed = False
        if conn is not None:
            claim = self._claim(conn, key, subject, body)
            if claim == "duplicate":
                _log.info("notification %s already sent: not sent again", key)
                return NotificationResult(key=key, deduplicated=True, recorded=True)
            claimed = claim == "claimed"
        if not self._channels:
            _log.warning("notification (no channel configured) %s: %s\n%s", key, subject, body)
        delivered: list[str] = []
        errors: dict[str, str] = {}
        for channel in self._channels:
            error = self._send_with_retries(channel, subject, body, key)
            if error is None:
                delivered.append(channel.name)
            else:
                errors[channel.name] = error
                _log.error("notification %s: %s channel failed: %s", key, channel.name, error)
        handled = bool(delivered) or not self._channels
        recorded = claimed and self._record(conn, key, delivered, errors, handled)
        return NotificationResult(key=key, delivered=tuple(delivered), errors=errors, recorded=recorded)

    def _send_with_retries(self, channel: Channel, subject: str, body: str, key: str) -> str | None:
        """None when sent, else the last error (credentials masked)."""
        for attempt in range(1, self.attempts + 1):
            try:
                channel.send(subject, body, key, self.timeout_seconds)
                return None
            except _DoNotRetry as exc:
                return str(exc)
            except Exception as exc:  # any failure of a channel is reported, never raised
                error = str(exc) if isinstance(exc, _ChannelError) else describe_error(exc)
                if attempt < self.attempts:
                    _log.info("notification %s: %s attempt %d failed (%s), retrying", key, channel.name, attempt, error)
                    self._sleep(self.retry_delay_seconds * 2 ** (attempt - 1))
        return error

    def _claim(self, conn: psycopg.Connection, key: str, subject: str, body: str) -> str | None:
        """'claimed' (this call sends), 'duplicate' (sent already, or being sent), or None (table unusable:
        send anyway; a missed notification is worse than a repeated one)."""
        try:
            with conn.transaction():
                row = conn.execute(
                    f"INSERT INTO {NOTIFICATIONS_TABLE} (key, subject, body, attempts, attempted_at) "
                    "VALUES (%s, %s, %s, 1, now()) ON CONFLICT (key) DO NOTHING RETURNING id",
                    (key, subject, body),
                ).fetchone()
                if row is None:
                    # Known key: send again only if every channel failed last time, or that sender vanished.
                    row = conn.execute(
                        f"UPDATE {NOTIFICATIONS_TABLE} SET attempts = attempts + 1, attempted_at = now(), "
                        "error = NULL, subject = %s, body = %s WHERE key = %s AND sent_at IS NULL AND "
                        f"(error IS NOT NULL OR attempted_at < now() - interval '{_IN_FLIGHT_GRACE}') RETURNING id",
                        (subject, body, key),
                    ).fetchone()
        except psycopg.Error as exc:
            _log.error("notification %s: cannot record it (%s); sending without dedupe", key, describe_error(exc))
            return None
        return "claimed" if row is not None else "duplicate"

    def _record(
        self, conn: psycopg.Connection, key: str, delivered: list[str], errors: dict[str, str], handled: bool
    ) -> bool:
        error = "; ".join(f"{name}: {text}" for name, text in errors.items()) or None
        try:
            with conn.transaction():
                conn.execute(
                    f"UPDATE {NOTIFICATIONS_TABLE} SET channels = %s, error = %s, "
                    "sent_at = CASE WHEN %s THEN now() END WHERE key = %s",
                    (delivered, error, handled, key),
                )
        except psycopg.Error as exc:
            _log.error("notification %s: cannot record the outcome: %s", key, describe_error(exc))
            return False
        return True


def _from_env(environ: Mapping[str, str], name: str | None, setting: str) -> str | None:
    if name is None:
        return None
    value = environ.get(name)
    if not value:
        raise NotificationConfigError(f"{setting}: environment variable {name} is not set")
    return value
