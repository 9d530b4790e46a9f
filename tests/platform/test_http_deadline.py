"""The overall deadline of every HTTP call to an outside system, over real HTTP on 127.0.0.1.

A server that dribbles its reply (a byte every few seconds) never trips a per-operation timeout; the deadline of
`gp_pipelines.connectors.http` stops the call at the deadline itself, for each production client.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator

import httpx
import pytest

from gp_pipelines.cin7.client import Cin7Client, RetryPolicy
from gp_pipelines.cin7.errors import Cin7ServerError
from gp_pipelines.connectors.ecb import EcbFeedError, FxSource, fetch_rates
from gp_pipelines.connectors.http import DeadlineExceeded, DeadlineTransport, http_client
from gp_pipelines.connectors.notify import Notifier, WebhookChannel
from gp_pipelines.connectors.shopify import ShopifyClient, ShopifyServerError
from gp_pipelines.connectors.zoho import ZohoAnalyticsClient, ZohoCredentials, ZohoTransportError
from gp_pipelines.sandbox.cin7 import SandboxOptions, SandboxServer

ONE_ATTEMPT = RetryPolicy(max_attempts=1, backoff_base=0.001, backoff_cap=0.001)
SLACK = 1.5  # seconds a loaded 2-core test machine may add to a deadline


class DribblingServer:
    """A raw HTTP server on 127.0.0.1: reads a request head, answers with a complete head at once, then sends the
    body one byte every `gap` seconds; with `answer=False` it accepts the connection and never says a word."""

    def __init__(self, body: bytes = b'{"orders": []}', gap: float = 10.0, answer: bool = True) -> None:
        self.body, self.gap, self.answer = body, gap, answer
        self._listener = socket.create_server(("127.0.0.1", 0))
        self._listener.settimeout(0.1)
        self.port = self._listener.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self.requests: list[bytes] = []
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self._accept, daemon=True)]

    def __enter__(self) -> DribblingServer:
        self._threads[0].start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=5)
        self._listener.close()

    def _accept(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self._listener.accept()
            except TimeoutError:
                continue
            thread = threading.Thread(target=self._serve, args=(conn,), daemon=True)
            self._threads.append(thread)
            thread.start()

    def _serve(self, conn: socket.socket) -> None:
        with conn:
            head = b""
            while b"\r\n\r\n" not in head:
                chunk = conn.recv(65536)
                if not chunk:
                    return
                head += chunk
            self.requests.append(head.split(b"\r\n", 1)[0])
            if not self.answer:
                self._stop.wait()
                return
            conn.sendall(
                b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                + f"Content-Length: {len(self.body)}\r\n\r\n".encode()
            )
            for index in range(len(self.body)):
                if index and self._stop.wait(self.gap):
                    return
                try:
                    conn.sendall(self.body[index : index + 1])
                except OSError:
                    return  # the client gave up


@pytest.fixture(scope="module")
def sandbox() -> Iterator[SandboxServer]:
    with SandboxServer(SandboxOptions(seed=7, size="small")) as server:
        yield server


def _cin7(server: SandboxServer, **options) -> Cin7Client:
    inst = server.instances[0]
    return Cin7Client(server.base_url, inst.account_id, [inst.application_keys[0]], instance=inst.key, **options)


def _force(server: SandboxServer, fault: str, **extra: object) -> None:
    httpx.post(f"{server.root_url}/sandbox/faults/next", json={"fault": fault, **extra}).raise_for_status()


def _one_line(text: str) -> None:
    assert "\n" not in text and "?" not in text and "Limit=" not in text, text


# -- the sandbox's drip fault ----------------------------------------------------------------------------------


def test_the_drip_fault_sends_the_normal_answer_a_byte_at_a_time(sandbox):
    inst = sandbox.instances[0]
    headers = {"api-auth-accountid": inst.account_id, "api-auth-applicationkey": inst.application_keys[0]}
    with httpx.Client(base_url=sandbox.base_url, headers=headers, timeout=5.0) as client:
        normal = client.get("me")
        _force(sandbox, "drip", gap=0.002)
        started = time.monotonic()
        with client.stream("GET", "me") as dripped:
            assert dripped.headers["content-length"] == str(len(normal.content))
            assert dripped.headers["content-type"] == normal.headers["content-type"]
            parts = list(dripped.iter_raw())
        elapsed = time.monotonic() - started
    # Bytes sent 2 ms apart: a busy reader may find two or three waiting, never the whole body at once.
    assert b"".join(parts) == normal.content and len(parts) > len(normal.content) // 4
    assert elapsed >= (len(normal.content) - 1) * 0.002
    assert httpx.get(f"{sandbox.root_url}/sandbox/stats").json()["faults"]["drip"] >= 1
    refused = [
        httpx.post(f"{sandbox.root_url}/sandbox/faults/next", json=body)
        for body in ({"fault": "slow", "gap": 1}, {"fault": "drip", "gap": -1}, {"fault": "drip", "gap": "soon"})
    ]
    assert [r.status_code for r in refused] == [400, 400, 400]


# -- Cin7 against the sandbox's drip fault ---------------------------------------------------------------------


def test_a_dripped_cin7_answer_is_given_up_at_the_deadline(sandbox):
    _force(sandbox, "drip")  # the sandbox's default: one byte per 10 s, each read well inside the 30 s timeout
    with _cin7(sandbox, timeout=30.0, deadline=3.0, retry=ONE_ATTEMPT) as client:
        started = time.monotonic()
        with pytest.raises(Cin7ServerError) as caught:
            client.get("saleList", {"Limit": 5, "Page": 1})
        elapsed = time.monotonic() - started
        assert 2.9 <= elapsed < 4.5
        message = str(caught.value)
        assert message == (
            f"[au] saleList: no complete answer from 127.0.0.1:{sandbox.port} within the 3 s deadline "
            "(GET /ExternalApi/v2/saleList)"
        )
        _one_line(message)
        assert client.stats.calls == 1
        # The dripping connection was dropped; the next call opens a fresh one and succeeds.
        assert client.get("me")["Currency"] == "AUD"


def test_a_deadline_exceeded_attempt_is_retried_as_a_timeout(sandbox):
    _force(sandbox, "drip")
    policy = RetryPolicy(max_attempts=2, backoff_base=0.01, backoff_cap=0.01)
    with _cin7(sandbox, deadline=1.0, retry=policy) as client:
        assert client.get("me")["Currency"] == "AUD"
    assert client.stats.retries == 1 and client.stats.calls == 2


def test_a_slow_but_complete_answer_within_the_deadline_succeeds(sandbox):
    # Every byte 2 ms apart: the whole body takes about a second, inside a 10 s deadline with 0.5 s timeouts.
    _force(sandbox, "drip", gap=0.002)
    with _cin7(sandbox, timeout=0.5, deadline=10.0, retry=ONE_ATTEMPT) as client:
        started = time.monotonic()
        assert client.get("me")["Currency"] == "AUD"
        assert time.monotonic() - started > 0.5  # longer than any single timeout: only the deadline bounds it


def test_pooled_connections_serve_request_after_request(sandbox):
    with http_client(timeout=5.0, deadline=3.0) as client:
        addresses = []
        for _ in range(3):
            response = client.get(f"{sandbox.root_url}/sandbox/stats")
            assert response.status_code == 200 and response.json()["calls"] is not None
            addresses.append(response.extensions["network_stream"].get_extra_info("client_addr"))
        time.sleep(0.2)  # each request has its own deadline: time between requests is nobody's
        assert client.get(f"{sandbox.root_url}/sandbox/stats").status_code == 200
    assert len(set(addresses)) == 1  # one kept-alive connection, reused


def test_a_cin7_call_under_the_deadline_succeeds(sandbox):
    with _cin7(sandbox, deadline=3.0, retry=ONE_ATTEMPT) as client:
        for _ in range(3):
            assert client.get("me")["Currency"] == "AUD"
        assert client.stats.calls == 3 and client.stats.retries == 0


# -- a server that accepts and never answers -------------------------------------------------------------------


def test_a_server_that_never_answers_is_given_up_at_the_deadline():
    with DribblingServer(answer=False) as server, http_client(timeout=30.0, deadline=1.0) as client:
        started = time.monotonic()
        with pytest.raises(DeadlineExceeded) as caught:
            client.get(f"{server.url}/ExternalApi/v2/me", params={"token": "s3cret"})
        elapsed = time.monotonic() - started
    assert 0.95 <= elapsed < 1.0 + SLACK
    assert isinstance(caught.value, httpx.TimeoutException)
    assert str(caught.value) == (
        f"no complete answer from 127.0.0.1:{server.port} within the 1 s deadline (GET /ExternalApi/v2/me)"
    )
    assert caught.value.deadline == 1.0


def test_cin7_gives_up_on_a_server_that_never_answers():
    with DribblingServer(answer=False) as server:
        client = Cin7Client(server.url, "acct", ["never-answers-key"], instance="au", deadline=1.0, retry=ONE_ATTEMPT)
        with client, pytest.raises(Cin7ServerError, match=r"within the 1 s deadline \(GET /me\)$"):
            started = time.monotonic()
            client.get("me")
        assert time.monotonic() - started < 1.0 + SLACK


# -- the other clients -----------------------------------------------------------------------------------------


def test_shopify_honours_its_deadline():
    with DribblingServer(gap=10.0) as server:
        client = ShopifyClient(
            server.url, "shpat_deadline", timeout=30.0, deadline=1.0, max_attempts=1, backoff_base=0.001, pace=False
        )
        with client, pytest.raises(ShopifyServerError) as caught:
            started = time.monotonic()
            client.request("GET", "orders.json", params={"status": "any"})
        elapsed = time.monotonic() - started
    assert 0.95 <= elapsed < 1.0 + SLACK
    message = str(caught.value)
    _one_line(message)
    assert "within the 1 s deadline (GET /admin/api/2025-01/orders.json)" in message
    assert "shpat_deadline" not in message


def test_the_webhook_channel_honours_its_deadline_and_keeps_its_url_secret():
    with DribblingServer(body=b'{"ok": true}', gap=10.0) as server:
        channel = WebhookChannel(url=f"{server.url}/hooks/T0/s3cr3t-path", deadline_seconds=1.0)
        notifier = Notifier(webhook=channel, attempts=1, timeout_seconds=30.0)
        started = time.monotonic()
        result = notifier.notify("3PL down", "details", key="deadline-1")
        elapsed = time.monotonic() - started
        assert server.requests == [b"POST /hooks/T0/s3cr3t-path HTTP/1.1"]
    assert 0.95 <= elapsed < 1.0 + SLACK
    error = result.errors["webhook"]
    assert error == "DeadlineExceeded: no complete answer from the webhook within the 1 s deadline"
    assert "s3cr3t" not in error


def test_the_ecb_feed_honours_its_deadline():
    with DribblingServer(body=b"<gesmes:Envelope/>", gap=10.0) as server:
        source = FxSource.ecb(f"{server.url}/stats/eurofxref/", deadline_seconds=1.0, attempts=1)
        started = time.monotonic()
        with pytest.raises(EcbFeedError, match="within the 1 s deadline"):
            fetch_rates(source)
        assert time.monotonic() - started < 1.0 + SLACK


def test_zoho_honours_its_deadline():
    with DribblingServer(body=b'{"access_token": "t", "expires_in": 3600}', gap=10.0) as server:
        client = ZohoAnalyticsClient(
            api_url=server.url, accounts_url=server.url, org_id="1", workspace_id="2",
            credentials=ZohoCredentials("deadline-client", "secret", "deadline-refresh"),
            deadline_seconds=1.0, server_retries=0,
        )  # fmt: skip
        with client, pytest.raises(ZohoTransportError, match=r"within the 1 s deadline \(POST /oauth/v2/token\)"):
            started = time.monotonic()
            client.access_token()
        assert time.monotonic() - started < 1.0 + SLACK


# -- the factory and the private attributes it relies on --------------------------------------------------------


def test_every_transport_of_the_client_enforces_the_deadline(monkeypatch):
    # DeadlineTransport swaps httpx's `_pool._network_backend` (private): if an upgrade renames it, this fails.
    transport = DeadlineTransport(deadline=2.0)
    assert type(transport._pool._network_backend).__name__ == "_DeadlineNetworkBackend"
    with http_client(timeout=1.0, deadline=2.0, proxy="http://127.0.0.1:9") as proxied:
        assert proxied._mounts and all(isinstance(t, DeadlineTransport) for t in proxied._mounts.values())
        assert type(next(iter(proxied._mounts.values()))._pool._network_backend).__name__ == "_DeadlineNetworkBackend"
    monkeypatch.setenv("HTTPS_PROXY", "http://127.0.0.1:9")
    with http_client(timeout=1.0, deadline=2.0) as from_env:
        assert isinstance(from_env._transport, DeadlineTransport)
        assert from_env._mounts and all(isinstance(t, DeadlineTransport) for t in from_env._mounts.values())
    with pytest.raises(TypeError, match="bypass the deadline"):
        http_client(timeout=1.0, deadline=2.0, transport=httpx.HTTPTransport())
    with pytest.raises(ValueError, match="positive"):
        DeadlineTransport(deadline=0)
