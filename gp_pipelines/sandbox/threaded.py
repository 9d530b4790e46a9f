"""One way to serve a sandbox app on 127.0.0.1 from a background thread (tests, demo, dev, CLI)."""

from __future__ import annotations

import socket
import threading
import time
from abc import ABC, abstractmethod
from types import TracebackType
from typing import Self

import uvicorn
from starlette.applications import Starlette

from gp_pipelines.config import ConfigError


class PortTakenError(ConfigError):
    """A stand-in's port is in use; a setup problem the CLI reports in one line."""


class StartStop(ABC):
    """`with Server(...) as server:` starts it and always stops it, for every stand-in with start() and stop()."""

    @abstractmethod
    def start(self) -> Self: ...

    @abstractmethod
    def stop(self) -> None: ...

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()


class ThreadedAppServer(StartStop):
    """Serves `app` under uvicorn in a daemon thread. Binding happens in `start()`, so `port=0` picks a free
    port; `start()` returns once the server accepts connections, `stop()` shuts it down cleanly."""

    label = "sandbox"
    start_timeout_seconds = 30.0
    date_header = True  # False where the app sends its own `Date` (a sandbox with a virtual clock)

    def __init__(self, app: Starlette, port: int = 0) -> None:
        self.app = app
        self.port = port
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None

    @property
    def root_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> Self:
        if self._thread is not None:
            return self
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", self.port))
        except OSError as exc:
            sock.close()
            raise PortTakenError(f"port {self.port} for the {self.label} on 127.0.0.1 is taken ({exc.strerror}): "
                                 "stop what uses it, or choose another port (0 picks a free one)") from None
        self.port = sock.getsockname()[1]
        config = uvicorn.Config(
            self.app,
            host="127.0.0.1",
            port=self.port,
            log_level="warning",
            access_log=False,
            lifespan="off",
            timeout_graceful_shutdown=2,
            date_header=self.date_header,
        )
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(
            target=self._server.run, kwargs={"sockets": [sock]}, name=f"{self.label}-{self.port}", daemon=True
        )
        self._thread.start()
        deadline = time.monotonic() + self.start_timeout_seconds
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"{self.label} did not start on port {self.port}")
            time.sleep(0.01)
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout=10)
        self._server = None
        self._thread = None

