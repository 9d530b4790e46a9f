"""Run the ECB sandbox under uvicorn on 127.0.0.1 in a background thread (tests, demo)."""

from __future__ import annotations

import uvicorn

from gp_pipelines.connectors.ecb import FxSource

from ..threaded import ThreadedAppServer
from .app import FEED_PREFIX, EcbSandbox, EcbSandboxOptions, create_app


class EcbSandboxServer(ThreadedAppServer):
    """The ECB feeds on a real port (`port=0` picks a free one). `source()` is the FxSource pointing at it."""

    label = "ECB sandbox"

    def __init__(self, options: EcbSandboxOptions | None = None, port: int = 0) -> None:
        self.options = options or EcbSandboxOptions()
        super().__init__(create_app(self.options), port)
        self.sandbox: EcbSandbox = self.app.state.sandbox

    @property
    def base_url(self) -> str:
        return self.root_url + FEED_PREFIX

    def source(self, **options) -> FxSource:
        return FxSource.ecb(self.base_url, **{"backoff_seconds": 0.01, **options})

    def inject(self, *faults: str) -> None:
        self.sandbox.inject(*faults)


def serve_forever(options: EcbSandboxOptions | None = None, port: int = 8766) -> None:
    uvicorn.run(create_app(options or EcbSandboxOptions()), host="127.0.0.1", port=port, log_level="info",
                lifespan="off")
