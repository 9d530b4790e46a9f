"""Run the ECB sandbox under uvicorn on 127.0.0.1 in a background thread (tests, demo)."""

from __future__ import annotations

import socket
import threading
import time
from types import TracebackType

import uvicorn

from gp_pipelines.connectors.ecb import FxSource

from .app import FEED_PREFIX, EcbSandbox, EcbSandboxOptions, create_app

_START_TIMEOUT_SECONDS = 30.0


class EcbSandboxServer:
    """The ECB feeds on a real port (`port=0` picks a free one). `source()` is the FxSource pointing at it."""

    def __init__(self, options: EcbSandboxOptions | None = None, port: int = 0) -> None:
        self.options = options or EcbSandboxOptions()
        self.port = port
        self.app = create_app(self.options)
        self.sandbox: EcbSandbox = self.app.state.sandbox
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None

    @property
    def root_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def base_url(self) -> str:
        return self.root_url + FEED_PREFIX

    def source(self, **options) -> FxSource:
        return FxSource.ecb(self.base_url, **{"backoff_seconds": 0.01, **options})

    def inject(self, *faults: str) -> None:
        self.sandbox.inject(*faults)

    def start(self) -> EcbSandboxServer:
        if self._thread is not None:
            return self
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", self.port))
        self.port = sock.getsockname()[1]
        config = uvicorn.Config(self.app, host="127.0.0.1", port=self.port, log_level="warning",
                                access_log=False, lifespan="off", timeout_graceful_shutdown=2)
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._server.run, kwargs={"sockets": [sock]},
                                        name=f"ecb-sandbox-{self.port}", daemon=True)
        self._thread.start()
        deadline = time.monotonic() + _START_TIMEOUT_SECONDS
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"ECB sandbox did not start on port {self.port}")
            time.sleep(0.01)
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout=10)
        self._server = None
        self._thread = None

    def __enter__(self) -> EcbSandboxServer:
        return self.start()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()


def serve_forever(options: EcbSandboxOptions | None = None, port: int = 8766) -> None:
    uvicorn.run(create_app(options or EcbSandboxOptions()), host="127.0.0.1", port=port, log_level="info",
                lifespan="off")
