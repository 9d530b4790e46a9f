"""Notifications: email and webhook over real sockets, once per key, retried quickly, never raising."""

from __future__ import annotations

import logging
import socket

import pytest

from gp_pipelines.automation.schema import ensure_automation_schema
from gp_pipelines.config import EmailNotificationConfig, NotificationsConfig, WebhookNotificationConfig
from gp_pipelines.connectors.notify import NotificationConfigError, Notifier, WebhookChannel
from gp_pipelines.sandbox.notify import SmtpCaptureServer, WebhookCaptureServer

ENVIRON = {
    "GP_TEST_SMTP_USER": "alerts",
    "GP_TEST_SMTP_PASSWORD": "smtp-s3cret",
    "GP_TEST_HOOK_TOKEN": "hook-t0ken",
}


@pytest.fixture
def conn(db):
    ensure_automation_schema(db)
    db.execute("TRUNCATE automation.notifications")
    return db


@pytest.fixture
def smtp():
    with SmtpCaptureServer(credentials=("alerts", "smtp-s3cret")) as server:
        yield server


@pytest.fixture
def hook():
    with WebhookCaptureServer() as server:
        yield server


def _config(smtp: SmtpCaptureServer | None, hook: WebhookCaptureServer | None) -> NotificationsConfig:
    email = webhook = None
    if smtp is not None:
        email = EmailNotificationConfig(
            smtp_host=smtp.host, smtp_port=smtp.port, sender="gp@example.com",
            recipients=["ops@example.com", "oncall@example.com"], starttls=False,
            username_env="GP_TEST_SMTP_USER", password_env="GP_TEST_SMTP_PASSWORD",
        )  # fmt: skip
    if hook is not None:
        webhook = WebhookNotificationConfig(url=hook.url, bearer_token_env="GP_TEST_HOOK_TOKEN")
    return NotificationsConfig(email=email, webhook=webhook)


def _notifier(smtp=None, hook=None, **options) -> tuple[Notifier, list[float]]:
    slept: list[float] = []
    notifier = Notifier.from_config(
        _config(smtp, hook), ENVIRON, retry_delay_seconds=0.01, sleep=slept.append, timeout_seconds=5, **options
    )
    return notifier, slept


def test_email_and_webhook_are_delivered_with_credentials_from_the_environment(smtp, hook):
    notifier, _ = _notifier(smtp, hook)
    result = notifier.notify("3PL down", "Nothing sent since 09:00", key="k-1")
    assert result.ok and result.delivered == ("email", "webhook") and not result.recorded

    [email] = smtp.messages
    assert (email.subject, email.body.strip(), email.login) == ("3PL down", "Nothing sent since 09:00", "alerts")
    assert email.recipients == ("ops@example.com", "oncall@example.com")
    assert email.headers["X-GP-Notification-Key"] == "k-1"
    [request] = hook.requests
    assert request.body == {"subject": "3PL down", "body": "Nothing sent since 09:00", "key": "k-1"}
    assert request.headers["authorization"] == "Bearer hook-t0ken"
    assert "s3cret" not in repr(notifier._channels) and "t0ken" not in repr(notifier._channels)


def test_the_same_key_notifies_once_through_the_database(conn, smtp, hook):
    notifier, _ = _notifier(smtp, hook)
    first = notifier.notify("Gave up", "details", key="outbox.given_up:k:3", conn=conn)
    again = notifier.notify("Gave up", "details", key="outbox.given_up:k:3", conn=conn)
    assert first.recorded and not first.deduplicated
    assert again.deduplicated and again.delivered == ()
    assert len(smtp.messages) == 1 and len(hook.requests) == 1
    row = conn.execute("SELECT channels, sent_at IS NOT NULL, error FROM automation.notifications").fetchone()
    assert row == (["email", "webhook"], True, None)

    without_connection = notifier.notify("Gave up", "details", key="outbox.given_up:k:3")
    assert without_connection.delivered == ("email", "webhook")  # no connection, no dedupe


def test_a_failing_webhook_is_retried_quickly(hook):
    notifier, slept = _notifier(None, hook)
    hook.fail_next(2)
    result = notifier.notify("s", "b", key="k")
    assert result.ok and result.delivered == ("webhook",)
    assert [r.status for r in hook.requests] == [500, 500, 200]
    assert slept == [0.01, 0.02]


