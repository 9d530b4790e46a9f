"""The one way to build an `httpx.Client` for an outside system: per-operation timeouts plus an overall deadline.

httpx's timeouts apply to each network operation, so a server that dribbles a byte every few seconds keeps a call
alive for ever: every read returns before the read timeout. `http_client(timeout=..., deadline=...)` adds a
deadline per HTTP request (connect, TLS, sending, the response head and the whole body) and enforces it exactly,
without polling: each blocking socket operation is given `min(its own timeout, time left until the deadline)`.

How: `DeadlineTransport` (an `httpx.HTTPTransport`) wraps the network backend of its httpcore pool, so every
stream it opens asks the request being served how much time is left. That request is found through a context
variable, set while the transport handles the request and again around each read of the body (httpx reads the
body after the transport has returned), because pooled connections serve one request after another. A request
that runs out of time raises `DeadlineExceeded`, an `httpx.TimeoutException`, so every `except
httpx.TimeoutException` retry path treats it as the timeout it is. Its message is one line naming the host, the
method and the path, never the query string (which may carry secrets).

Limits: name resolution (`getaddrinfo`) cannot be interrupted and is not bounded; a write that the kernel only
half accepts waits once more with the same budget, so an upload drained by a trickle can overrun by one send.
"""

from __future__ import annotations

import contextvars
import socket
import ssl
import time
from collections.abc import Callable, Iterable, Iterator
from typing import Any, TypeVar

import httpcore
import httpx

T = TypeVar("T")

# Writes are handed to the socket in pieces so each piece gets a fresh share of the remaining time.
_WRITE_PIECE = 16 * 1024

_ACTIVE: contextvars.ContextVar[_Budget | None] = contextvars.ContextVar("gp_http_deadline", default=None)


class DeadlineExceeded(httpx.TimeoutException):
    """No complete answer within the request's overall deadline."""

    def __init__(self, message: str, *, request: httpx.Request, deadline: float) -> None:
        super().__init__(message, request=request)
        self.deadline = deadline


def describe_target(request: httpx.Request) -> tuple[str, str]:
    """`("127.0.0.1:8765", "GET /ExternalApi/v2/sale")` for a request: where and what, never its query string."""
    url = request.url
    host = f"[{url.host}]" if ":" in url.host else url.host
    port = url.port or {"https": 443, "http": 80}.get(url.scheme, 0)
    return f"{host}:{port}", f"{request.method} {url.path}"


class _Budget:
    """The deadline of one request, consulted by every network operation made on its behalf."""

    __slots__ = ("ends_at", "hit", "request", "seconds")

    def __init__(self, request: httpx.Request, seconds: float) -> None:
        self.request = request
        self.seconds = seconds
        self.ends_at = time.monotonic() + seconds
        self.hit = False  # an operation was cut short by the deadline (not by its own timeout)

    def expired(self) -> bool:
        return self.hit or time.monotonic() >= self.ends_at

    def limit(self, timeout: float | None, timeout_error: type[httpcore.TimeoutException]) -> tuple[float, bool]:
        """(the timeout to use, whether the deadline is what sets it); raises once no time is left."""
        left = self.ends_at - time.monotonic()
        if left <= 0:
            self.hit = True
            raise timeout_error("the request's deadline has passed")
        if timeout is None or left < timeout:
            return left, True
        return timeout, False

    def error(self) -> DeadlineExceeded:
        where, what = describe_target(self.request)
        message = f"no complete answer from {where} within the {self.seconds:g} s deadline ({what})"
        return DeadlineExceeded(message, request=self.request, deadline=self.seconds)


def _bounded(
    operation: Callable[[float | None], T], timeout: float | None, timeout_error: type[httpcore.TimeoutException]
) -> T:
    """Run one blocking network operation within the active request's deadline (if any)."""
    budget = _ACTIVE.get()
    if budget is None:  # e.g. closing idle connections: no request is waiting
        return operation(timeout)
    limited, by_deadline = budget.limit(timeout, timeout_error)
    try:
        return operation(limited)
    except httpcore.TimeoutException:
        if by_deadline:
            budget.hit = True
        raise