def test_a_webhook_that_keeps_failing_is_recorded_not_raised_and_retried_by_the_next_call(conn, hook):
    notifier, _ = _notifier(None, hook)
    hook.fail_next(3)
    failed = notifier.notify("s", "b", key="k", conn=conn)
    assert not failed.ok and failed.delivered == () and failed.recorded
    assert failed.errors == {"webhook": "HTTP 500 from the webhook"}
    row = conn.execute("SELECT sent_at, error, attempts FROM automation.notifications WHERE key = 'k'").fetchone()
    assert row == (None, "webhook: HTTP 500 from the webhook", 1)

    # Nothing reached anyone, so the next call with the key tries again (and gets through).
    later = notifier.notify("s", "b", key="k", conn=conn)
    assert later.ok and not later.deduplicated
    assert [r.status for r in hook.requests] == [500, 500, 500, 200]
    assert conn.execute("SELECT sent_at IS NOT NULL, error, attempts FROM automation.notifications").fetchone() == (
        True,
        None,
        2,
    )


def test_a_refused_webhook_is_not_retried_and_email_still_goes(conn, smtp, hook):
    notifier, _ = _notifier(smtp, hook)
    hook.fail_next(3, status=401)
    result = notifier.notify("s", "b", key="k", conn=conn)
    assert result.delivered == ("email",) and result.errors == {"webhook": "HTTP 401 from the webhook (not retried)"}
    assert len(hook.requests) == 1
    # Someone was told: the key counts as sent, the failed channel stays on record.
    row = conn.execute("SELECT channels, sent_at IS NOT NULL, error FROM automation.notifications").fetchone()
    assert row == (["email"], True, "webhook: HTTP 401 from the webhook (not retried)")


def test_smtp_temporary_failure_is_retried_and_an_unreachable_server_reported(smtp):
    notifier, _ = _notifier(smtp)
    smtp.fail_next(1)
    assert notifier.notify("s", "b", key="k").delivered == ("email",)
    assert len(smtp.messages) == 1

    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        closed_port = probe.getsockname()[1]
    unreachable = Notifier.from_config(
        NotificationsConfig(
            email=EmailNotificationConfig(
                smtp_host="127.0.0.1", smtp_port=closed_port, sender="a@b.c", recipients=["d@e.f"], starttls=False
            )
        ),
        {},
        sleep=lambda _: None,
    )
    result = unreachable.notify("s", "b", key="k")
    assert result.delivered == () and "ConnectionRefusedError" in result.errors["email"]


def test_a_webhook_url_holding_a_secret_stays_out_of_errors():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        closed_port = probe.getsockname()[1]
    channel = WebhookChannel(url=f"http://127.0.0.1:{closed_port}/hooks/T0/s3cr3t-path")
    notifier = Notifier(webhook=channel, attempts=1)
    result = notifier.notify("s", "b", key="k")
    assert "webhook" in result.errors and "s3cr3t" not in result.errors["webhook"]
    assert "s3cr3t" not in repr(channel)


def test_without_channels_it_logs_and_records_once(conn, caplog):
    notifier = Notifier.from_config(None, {})
    assert notifier.channels == ()
    with caplog.at_level(logging.WARNING, logger="gp_pipelines.connectors.notify"):
        result = notifier.notify("Gave up on 940", "details", key="k", conn=conn)
    assert result.ok and result.recorded and result.delivered == ()
    assert "Gave up on 940" in caplog.text
    assert notifier.notify("Gave up on 940", "details", key="k", conn=conn).deduplicated
    assert conn.execute("SELECT channels, sent_at IS NOT NULL FROM automation.notifications").fetchone() == ([], True)


def test_a_missing_environment_variable_is_named_never_its_value():
    config = NotificationsConfig(webhook=WebhookNotificationConfig(url_env="GP_TEST_HOOK_URL"))
    with pytest.raises(NotificationConfigError, match="GP_TEST_HOOK_URL is not set"):
        Notifier.from_config(config, {})
    built = Notifier.from_config(config, {"GP_TEST_HOOK_URL": "https://hooks.example.com/T0/secret"})
    assert built.channels == ("webhook",)


def test_rejected_smtp_credentials_are_reported_without_retrying(smtp):
    notifier = Notifier.from_config(_config(smtp, None), {**ENVIRON, "GP_TEST_SMTP_PASSWORD": "wrong"}, sleep=print)
    result = notifier.notify("s", "b", key="k")
    assert result.errors["email"].startswith("SMTPAuthenticationError: 535")
    assert result.errors["email"].endswith("(not retried)") and "wrong" not in result.errors["email"]
    assert smtp.messages == []