class _DeadlineNetworkStream(httpcore.NetworkStream):
    """One connection's stream; each operation is bounded by the deadline of the request using it right now."""

    def __init__(self, stream: httpcore.NetworkStream) -> None:
        self._stream = stream

    def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        return _bounded(lambda limit: self._stream.read(max_bytes, limit), timeout, httpcore.ReadTimeout)

    def write(self, buffer: bytes, timeout: float | None = None) -> None:
        view = memoryview(buffer)
        for start in range(0, len(view), _WRITE_PIECE):
            piece = bytes(view[start : start + _WRITE_PIECE])
            _bounded(lambda limit, piece=piece: self._stream.write(piece, limit), timeout, httpcore.WriteTimeout)

    def close(self) -> None:
        self._stream.close()

    def start_tls(
        self, ssl_context: ssl.SSLContext, server_hostname: str | None = None, timeout: float | None = None
    ) -> httpcore.NetworkStream:
        upgraded = _bounded(
            lambda limit: self._stream.start_tls(ssl_context, server_hostname, limit), timeout, httpcore.ConnectTimeout
        )
        return _DeadlineNetworkStream(upgraded)

    def get_extra_info(self, info: str) -> Any:
        return self._stream.get_extra_info(info)


class _DeadlineNetworkBackend(httpcore.NetworkBackend):
    """Opens connections within the active request's deadline and wraps their streams."""

    def __init__(self, backend: httpcore.NetworkBackend) -> None:
        self._backend = backend

    def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.NetworkStream:
        if _ACTIVE.get() is None:
            return _DeadlineNetworkStream(self._backend.connect_tcp(host, port, timeout, local_address, socket_options))
        # socket.create_connection gives each resolved address the whole timeout; try them one by one instead, so
        # several unresponsive addresses share the one deadline.
        try:
            addresses = [info[4][0] for info in socket.getaddrinfo(host, port, 0, socket.SOCK_STREAM)]
        except OSError as exc:
            raise httpcore.ConnectError(exc) from exc
        last: Exception = httpcore.ConnectError(f"no address found for {host}")
        options = list(socket_options or ())
        for address in addresses:
            try:
                stream = _bounded(
                    lambda limit, address=address: self._backend.connect_tcp(
                        address, port, limit, local_address, options
                    ),
                    timeout,
                    httpcore.ConnectTimeout,
                )
            except (httpcore.ConnectError, httpcore.ConnectTimeout) as exc:
                budget = _ACTIVE.get()
                if budget is not None and budget.expired():
                    raise
                last = exc
                continue
            return _DeadlineNetworkStream(stream)
        raise last

    def connect_unix_socket(
        self,
        path: str,
        timeout: float | None = None,
        socket_options: Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.NetworkStream:
        stream = _bounded(
            lambda limit: self._backend.connect_unix_socket(path, limit, socket_options),
            timeout,
            httpcore.ConnectTimeout,
        )
        return _DeadlineNetworkStream(stream)

    def sleep(self, seconds: float) -> None:
        # httpcore sleeps between connection retries; never past the deadline.
        budget = _ACTIVE.get()
        if budget is None:
            self._backend.sleep(seconds)
            return
        limited, by_deadline = budget.limit(seconds, httpcore.ConnectTimeout)
        self._backend.sleep(limited)
        if by_deadline:
            budget.hit = True
            raise httpcore.ConnectTimeout("the request's deadline has passed")


class _DeadlineResponseStream(httpx.SyncByteStream):
    """The response body, read within the deadline of the request it answers."""

    def __init__(self, stream: httpx.SyncByteStream, budget: _Budget) -> None:
        self._stream = stream
        self._budget = budget

    def __iter__(self) -> Iterator[bytes]:
        parts = iter(self._stream)
        while True:
            token = _ACTIVE.set(self._budget)
            try:
                part = next(parts)
            except StopIteration:
                return
            except httpx.TimeoutException as exc:
                if self._budget.expired():
                    raise self._budget.error() from exc
                raise
            finally:
                _ACTIVE.reset(token)
            yield part

    def close(self) -> None:
        self._stream.close()


class DeadlineTransport(httpx.HTTPTransport):
    """An `httpx.HTTPTransport` whose every request has an overall deadline of `deadline` seconds, from the moment
    `handle_request` is entered until the last byte of the body is read. Takes `HTTPTransport`'s arguments."""

    def __init__(self, *, deadline: float, **transport_options: Any) -> None:
        if not deadline > 0:
            raise ValueError(f"deadline must be a positive number of seconds, not {deadline!r}")
        super().__init__(**transport_options)
        self.deadline = float(deadline)
        # Private attributes (httpx 0.28 `HTTPTransport._pool`, httpcore 1.0 `ConnectionPool._network_backend`,
        # also on its proxy subclasses): httpx offers no way to pass a network backend. The pool reads the
        # attribute whenever it opens a connection, and none is open yet. Checked here, so an upgrade that renames
        # them fails loudly at construction (and tests/platform/test_http_deadline.py) instead of silently
        # dropping the deadline.
        pool = getattr(self, "_pool", None)
        backend = getattr(pool, "_network_backend", None)
        if not isinstance(backend, httpcore.NetworkBackend):
            raise RuntimeError(
                "httpx/httpcore internals changed: HTTPTransport._pool._network_backend is gone, so the overall "
                "request deadline cannot be enforced; update gp_pipelines/connectors/http.py"
            )
        pool._network_backend = _DeadlineNetworkBackend(backend)  # type: ignore[union-attr]

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        budget = _Budget(request, self.deadline)
        # Waiting for a free pooled connection counts too (the `timeout` extension is httpcore's public knob).
        timeouts = dict(request.extensions.get("timeout") or {})
        pool_timeout = timeouts.get("pool")
        timeouts["pool"] = self.deadline if pool_timeout is None else min(pool_timeout, self.deadline)
        request.extensions = {**request.extensions, "timeout": timeouts}
        token = _ACTIVE.set(budget)
        try:
            response = super().handle_request(request)
        except httpx.TimeoutException as exc:
            if budget.expired():
                raise budget.error() from exc
            raise
        finally:
            _ACTIVE.reset(token)
        assert isinstance(response.stream, httpx.SyncByteStream)
        response.stream = _DeadlineResponseStream(response.stream, budget)
        return response


class DeadlineClient(httpx.Client):
    """An `httpx.Client` whose transports (direct and proxy, configured or from the environment) are all
    `DeadlineTransport`s. Build it with `http_client`."""

    def __init__(self, *, deadline: float, **client_options: Any) -> None:
        for option in ("transport", "mounts"):
            if option in client_options:
                raise TypeError(f"http_client builds its own transports; {option}= would bypass the deadline")
        self.deadline = float(deadline)
        self._deadline_transports = 0
        super().__init__(**client_options)
        # `_init_transport` and `_init_proxy_transport` are httpx's (private) hooks for building transports; if a
        # new httpx stops calling them, fail here rather than send requests without a deadline.
        if not self._deadline_transports:
            raise RuntimeError(
                "httpx internals changed: Client._init_transport was not called, so the overall request deadline "
                "cannot be enforced; update gp_pipelines/connectors/http.py"
            )

    def _init_transport(self, transport: httpx.BaseTransport | None = None, **options: Any) -> httpx.BaseTransport:
        self._deadline_transports += 1
        return DeadlineTransport(deadline=self.deadline, **options)

    def _init_proxy_transport(self, proxy: httpx.Proxy, **options: Any) -> httpx.BaseTransport:
        self._deadline_transports += 1
        return DeadlineTransport(deadline=self.deadline, proxy=proxy, **options)


def http_client(*, timeout: float | httpx.Timeout, deadline: float, **httpx_kwargs: Any) -> httpx.Client:
    """An `httpx.Client` with per-operation `timeout`s and an overall `deadline` (seconds) per request.

    Every other keyword (`headers`, `base_url`, `follow_redirects`, `verify`, `proxy`, `limits`, ...) goes to
    `httpx.Client` unchanged, except `transport` and `mounts`, which would bypass the deadline. Redirects that
    the client follows are separate requests, each with its own deadline."""
    return DeadlineClient(deadline=deadline, timeout=timeout, **httpx_kwargs)
